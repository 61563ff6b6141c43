"""Repeatability of the whole-face path under re-shoots (``benchmarks/repeatability.py``).

The re-shoot itself and the scoring are checked without the shared data: on scikit-image's
astronaut and on drawn images whose answer is known, and on courses assessed by
:func:`monitor.course.assess_course` from hand-made photo records. The guards run the benchmark
on one face per severity grade of the ACNE04 dev split in place (skipped when it is not beside
the repository). The engine is being tuned, so the guards are the constants below: they start
at the benchmark's targets; change them as the engine changes.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.course import assess_course
from tests.scripts import load_script

DEV_DIR = Path(__file__).resolve().parents[2] / "shared/data/acne04-dev"

DEV_FACES_PER_GRADE = 1
DEV_RESHOOTS = 5
MIN_ACCEPTED_FRACTION = 1.0  # of the re-shoots
MAX_MEAN_SPREAD = 0.15
MAX_WORST_SPREAD = 0.30
MAX_FALSE_TRACKS = 1  # per course (issue #13's target; measured 0 on 12 faces, at most 2 on 32)
MAX_MEAN_ABS_REDNESS = 0.5  # CIELAB a*

bench = load_script("benchmarks/repeatability.py")


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


# --------------------------------------------------------------------------------------------
# The re-shoot


def test_reshoot_params_stay_within_the_stated_ranges(astronaut):
    small = astronaut[::4, ::4]
    for seed in range(200):
        out, p = bench.reshoot(small, np.random.default_rng(seed))
        assert out.shape == small.shape and out.dtype == np.uint8
        assert abs(p.roll_deg) <= bench.MAX_ROLL_DEG
        assert abs(p.scale - 1) <= bench.MAX_SCALE_CHANGE
        assert np.abs(p.corner_shift).max() <= bench.MAX_CORNER_SHIFT
        assert abs(p.red_gain - 1) <= bench.MAX_WHITE_BALANCE_CHANGE
        assert abs(p.blue_gain - 1) <= bench.MAX_WHITE_BALANCE_CHANGE
        assert abs(p.exposure - 1) <= bench.MAX_EXPOSURE_CHANGE
        assert bench.JPEG_QUALITY[0] <= p.jpeg_quality <= bench.JPEG_QUALITY[1]
        assert isinstance(p.jpeg_quality, int)


def test_reshoot_ranges_are_used_not_just_bounded():
    params = [bench.draw_reshoot(np.random.default_rng(seed)) for seed in range(400)]
    rolls = np.array([p.roll_deg for p in params])
    assert rolls.min() < -0.9 * bench.MAX_ROLL_DEG and rolls.max() > 0.9 * bench.MAX_ROLL_DEG
    scales = np.array([p.scale for p in params]) - 1
    assert scales.min() < -0.9 * bench.MAX_SCALE_CHANGE
    assert scales.max() > 0.9 * bench.MAX_SCALE_CHANGE
    assert {p.jpeg_quality for p in params} == set(range(bench.JPEG_QUALITY[0],
                                                         bench.JPEG_QUALITY[1] + 1))


@pytest.mark.parametrize("strength", [0.0, 0.25, 0.5])
def test_reshoot_strength_scales_every_change_but_the_jpeg_quality(strength):
    full = bench.draw_reshoot(np.random.default_rng(7))
    part = bench.draw_reshoot(np.random.default_rng(7), strength=strength)
    assert part.roll_deg == pytest.approx(strength * full.roll_deg)
    assert part.scale - 1 == pytest.approx(strength * (full.scale - 1))
    assert np.asarray(part.corner_shift) == pytest.approx(strength * np.asarray(full.corner_shift))
    assert part.red_gain - 1 == pytest.approx(strength * (full.red_gain - 1))
    assert part.exposure - 1 == pytest.approx(strength * (full.exposure - 1))
    assert part.jpeg_quality == full.jpeg_quality


def test_zero_perturbation_returns_the_same_image(astronaut):
    out, params = bench.reshoot(astronaut, np.random.default_rng(3), strength=0.0)
    np.testing.assert_array_equal(out, astronaut)
    np.testing.assert_array_equal(bench.apply_reshoot(astronaut, bench.ReshootParams()),
                                  astronaut)
    np.testing.assert_array_equal(params.homography(512, 512), np.eye(3))


def test_reshoot_is_seeded(astronaut):
    a, pa = bench.reshoot(astronaut, bench.face_rng("levle1_5.jpg"))
    b, pb = bench.reshoot(astronaut, bench.face_rng("levle1_5.jpg"))
    c, pc = bench.reshoot(astronaut, bench.face_rng("levle1_6.jpg"))
    assert pa == pb and pa != pc
    np.testing.assert_array_equal(a, b)


def test_no_black_corners_on_the_largest_roll_and_zoom_out():
    grey = np.full((120, 160, 3), 128, np.uint8)
    params = bench.ReshootParams(roll_deg=bench.MAX_ROLL_DEG, scale=1 - bench.MAX_SCALE_CHANGE,
                                 corner_shift=((0.025, 0.025), (-0.025, 0.025),
                                               (-0.025, -0.025), (0.025, -0.025)))
    out = bench.apply_reshoot(grey, params)
    # A uniform photo stays uniform: the uncovered corners are filled from the photo.
    assert out.min() == out.max() == 128


def test_a_dot_moves_where_the_homography_says():
    image = np.zeros((200, 240, 3), np.uint8)
    x0, y0 = 170, 60
    yy, xx = np.mgrid[0:200, 0:240]
    image[(xx - x0) ** 2 + (yy - y0) ** 2 <= 16] = 255
    params = bench.ReshootParams(roll_deg=8.0, scale=1.1,
                                 corner_shift=((0.02, -0.01), (0.0, 0.02), (-0.02, 0.0),
                                               (0.01, 0.01)))
    out = bench.apply_reshoot(image, params)[..., 1].astype(float)
    found = np.array([(xx * out).sum(), (yy * out).sum()]) / out.sum()
    h = params.homography(240, 200)
    p = h @ [x0, y0, 1.0]
    assert found == pytest.approx(p[:2] / p[2], abs=0.3)
    assert not np.allclose(p[:2] / p[2], (x0, y0), atol=5)  # it did move


def test_gains_apply_in_linear_light():
    grey = np.full((8, 8, 3), 128, np.uint8)
    params = bench.ReshootParams(red_gain=1.1, blue_gain=0.9, exposure=0.88)
    out = bench.apply_reshoot(grey, params)

    def linear(v):
        v = v / 255
        return ((v + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(out[0, 0, c])) / linear(128.0) for c in range(3))
    # Within an 8-bit level of the gains.
    assert red == pytest.approx(1.1 * 0.88, rel=0.01)
    assert green == pytest.approx(0.88, rel=0.01)
    assert blue == pytest.approx(0.9 * 0.88, rel=0.01)


@pytest.mark.parametrize(
    ("label", "image"),
    [
        ("grey image", np.zeros((10, 10), np.uint8)),
        ("float image", np.zeros((10, 10, 3), np.float32)),
        ("four channels", np.zeros((10, 10, 4), np.uint8)),
    ],
)
def test_apply_reshoot_rejects_what_is_not_an_rgb_photo(label, image):
    with pytest.raises(ValueError, match="uint8 RGB"):
        bench.apply_reshoot(image, bench.ReshootParams())


@pytest.mark.parametrize(
    ("label", "fields"),
    [
        ("three corners", {"corner_shift": ((0.0, 0.0),) * 3}),
        ("zero scale", {"scale": 0.0}),
        ("negative gain", {"red_gain": -1.0}),
        ("quality above 100", {"jpeg_quality": 101}),
    ],
)
def test_reshoot_params_validate_themselves(label, fields):
    with pytest.raises(ValueError):
        bench.ReshootParams(**fields)


def test_write_reshoots_writes_jpegs_of_the_same_size(tmp_path, astronaut):
    from PIL import Image

    src = tmp_path / "levle2_9_jpg.rf.abc.jpg"
    Image.fromarray(astronaut).save(src, quality=95)
    folder = tmp_path / "shots"
    folder.mkdir()
    paths, params = bench.write_reshoots(src, folder, n=3)
    assert [p.name for p in paths] == [f"levle2_9_reshoot{k}.jpg" for k in range(3)]
    assert all(Image.open(p).size == (512, 512) for p in paths)
    # Re-shoot 0 is the mild one.
    assert abs(params[0].roll_deg) <= bench.FIRST_RESHOOT_STRENGTH * bench.MAX_ROLL_DEG
    assert abs(params[0].scale - 1) <= bench.FIRST_RESHOOT_STRENGTH * bench.MAX_SCALE_CHANGE


# --------------------------------------------------------------------------------------------
# Scoring


def _photo(k, points, *, status="ok", redness=0.0):
    """A photo record of re-shoot ``k`` (day k) with lesions at ``points`` (reference pixels)."""
    lesions = [{"x": float(x), "y": float(y), "radius": 4.0, "kind": "papule"}
               for x, y in points]
    ok = status == "ok"
    return {
        "file": f"face_reshoot{k}.jpg",
        "captured_at": (datetime(2026, 1, 1) + timedelta(days=k)).isoformat(),
        "day": None,
        "status": status,
        "reason": None if ok else "We could not find a face in this photo.",
        "to_reference": None,
        "alignment_score": 1.0 if ok else None,
        "redness": {"index": redness, "by_region": {}} if ok else None,
        "lesion_count": len(lesions) if ok else None,
        "lesions": lesions if ok else None,
    }


def _analysis(photos):
    return {"reference": photos[0]["file"], "photos": photos,
            "trend": assess_course(photos).to_json()}


STEADY = [(100, 100), (200, 120), (300, 300)]


@pytest.mark.parametrize(
    ("label", "per_day", "false", "events"),
    [
        ("the same lesions every day", [STEADY] * 5, 0, 0),
        ("one lesion on a middle day only", [STEADY, STEADY, [*STEADY, (400, 50)], STEADY,
                                             STEADY], 1, 2),
        ("one lesion from day 3 on", [STEADY] * 3 + [[*STEADY, (400, 50)]] * 2, 1, 1),
        ("one lesion gone after day 1", [STEADY] * 2 + [STEADY[:2]] * 3, 1, 1),
        ("missed one day and seen again keeps its track", [STEADY, STEADY, STEADY[:2], STEADY,
                                                           STEADY], 0, 0),
    ],
)
def test_false_tracks_from_the_trend(label, per_day, false, events):
    analysis = _analysis([_photo(k, points) for k, points in enumerate(per_day)])
    found, turnover, n_tracks = bench.false_tracks(analysis["trend"])
    assert (found, turnover) == (false, events), label
    assert n_tracks == len(analysis["trend"]["tracks"])


def test_score_course_counts_spread_and_redness():
    counts = [10, 12, 9, 11, 10]
    photos = [_photo(k, [(20 * i, 7 * k) for i in range(n)], redness=r)
              for k, (n, r) in enumerate(zip(counts, [0.0, 0.4, -0.6, 0.2, -0.2], strict=True))]
    photos[3] = _photo(3, [], status="rejected")
    row = bench.score_course(_analysis(photos), file="levle2_9.jpg", grade=2)
    assert row.counts == (10, 12, 9, None, 10)
    assert (row.accepted, row.n_photos) == (4, 5)
    assert row.spread == pytest.approx((12 - 9) / 10)
    # The reference (re-shoot 0) and the rejected photo are left out.
    assert row.redness == pytest.approx((0.4, -0.6, -0.2))
    assert row.mean_abs_redness == pytest.approx(0.4)
    assert row.course_status == _analysis(photos)["trend"]["status"]


def test_spread_is_relative_to_at_least_five_spots():
    row = bench.score_course(_analysis([_photo(k, STEADY[: 1 + k % 2]) for k in range(5)]),
                             file="levle0_1.jpg")
    assert row.spread == pytest.approx(1 / 5)


def _row(file, counts, *, false=0, redness=(0.1,), status="resolving_as_expected"):
    return bench.CourseRow(file=file, grade=1, statuses=tuple("ok" if c is not None else
                                                              "rejected" for c in counts),
                           reasons=(None,) * len(counts), counts=tuple(counts),
                           false_tracks=false, turnover=false, n_tracks=10,
                           redness=tuple(redness), course_status=status)


def test_summary_known_figures():
    rep = bench.Repeatability(rows=(
        _row("a.jpg", [10, 10, 10, 10, 10]),
        _row("b.jpg", [10, 12, 10, 10, 8], false=1, redness=(0.3, -0.5)),
        _row("c.jpg", [20, 20, 20, 20, None], false=3, redness=(1.5,), status="resolved"),
    ))
    assert (rep.accepted, rep.n_photos, rep.all_accepted) == (14, 15, False)
    assert rep.mean_spread == pytest.approx(0.4 / 3)
    assert rep.worst_spread == pytest.approx(0.4)
    assert (rep.mean_false_tracks, rep.max_false_tracks) == (pytest.approx(4 / 3), 3)
    assert rep.mean_abs_redness == pytest.approx((0.1 + 0.3 + 0.5 + 1.5) / 4)
    assert [row.settled_with_many for row in rep.rows] == [False, False, True]
    missed = rep.missed_targets()
    assert any("accepted 14/15" in m for m in missed)
    assert any("worst spread" in m for m in missed)
    assert any("false track" in m for m in missed)
    assert any("redness" in m for m in missed)
    assert not any("mean spread" in m for m in missed)
    text = bench.report(rep)
    assert "called resolved with 20 spots" in text and "MISSED" in text
    assert "accepted 14/15" in rep.summary()


def test_targets_met_and_nothing_analysed():
    rep = bench.Repeatability(rows=(_row("a.jpg", [10, 11, 10, 10, 10], false=1),))
    assert rep.missed_targets() == []
    assert "met" in bench.report(rep).splitlines()[-1]
    assert bench.Repeatability(rows=()).missed_targets() == ["no course was analysed"]


def test_a_course_without_accepted_photos_misses_the_spread_targets():
    rep = bench.Repeatability(rows=(_row("a.jpg", [None] * 5, redness=()),))
    assert math.isnan(rep.mean_spread) and math.isnan(rep.worst_spread)
    assert any("mean spread nan" in m for m in rep.missed_targets())


# --------------------------------------------------------------------------------------------
# Real faces (ACNE04 dev split, read in place): one face per grade, 5 re-shoots each


@pytest.fixture(scope="module")
def dev_repeatability():
    if not DEV_DIR.is_dir() or not any(DEV_DIR.glob("*.xml")):
        pytest.skip(f"annotated photos not found at {DEV_DIR}")
    faces = bench.select_faces(bench.photo_pairs(DEV_DIR), per_grade=DEV_FACES_PER_GRADE)
    assert {bench.severity_grade(f) for f in faces} == {0, 1, 2, 3}, faces
    return bench.repeatability(faces, n_reshoots=DEV_RESHOOTS)


@pytest.mark.slow
def test_dev_reshoots_accepted(dev_repeatability):
    rep = dev_repeatability
    assert rep.accepted >= MIN_ACCEPTED_FRACTION * rep.n_photos, dict(rep.rejections)


@pytest.mark.slow
def test_dev_count_spread(dev_repeatability):
    rep = dev_repeatability
    assert rep.mean_spread <= MAX_MEAN_SPREAD, bench.report(rep)
    assert rep.worst_spread <= MAX_WORST_SPREAD, bench.report(rep)


@pytest.mark.slow
def test_dev_false_tracks(dev_repeatability):
    rep = dev_repeatability
    assert rep.max_false_tracks <= MAX_FALSE_TRACKS, bench.report(rep)


@pytest.mark.slow
def test_dev_redness(dev_repeatability):
    rep = dev_repeatability
    assert rep.mean_abs_redness <= MAX_MEAN_ABS_REDNESS, bench.report(rep)
