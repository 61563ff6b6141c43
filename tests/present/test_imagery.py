"""Pictures of the course pages, checked against a synthetic course's known geometry: a point
of today's photo lands where the same skin is in the reference frame, the aligned photo lines
up with the reference photo, and each drawing puts its marks where they belong."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from monitor.imaging import apply_homography
from monitor.pipeline import analyse_photo, make_reference
from monitor.present import (
    aligned_photo,
    draw_lesions,
    frame_to_photo,
    framing_thumbnail,
    lesions_in_frame,
    redness_overlay,
    timelapse_gif,
    wipe,
)
from monitor.testing import PoseRange, make_course


def _jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="module")
def course():
    """Day 0 as taken, day 3 turned, moved and lit differently, and much redder."""
    return make_course(5, days=(0, 3), n_lesions=6,
                       pose=PoseRange(roll_deg=10, scale=0.12, expression_iod=0.0),
                       erythema=(0.0, 0.8))


@pytest.fixture(scope="module")
def reference(course):
    day0 = course.photos[0]
    return make_reference(analyse_photo(_jpeg(day0.image), name="day0.jpg", strict=True))


@pytest.fixture(scope="module")
def today(course, reference):
    """Day 3's bytes and its analysis entry (as stored: ``to_reference``, ``face``)."""
    data = _jpeg(course.photos[1].image)
    result = analyse_photo(data, name="day3.jpg", reference=reference, strict=True)
    assert result.status == "ok", result.reason
    return data, result.to_json(treatment_date=None)


def _in_reference_frame(course, reference, base_points):
    """Where base-image points are in the reference frame (the reference's working copy)."""
    crop = reference.result.crop
    return apply_homography(crop.to_crop, course.photos[0].to_photo(base_points))


def _iod(reference) -> float:
    return float(reference.result.crop.face.inter_ocular_px)


def test_lesions_land_where_the_same_skin_is_in_the_reference_frame(course, reference, today):
    _, entry = today
    truth = course.photos[1].lesions_in_photo()
    entry = dict(entry, lesions=[{"x": t["x"], "y": t["y"], "radius": t["radius"]}
                                 for t in truth])
    framed = lesions_in_frame(entry, reference)
    base = np.array([(les.x, les.y) for les in course.photos[1].lesions])
    expected = _in_reference_frame(course, reference, base)
    got = np.array([(le["fx"], le["fy"]) for le in framed])
    error = np.linalg.norm(got - expected, axis=1) / _iod(reference)
    assert error.max() < 0.01  # measured 0.1-0.3 % of the pupil distance
    # Radii follow the change of scale: the same painted lesion, the same size on day 0.
    scale = reference.result.crop.scale * float(np.sqrt(abs(np.linalg.det(
        course.photos[0].homography[:2, :2]))))
    painted = np.array([les.radius_px for les in course.photos[1].lesions]) * scale
    assert np.allclose([le["fr"] for le in framed], np.maximum(painted, 2.0), rtol=0.05)


def test_a_point_of_the_frame_goes_back_to_the_photo(reference, today):
    _, entry = today
    points = [(120.0, 200.0), (300.5, 250.25), (210.0, 400.0)]
    entry = dict(entry, lesions=[])
    for x, y in points:
        px, py = frame_to_photo(entry, reference, x, y)
        back = lesions_in_frame(dict(entry, lesions=[{"x": px, "y": py, "radius": 3}]), reference)
        assert (back[0]["fx"], back[0]["fy"]) == pytest.approx((x, y), abs=1e-6)


def test_no_lesions_or_no_alignment_draw_nothing(reference, today):
    _, entry = today
    assert lesions_in_frame(dict(entry, lesions=None), reference) == []
    assert lesions_in_frame(dict(entry, to_reference=None), reference) == []


