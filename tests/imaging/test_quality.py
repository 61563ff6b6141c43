"""Quality gate: blurred, dark, bright, small and turned photos get the right verdict."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from monitor.imaging import Face, assess, check_pose, find_face
from tests.courses import course


@pytest.fixture(scope="module")
def good():
    photo = course(51).photos[2]
    return photo.image, find_face(photo.image)


def _gain(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def test_synthetic_course_photos_pass(good):
    image, face = good
    quality = assess(image, face)
    assert quality.ok, quality.problems
    assert quality.sharpness > 0.5
    assert 40 < quality.exposure < 85
    assert quality.face_width_px == pytest.approx(face.width_px)


@pytest.mark.parametrize(
    ("label", "change", "verdict", "hint"),
    [
        ("slight blur", lambda im: cv2.GaussianBlur(im, (0, 0), 1.0), "ok", None),
        ("strong blur", lambda im: cv2.GaussianBlur(im, (0, 0), 6.0), "reject", "steady"),
        ("too dark", lambda im: _gain(im, 0.12), "reject", "dark"),
        ("rather dark", lambda im: _gain(im, 0.4), "warn", "dark"),
        ("partly washed out", lambda im: _gain(im, 1.2), "warn", "redness of this photo"),
        ("washed out", lambda im: _gain(im, 2.2), "reject", "bright"),
    ],
)
def test_image_checks(good, label, change, verdict, hint):
    image, face = good
    quality = assess(change(image), face)
    # Only a photo with much of its skin washed out loses its redness (and is still read).
    assert quality.redness_measurable == (quality.clipped_fraction <= 0.25), label
    if verdict == "ok":
        assert quality.ok, (label, quality.problems)
    elif verdict == "warn":
        assert quality.ok and any(hint in w for w in quality.warnings), (label, quality)
    else:
        assert not quality.ok and any(hint in p for p in quality.problems), (label, quality)


def test_small_face_rejected_with_a_hint(good):
    image, _ = good
    small = cv2.resize(image, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    quality = assess(small, find_face(small))
    assert not quality.ok
    assert any("arm's length" in p for p in quality.problems)


def test_pose_change_against_reference():
    c = course(51)
    ref = find_face(c.photos[0].image)
    same_course = find_face(c.photos[3].image)
    change, problems, _ = check_pose(same_course, ref)
    assert not problems, change
    # Turn the 3D mesh itself (x, y, depth) about the vertical axis: a real head turn.
    for degrees, verdict in ((4, "ok"), (15, "warn"), (30, "reject")):
        turned = _turn(ref, degrees)
        change, problems, warnings = check_pose(turned, ref)
        got = "reject" if problems else "warn" if warnings else "ok"
        assert got == verdict, (degrees, change)


def _turn(face: Face, degrees: float) -> Face:
    points = np.c_[face.landmarks, face.depth]
    centre = points.mean(axis=0)
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    moved = (points - centre) @ rotation.T + centre
    return Face(landmarks=moved[:, :2], depth=moved[:, 2], image_shape=face.image_shape)


def _roll(face: Face, degrees: float) -> Face:
    points = np.c_[face.landmarks, face.depth]
    centre = points.mean(axis=0)
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = (points - centre) @ rotation.T + centre
    return Face(landmarks=moved[:, :2], depth=moved[:, 2], image_shape=face.image_shape)


@pytest.mark.parametrize("side_deg", [0, 60, 85])
def test_pose_change_holds_for_a_face_seen_from_the_side(side_deg):
    """A side view rolled by 8 degrees (a re-shoot with the phone tilted) is a roll of 8, not a
    turn; differences of the absolute pose jump there (short pupil line, nose at the edge)."""
    c = course(51)
    side = _turn(find_face(c.photos[0].image), side_deg)
    change, problems, _ = check_pose(_roll(side, 8), side)
    assert change["roll"] == pytest.approx(8, abs=0.5)
    assert change["yaw"] < 0.5 and change["pitch"] < 0.5
    assert not problems
    change, _, _ = check_pose(_turn(side, 12), side)
    assert change["yaw"] == pytest.approx(12, abs=0.5) and change["roll"] < 0.5


def _entry(*, box_width: float = 400.0, image_width: int = 1100, roll: float = 0.0,
           yaw: float = 0.0, lightness: float = 60.0) -> dict:
    return {"image_size": [image_width, image_width], "face": {"box": [300, 300, 300 + box_width,
                                                                      700]},
            "quality": {"exposure": lightness,
                        "pose_change_deg": {"roll": roll, "yaw": yaw, "pitch": 0.0}}}


def test_capture_difference_says_what_differed_and_what_to_do():
    from monitor.imaging import capture_difference

    first = _entry()
    assert capture_difference(_entry(box_width=380, roll=4, lightness=56), first) is None
    said = capture_difference(_entry(box_width=300, roll=12, lightness=48), first)
    assert said == ("Compared with your first photo, this one was taken from farther away, "
                    "tilted and darker: next time, hold the phone a little closer, keep your "
                    "head level and find brighter light, as in your first photo.")
    assert "closer" in capture_difference(_entry(box_width=520), first)
    assert "turned to one side" in capture_difference(_entry(yaw=9), first)
    assert "brighter" in capture_difference(_entry(lightness=70), first)
    # A photo stored before image sizes were recorded: the framing is not judged.
    assert capture_difference(_entry(box_width=200), {**first, "image_size": None}) is None
