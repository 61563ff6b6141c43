"""Tests of monitor.lesions: synthetic lesions of known centre and radius, and real close-ups.

The synthetic skin is a smooth skin-coloured field with mild noise; papules are diffuse red
Gaussian spots and pustules red spots with a pale yellow-white centre (~40 % of the radius),
1-2 mm in radius at 8 px/mm, as the full-face pipeline's test faces have them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import monitor.lesions.reader as lesions
from monitor.lesions import Lesion, closeup_px_per_mm, detect_lesions, skin_mask_by_colour
from tests.scripts import load_script

DEV_DIR = Path(__file__).resolve().parents[3] / "shared/data/acne04-dev"

SKIN_RGB = np.array([222.0, 176.0, 152.0])
RED_RGB = np.array([190.0, 70.0, 75.0])
PALE_RGB = np.array([250.0, 240.0, 200.0])
MOLE_RGB = np.array([105.0, 72.0, 58.0])


# --------------------------------------------------------------------------------------------
# Synthetic ground truth


def skin_field(size: int, seed: int) -> np.ndarray:
    """Float (size, size, 3) skin with gentle shading and Gaussian noise (sigma 2 levels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    shade = 1 + 0.06 * np.sin(2 * np.pi * 0.7 * xx + 1) * np.cos(2 * np.pi * 0.5 * yy)
    return SKIN_RGB * shade[..., None] + rng.normal(0.0, 2.0, (size, size, 3))


def blend(img: np.ndarray, weight: np.ndarray, colour: np.ndarray) -> None:
    img[:] = img * (1 - weight[..., None]) + colour * weight[..., None]


def paint(img: np.ndarray, x: float, y: float, r: float, kind: str, strength: float = 0.6) -> None:
    """A papule (red Gaussian) or pustule (the same with a pale centre ~40 % of r)."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    d = np.hypot(xx - x, yy - y)
    blend(img, strength * np.exp(-0.5 * (d / (0.55 * r)) ** 2), RED_RGB)
    if kind == "pustule":
        blend(img, 0.9 * np.exp(-0.5 * (d / (0.2 * r)) ** 2), PALE_RGB)


def synthetic_scene(
    seed: int, size: int = 1000, n: int = 24
) -> tuple[np.ndarray, list[tuple[float, float, float, str]]]:
    """uint8 image with ``n`` lesions of radius 3.5-8 px (8 px/mm) and their truth."""
    rng = np.random.default_rng(seed)
    img = skin_field(size, seed)
    truth: list[tuple[float, float, float, str]] = []
    while len(truth) < n:
        x, y = rng.uniform(40, size - 40, 2)
        r = rng.uniform(3.5, 8.0)
        if all(np.hypot(x - tx, y - ty) > 4 * max(r, tr) + 10 for tx, ty, tr, _ in truth):
            truth.append(
                (float(x), float(y), float(r), "pustule" if rng.random() < 0.5 else "papule")
            )
    for x, y, r, kind in truth:
        paint(img, x, y, r, kind)
    return np.clip(img, 0, 255).astype(np.uint8), truth


def match(found: tuple[Lesion, ...], truth: list[tuple[float, float, float, str]]):
    """Optimal one-to-one pairs within 1.5 radii + 3 px; returns (pairs, f1)."""
    if not found or not truth:
        return [], 0.0
    d = np.array([[np.hypot(f.x - x, f.y - y) for x, y, _, _ in truth] for f in found])
    ok = d <= np.array([1.5 * r + 3 for _, _, r, _ in truth])[None, :]
    rows, cols = linear_sum_assignment(np.where(ok, d, 1e6))
    pairs = [(i, j) for i, j in zip(rows, cols, strict=True) if ok[i, j]]
    return pairs, 2 * len(pairs) / (len(found) + len(truth))


def all_skin(img: np.ndarray) -> np.ndarray:
    return np.ones(img.shape[:2], dtype=bool)


# --------------------------------------------------------------------------------------------
# API


def test_public_api_is_exactly_all():
    public = {n for n in dir(lesions) if not n.startswith("_")}
    own = {
        n for n in public if getattr(getattr(lesions, n), "__module__", None) == lesions.__name__
    }
    # The face read's scales and its redness floor.
    constants = {"FACE_MIN_A_EXCESS", "FACE_READ_PX_PER_MM", "FACE_SEPARATION_MM"}
    assert set(lesions.__all__) - constants == own
    assert all(isinstance(getattr(lesions, name), float) for name in constants)
    assert set(lesions.__all__) == constants | {
        "Lesion",
        "LesionRead",
        "closeup_px_per_mm",
        "detect_lesions",
        "disc_mask",
        "read_lesions",
        "redness_excess",
        "skin_mask_by_colour",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"kind": "nodule"}, "kind", id="unknown-kind"),
        pytest.param({"confidence": 1.5}, "confidence", id="confidence-above-1"),
        pytest.param({"confidence": -0.1}, "confidence", id="confidence-below-0"),
        pytest.param({"radius_px": 0.0}, "radius_px", id="zero-radius"),
        pytest.param({"x": float("nan")}, "centre", id="nan-centre"),
    ],
)
def test_lesion_validates_itself(kwargs, message):
    base = {"x": 1.0, "y": 2.0, "radius_px": 3.0, "kind": "papule", "confidence": 0.5}
    with pytest.raises(ValueError, match=message):
        Lesion(**{**base, **kwargs})


def test_lesion_to_json_is_rounded_and_serialisable():
    les = Lesion(x=10.123, y=20.987, radius_px=4.44, kind="pustule", confidence=0.87654)
    out = les.to_json()
    assert out == {"x": 10.1, "y": 21.0, "radius": 4.4, "kind": "pustule", "confidence": 0.877}
    json.dumps(out)


@pytest.mark.parametrize(
    ("rgb", "kwargs", "error"),
    [
        pytest.param(np.zeros((64, 64), np.uint8), {}, ValueError, id="grey-image"),
        pytest.param(np.zeros((64, 64, 3), np.float32), {}, ValueError, id="float-image"),
        pytest.param(
            np.zeros((64, 64, 3), np.uint8), {"px_per_mm": 0.0}, ValueError, id="zero-scale"
        ),
        pytest.param(
            np.zeros((64, 64, 3), np.uint8),
            {"skin_mask": np.ones((10, 10), bool)},
            ValueError,
            id="mask-shape",
        ),
        pytest.param(
            np.zeros((64, 64, 3), np.uint8),
            {"min_confidence": 2.0},
            ValueError,
            id="threshold",
        ),
    ],
)
def test_detect_lesions_rejects_bad_input(rgb, kwargs, error):
    with pytest.raises(error):
        detect_lesions(rgb, **kwargs)


def test_closeup_scale_default():
    assert closeup_px_per_mm((640, 640, 3)) == pytest.approx(3.2)
    assert closeup_px_per_mm((3000, 4000, 3)) == pytest.approx(15.0)


def test_model_ships_and_loads_without_pickle():
    model = lesions._load_model()
    assert model is not None, "monitor/models/lesion_gbt.npz is missing"
    assert lesions._MODEL_PATH.stat().st_size < 2 * 1024 * 1024
    assert 0.0 < model.min_confidence < 1.0


def test_close_ups_and_faces_are_read_by_the_density_network():
    from monitor.lesions import density as closeup_net

    img, _ = synthetic_scene(5, size=320, n=8)
    skin = all_skin(img)
    net = closeup_net.load_closeup_net()
    output, prepared = net.run(img)
    peaks = closeup_net.density_peaks(output, prepared)
    found = detect_lesions(img, skin_mask=skin)
    assert len(found) == round(net.count(peaks.expected_count))
    assert [les.x for les in found] == pytest.approx(peaks.x[: len(found)].tolist())
    # An explicit threshold keeps every peak with at least that much mass.
    strong = detect_lesions(img, skin_mask=skin, min_confidence=0.5)
    assert len(strong) == int((peaks.mass >= 0.5).sum())
    assert all(les.confidence >= 0.5 for les in strong)
    # Only lesions centred on the skin mask are listed.
    left = np.zeros_like(skin)
    left[:, :160] = True
    assert all(les.x < 160.5 for les in detect_lesions(img, skin_mask=left))
    # A known scale (a face) is read by the networks at that physical scale: the same skin
    # photographed at twice the resolution gives the same lesions.
    ppm = closeup_px_per_mm(img.shape)
    faced = detect_lesions(img, skin_mask=skin, px_per_mm=ppm)
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    faced_big = detect_lesions(big, skin_mask=all_skin(big), px_per_mm=2 * ppm)
    assert faced and len(faced_big) == len(faced)
    assert sorted(2 * les.x + 0.5 for les in faced) == pytest.approx(
        sorted(les.x for les in faced_big), abs=3.0)


# --------------------------------------------------------------------------------------------
# Synthetic lesions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_lesions_are_recovered(seed):
    img, truth = synthetic_scene(seed)
    found = detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img))
    pairs, f1 = match(found, truth)
    assert f1 >= 0.9, f"F1 {f1:.2f}: {len(found)} found for {len(truth)} painted"
    pustules = [(i, j) for i, j in pairs if truth[j][3] == "pustule"]
    papules = [(i, j) for i, j in pairs if truth[j][3] == "papule"]
    for group in (pustules, papules):
        accuracy = np.mean([found[i].kind == truth[j][3] for i, j in group])
        assert accuracy >= 0.8
    # Centres within a couple of pixels. Radii within a factor of two where the rule path
    # found the spot; the networks' size is half the box an annotator would draw, read at
    # 2 px/mm, so a lone 1 mm spot gets a radius of up to about four times its own.
    for i, j in pairs:
        x, y, r, _ = truth[j]
        assert np.hypot(found[i].x - x, found[i].y - y) <= 0.5 * r + 2
        assert 0.5 * r <= found[i].radius_px <= 4.0 * r


def test_synthetic_lesions_found_without_a_skin_mask():
    img, truth = synthetic_scene(3)
    _, f1 = match(detect_lesions(img, px_per_mm=8.0), truth)
    assert f1 >= 0.9


@pytest.mark.parametrize(("size", "px_per_mm"), [(1000, 8.0), (600, 4.0)])
def test_detections_follow_the_physical_scale(size, px_per_mm):
    img, truth = synthetic_scene(4, size=size, n=12)
    truth = [(x, y, r * size / 1000, k) for x, y, r, k in truth]  # painted at 8 px/mm
    small = detect_lesions(img, px_per_mm=px_per_mm, skin_mask=all_skin(img))
    big_img = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    big = detect_lesions(big_img, px_per_mm=2 * px_per_mm, skin_mask=all_skin(big_img))
    assert len(big) == len(small)
    assert match(small, truth)[1] >= 0.9
    # Same lesions, coordinates doubled (pixel centres: 2x + 0.5).
    scaled = [(2 * x + 0.5, 2 * y + 0.5, 2 * r, k) for x, y, r, k in truth]
    assert match(big, scaled)[1] >= 0.9


def test_blank_skin_gives_an_empty_tuple():
    img = np.clip(skin_field(800, 5), 0, 255).astype(np.uint8)
    assert detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img)) == ()
    assert detect_lesions(img, px_per_mm=8.0) == ()


def test_no_skin_gives_an_empty_tuple():
    img = np.full((200, 200, 3), (40, 90, 200), np.uint8)
    assert detect_lesions(img) == ()
    assert detect_lesions(img, skin_mask=np.zeros((200, 200), bool)) == ()


def test_brown_mole_is_not_a_lesion():
    img = skin_field(600, 6)
    yy, xx = np.mgrid[0:600, 0:600]
    d = np.hypot(xx - 200, yy - 300)
    blend(img, np.clip(9.0 - d, 0, 1) * 0.95, MOLE_RGB)  # a 9 px (1.1 mm) radius mole
    paint(img, 420, 300, 6.0, "papule")
    img = np.clip(img, 0, 255).astype(np.uint8)
    found = detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img))
    assert [round(f.x / 100) for f in found] == [4]


def test_excluded_spot_is_not_counted():
    img = skin_field(600, 7)
    paint(img, 200, 300, 6.0, "papule")
    paint(img, 420, 300, 6.0, "papule")
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert len(detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img))) == 2
    yy, xx = np.mgrid[0:600, 0:600]
    exclude = np.hypot(xx - 200, yy - 300) < 12
    found = detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img), exclude_mask=exclude)
    assert [round(f.x) // 100 for f in found] == [4]


def test_skin_mask_limits_where_lesions_count():
    img, truth = synthetic_scene(8, size=600, n=10)
    left = np.zeros(img.shape[:2], bool)
    left[:, :300] = True
    found = detect_lesions(img, px_per_mm=8.0, skin_mask=left)
    assert found and all(f.x < 300 for f in found)
    assert len(found) == sum(x < 300 for x, _, _, _ in truth)


def test_results_are_sorted_and_thresholded():
    """With no threshold the networks' unsure peaks are listed (3 of 10 here, at about 0.2);
    with 0.99 none is, and the clear spots they had covered are listed by the rule path
    instead: the same ten painted lesions either way, every one above the threshold."""
    img, truth = synthetic_scene(9, size=600, n=10)
    found = detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img), min_confidence=0.0)
    conf = [f.confidence for f in found]
    assert conf == sorted(conf, reverse=True)
    assert any(c < 0.5 for c in conf)
    strict = detect_lesions(img, px_per_mm=8.0, skin_mask=all_skin(img), min_confidence=0.99)
    assert strict and all(f.confidence >= 0.99 for f in strict)
    for read in (found, strict):
        pairs, f1 = match(read, truth)
        assert f1 == 1.0, f1


# --------------------------------------------------------------------------------------------
# Skin by colour


def test_skin_mask_by_colour_finds_skin_not_background_nor_mosaic():
    rng = np.random.default_rng(10)
    img = np.empty((400, 400, 3))
    img[:] = (60, 80, 130)  # blue-grey wall
    yy, xx = np.mgrid[0:400, 0:400]
    face = np.hypot((xx - 200) / 150, (yy - 200) / 180) < 1
    img[face] = SKIN_RGB
    img += rng.normal(0, 2.0, img.shape)
    # A privacy mosaic of flat skin-coloured blocks across the "eyes".
    for by in range(120, 160, 16):
        for bx in range(100, 300, 16):
            img[by : by + 16, bx : bx + 16] = SKIN_RGB * rng.uniform(0.8, 1.0)
    img = np.clip(img, 0, 255).astype(np.uint8)
    mask = skin_mask_by_colour(img)
    assert mask.shape == (400, 400) and mask.dtype == bool
    assert mask[face & ((yy < 110) | (yy > 175))].mean() > 0.95
    assert not mask[~face].any()
    assert mask[125:155, 110:290].mean() < 0.1


def test_skin_mask_by_colour_keeps_red_spots_inside_skin():
    img = skin_field(400, 11)
    paint(img, 200, 200, 8.0, "papule", strength=0.8)
    mask = skin_mask_by_colour(np.clip(img, 0, 255).astype(np.uint8))
    assert mask.all()


def test_skin_mask_by_colour_on_non_skin_is_empty():
    assert not skin_mask_by_colour(np.full((100, 100, 3), (30, 120, 40), np.uint8)).any()


# --------------------------------------------------------------------------------------------
# Real close-ups (ACNE04 dev split, never used for training)


@pytest.fixture(scope="module")
def dev_accuracy():
    if not DEV_DIR.is_dir() or not any(DEV_DIR.glob("*.xml")):
        pytest.skip(f"annotated close-ups not found at {DEV_DIR}")
    return load_script("benchmarks/closeup_accuracy.py").closeup_accuracy(DEV_DIR)


def test_dev_count_rank_agreement(dev_accuracy):
    # Target 0.75 (human-rater level); 0.949 measured with the density networks.
    assert dev_accuracy.count_spearman >= 0.90


def test_dev_count_error(dev_accuracy):
    # Issue #13's target 3.5 per photo, not met yet: 3.65 measured with three networks and the
    # lesions of crowded peaks read off the residual map (3.90 with only the peaks listed, 4.18
    # with the first two networks, 4.60 with the mean count on the whole map's total, 5.33 read
    # at the training versions' 320 px, 5.67 before any count calibration). Most of it is on
    # the most severe photos (50-63 boxes each), which are still counted low.
    assert dev_accuracy.count_mae <= 3.75


def test_dev_f1(dev_accuracy):
    # Target 0.55: 0.671 measured.
    assert dev_accuracy.f1 >= 0.60


def _lesion_pair(rng: np.random.Generator, apart_mm: float, ppm: float):
    """Even skin with two painted papules ``apart_mm`` apart; the image and the pair's centre."""
    h = w = int(80 * ppm)
    noise = cv2.GaussianBlur(rng.normal(0, 4, (h, w)).astype(np.float32), (0, 0), 1.5)
    img = np.zeros((h, w, 3), np.float32) + np.float32([200, 150, 130]) + noise[..., None]
    yy, xx = np.mgrid[:h, :w]
    cx, cy = w / 2 + rng.uniform(-5, 5), h / 2 + rng.uniform(-5, 5)
    angle, sigma = rng.uniform(0, math.pi), rng.uniform(1.2, 2.0) * ppm / 1.5
    for side in (-0.5, 0.5):
        x = cx + side * apart_mm * ppm * math.cos(angle)
        y = cy + side * apart_mm * ppm * math.sin(angle)
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        img += g[..., None] * np.float32([10, -45, -35])
    return np.clip(img, 0, 255).astype(np.uint8), (cx, cy)


@pytest.mark.parametrize(("apart_mm", "read_apart"), [(3.5, 0), (7.0, 5)])
def test_lesions_closer_than_the_separation_are_read_as_one(apart_mm, read_apart):
    """FACE_SEPARATION_MM is what the face reader resolves: two lesions 3.5 mm apart are one
    spot (counted or faint), 7 mm apart two, in 5 seeded pairs each."""
    assert 3.5 < lesions.FACE_SEPARATION_MM < 7.0
    rng, ppm = np.random.default_rng(5), 3.3
    apart = 0
    for _ in range(5):
        img, (cx, cy) = _lesion_pair(rng, apart_mm, ppm)
        read = lesions.read_lesions(img, skin_mask=all_skin(img), px_per_mm=ppm)
        near = [le for le in (*read.lesions, *read.faint)
                if math.hypot(le.x - cx, le.y - cy) < (apart_mm / 2 + 4) * ppm]
        apart += len(near) >= 2
    assert apart == read_apart


def test_a_lesion_among_lesions_is_compared_with_the_clear_skin_around_it():
    """In crowded skin the ring around a lesion holds its neighbours: their discs are left
    out of "the skin around", so a lesion in a cluster is as much redder than its skin as a
    lone one (on the dev faces the filter had dropped 5-7 of ~55 lesions of crowded faces)."""
    skin, red = (205, 160, 140), (190, 115, 110)
    ppm = 2.0
    image = np.full((120, 120, 3), skin, np.uint8)
    centre = Lesion(x=60.0, y=60.0, radius_px=4.0, kind="papule", confidence=0.5)
    cv2.circle(image, (60, 60), 4, red, -1)
    lone = lesions.redness_excess(image, centre, ppm)
    crowded = image.copy()
    # Four neighbours 9 px away (1 px of skin between): over half of the ring is theirs.
    around = [Lesion(x=60 + 9 * math.cos(a), y=60 + 9 * math.sin(a), radius_px=4.0,
                     kind="papule", confidence=0.5) for a in np.linspace(0, 2 * math.pi, 5)[:-1]]
    for les in around:
        cv2.circle(crowded, (round(les.x), round(les.y)), 4, red, -1)
    occupied = lesions.disc_mask(crowded.shape[:2], [(les.x, les.y) for les in (centre, *around)],
                                 [les.radius_px for les in (centre, *around)])
    assert lone > 10
    # Without leaving the neighbours out the ring reads redder, and the lesion less red.
    assert lesions.redness_excess(crowded, centre, ppm) < lone - 3
    assert lesions.redness_excess(crowded, centre, ppm, occupied=occupied) == pytest.approx(
        lone, abs=1.0)
    # A ring all taken by neighbours is used whole rather than not at all.
    full = lesions.disc_mask(crowded.shape[:2], [(60.0, 60.0)], [30.0])
    assert lesions.redness_excess(crowded, centre, ppm, occupied=full) == \
        lesions.redness_excess(crowded, centre, ppm)


@pytest.mark.parametrize("hair_listed", [True, False])
def test_a_listed_peak_turned_down_gives_its_place_to_the_next_lesion_like_peak(
        monkeypatch, hair_listed):
    """The calibrated count says how many lesions there are; a strong peak that is no lesion
    (a dark fringe of hair, no redder than the skin) gives its place to the strongest peak
    below the count that passes both tests; a peak on clear skin never takes a place, and
    without a place turned down the peaks below the count stay faint."""
    skin, red, hair = (205, 160, 140), (190, 115, 110), (90, 70, 60)
    ppm = 2.0
    image = np.full((160, 200, 3), skin, np.uint8)
    spots = {"a": (40, 40), "b": (100, 40), "c": (160, 40), "hair": (40, 120), "clear": (160, 120)}
    for name, (x, y) in spots.items():
        if name != "clear":
            cv2.circle(image, (x, y), 4, hair if name == "hair" else red, -1)

    def peak(name, mass):
        x, y = spots[name]
        return Lesion(x=float(x), y=float(y), radius_px=4.0, kind="papule", confidence=mass)

    listed = (peak("hair", 0.9), peak("a", 0.8), peak("b", 0.7)) if hair_listed else (
        peak("a", 0.8), peak("b", 0.7))
    # Below the count: a clear-skin peak stronger than the lesion c, which is weaker.
    faint = (peak("clear", 0.5), peak("c", 0.3))
    monkeypatch.setattr(lesions, "_closeup_lesions", lambda *a, **k: (listed, faint))
    monkeypatch.setattr(lesions, "_rule_spots", lambda *a, **k: [])
    read = lesions._face_lesions(None, image, np.ones(image.shape[:2], bool), None, ppm, None)
    found = {next(n for n, (x, y) in spots.items() if (x, y) == (les.x, les.y))
             for les in read.lesions}
    assert found == ({"a", "b", "c"} if hair_listed else {"a", "b"})
    assert len(read.lesions) == len(listed)