def test_the_aligned_photo_lines_up_with_the_reference(reference, today, course):
    data, entry = today
    crop = reference.result.crop
    aligned = aligned_photo(data, entry["to_reference"], reference)
    assert aligned.shape == crop.pixels.shape
    skin = crop.face.skin_mask()

    def grey(image):
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(float)
        return cv2.GaussianBlur(g, (0, 0), 2)[skin]

    def correlation(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    ref = grey(crop.pixels)
    # The day's photo laid on the frame without its alignment (its own crop): off by the pose.
    unaligned = cv2.resize(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")),
                           (crop.pixels.shape[1], crop.pixels.shape[0]))
    assert correlation(grey(aligned), ref) > 0.9
    assert correlation(grey(aligned), ref) > correlation(grey(unaligned), ref) + 0.2


def test_the_redness_overlay_tints_the_redder_day_only(reference, today):
    data, entry = today
    crop = reference.result.crop
    skin = crop.face.skin_mask()
    same = redness_overlay(crop.pixels, reference)
    redder = redness_overlay(aligned_photo(data, entry["to_reference"], reference), reference)

    def tint(overlaid, base):
        """Mean change of the skin's pixels by the overlay (sum over channels)."""
        return float(np.abs(overlaid.astype(int) - base.astype(int)).sum(axis=2)[skin].mean())

    plain = aligned_photo(data, entry["to_reference"], reference)
    # The reference against itself: only its redder half, a little (a* above its own mean,
    # measured 15 against 134 for the redder day).
    assert tint(redder, plain) > 3 * tint(same, crop.pixels)
    outside = ~cv2.dilate(skin.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.array_equal(same[outside], crop.pixels[outside])


def test_lesion_circles_are_drawn_round_each_lesion():
    image = np.zeros((120, 200, 3), np.uint8)
    lesions = [{"fx": 50.0, "fy": 60.0, "fr": 6.0},
               {"fx": 140.0, "fy": 60.0, "fr": 10.0, "added_by_clinician": True}]
    drawn = draw_lesions(image, lesions, numbered=False)
    assert not drawn[60, 50].any() and not drawn[60, 140].any()  # centres left clear
    yy, xx = np.nonzero(drawn.any(axis=2))
    left = xx < 95
    assert np.median(np.hypot(xx[left] - 50, yy[left] - 60)) == pytest.approx(9, abs=1.5)
    assert np.median(np.hypot(xx[~left] - 140, yy[~left] - 60)) == pytest.approx(13, abs=1.5)
    # The clinician's own additions are in another colour.
    assert tuple(drawn[60, 50 - 9]) != tuple(drawn[60, 140 - 13])
    numbered = draw_lesions(image, lesions)
    assert numbered.any(axis=2).sum() > drawn.any(axis=2).sum()
    assert not image.any()  # drawn on a copy


def test_the_framing_thumbnail_shows_the_face_box(today):
    data, entry = today
    thumb = framing_thumbnail(data, entry, width=320)
    height, width = np.asarray(Image.open(io.BytesIO(data))).shape[:2]
    assert thumb.shape == (round(height * 320 / width), 320, 3)
    x0, y0, x1, y1 = (v * 320 / width for v in entry["face"]["box"])
    yellow = (thumb[..., 0] > 200) & (thumb[..., 1] > 180) & (thumb[..., 2] < 80)
    ys, xs = np.nonzero(yellow)
    assert xs.min() == pytest.approx(x0, abs=3) and xs.max() == pytest.approx(x1, abs=3)
    assert ys.min() == pytest.approx(y0, abs=3) and ys.max() == pytest.approx(y1, abs=3)


def test_the_wipe_shows_before_left_and_after_right():
    before = np.full((10, 40, 3), 30, np.uint8)
    after = np.full((10, 40, 3), 90, np.uint8)
    out = wipe(before, after, 0.25)
    assert (out[:, :9] == 30).all() and (out[:, 11:] == 90).all()
    assert (out[:, 9:11] == 255).all()
    assert (wipe(before, after, 1.5)[:, :39] == 30).all()
    with pytest.raises(ValueError, match="same shape"):
        wipe(before, after[:, :20], 0.5)


def test_the_time_lapse_has_every_picture_in_order():
    frames = [np.full((40, 60, 3), v, np.uint8) for v in (20, 120, 220)]
    gif = Image.open(io.BytesIO(timelapse_gif(frames, ["day 0", "day 1", "day 2"],
                                             ms_per_frame=500)))
    assert gif.n_frames == 3
    levels = []
    for k in range(3):
        gif.seek(k)
        assert gif.info["duration"] == 500
        levels.append(int(np.median(np.asarray(gif.convert("RGB")))))
    assert levels == pytest.approx([20, 120, 220], abs=3)
    with pytest.raises(ValueError, match="at least one"):
        timelapse_gif([], [])
