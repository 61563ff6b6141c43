"""Alignment accuracy against the synthetic courses' exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.imaging import (
    Refinement,
    align,
    apply_homography,
    find_face,
    photo_to_reference,
    prepare_reference,
)
from monitor.testing import PoseRange, make_course
from tests.courses import course

SEEDS = (11, 12, 13, 14, 15)


def _errors_iod(c, to_reference_by_day) -> np.ndarray:
    """Distance between mapped face points and their true place, in reference IODs."""
    errors = []
    for photo in c.photos:
        src, dst = c.correspondence(photo.day, c.photos[0].day)
        iod = np.linalg.norm(dst[468] - dst[473])
        mapped = apply_homography(to_reference_by_day[photo.day], src)
        errors.append(np.linalg.norm(mapped - dst, axis=1) / iod)
    return np.concatenate(errors)


@pytest.mark.parametrize("seed", SEEDS)
def test_alignment_holds_over_whole_face(seed):
    c = course(seed)
    ref = c.photos[0]
    target = prepare_reference(ref.image, find_face(ref.image))
    mapping = {}
    for photo in c.photos:
        result = align(photo.image, find_face(photo.image), target)
        mapping[photo.day] = result.to_reference
        # The photo laid on the reference correlates with it (0.988-0.996 measured).
        assert result.score >= 0.95, (photo.day, result.score)
    errors = _errors_iod(c, mapping)
    assert np.median(errors) < 0.004, f"median {np.median(errors):.4f} IOD"  # 0.07-0.14 % measured
    assert errors.max() < 0.020, f"worst {errors.max():.4f} IOD"


def test_reference_maps_to_itself():
    c = course(SEEDS[0])
    ref = c.photos[0]
    face = find_face(ref.image)
    result = align(ref.image, face, prepare_reference(ref.image, face))
    corners = np.array([[0, 0], [1000, 0], [0, 1000], [1000, 1000]], float)
    assert np.abs(apply_homography(result.to_reference, corners) - corners).max() < 0.5


def test_landmark_fallback_when_content_disagrees():
    """A photo whose content is another person's (the landmarks still this face's) cannot
    pull the mapping away from the landmarks: neither ECC nor the skin features may win, the
    landmark fit is kept, and the content's poor match is reported."""
    import cv2

    c = make_course(21, days=(0, 3), pose=PoseRange(roll_deg=0, scale=0, perspective=0))
    ref, other = c.photos
    target = prepare_reference(ref.image, find_face(ref.image))
    face = find_face(other.image)
    assert align(other.image, face, target).method == "ecc"  # the same content: refined
    stranger = make_course(21, days=(3,), face="hopper",
                           pose=PoseRange(roll_deg=0, scale=0, perspective=0)).photos[0].image
    stranger = cv2.resize(stranger, (other.image.shape[1], other.image.shape[0]))
    result = align(stranger, face, target)
    assert result.method == "landmarks"
    assert result.face_match < 0.3  # 0.01 measured: another face
    src, dst = c.correspondence(3, 0)
    err = np.linalg.norm(apply_homography(result.to_reference, src) - dst, axis=1)
    assert np.median(err) < 2.0  # 0.9 px measured: the landmark fit's own accuracy


def test_skin_features_rescue_a_landmark_fit_that_is_far_off():
    """A face mesh that is far off (as on a face seen from the side, whose hidden half the
    mesh guesses) is not the last word: ECC starts from matched skin features instead."""
    from monitor.imaging import Face

    c = course(SEEDS[1])
    ref, photo = c.photos[0], c.photos[3]
    target = prepare_reference(ref.image, find_face(ref.image))
    face = find_face(photo.image)
    iod = face.inter_ocular_px
    off = Face(landmarks=face.landmarks + (0.45 * iod, 0.2 * iod), depth=face.depth,
               image_shape=face.image_shape)
    result = align(photo.image, off, target)
    assert result.method == "ecc" and result.score > 0.95
    src, dst = c.correspondence(photo.day, ref.day)
    errors = np.linalg.norm(apply_homography(result.to_reference, src) - dst, axis=1)
    errors /= np.linalg.norm(dst[468] - dst[473])
    assert np.median(errors) < 0.004, f"median {np.median(errors):.4f} IOD"  # 0.07-0.14 % measured


def test_a_real_cheek_close_up_aligns_on_its_skin_features(tmp_path):
    """A cheek close-up of ACNE04 (one eye in view, the face mesh a guess that jumps from
    photo to photo) re-shot as in ``benchmarks/repeatability.py``: every re-shoot whose face
    is found lines up on the skin itself (ECC started from skin features), not on the mesh.
    With features found at ECC's own scale the reference had 18 and none did."""
    from monitor.pipeline import analyse_photo, make_reference
    from tests.courses import SHARED_DATA
    from tests.scripts import load_script

    found = sorted((SHARED_DATA / "acne04-train").glob("levle3_108_jpg*.jpg"))
    if not found:
        pytest.skip("the shared ACNE04 training photos are not beside the repository")
    files, _ = load_script("benchmarks/repeatability.py").write_reshoots(found[0], tmp_path)
    reference = make_reference(analyse_photo(files[0], strict=True))
    assert len(reference.target.features[0]) >= 100
    aligned = 0
    for path in files[1:]:
        photo = analyse_photo(path, strict=True)
        if photo.status != "ok":
            continue
        alignment = align(photo.crop.pixels, photo.crop.face, reference.target)
        assert alignment.method == "ecc" and alignment.score > 0.99, (path.name, alignment)
        aligned += 1
    assert aligned >= 3


def test_the_reference_face_is_carried_onto_a_photo_of_the_same_skin():
    """carry_face lays the reference's landmarks on another photo of the same face by the
    whole photo's skin features, where the face's own mesh is not used at all; it refuses a
    photo of someone else."""
    from monitor.imaging import carry_face

    c = course(SEEDS[0])
    ref, photo = c.photos[0], c.photos[3]
    target = prepare_reference(ref.image, find_face(ref.image))
    s = target.to_work[0, 0]  # the photos are framed alike: the reference's own scale
    carried = carry_face(photo.image, target, np.diag([s, s, 1.0]))
    assert carried is not None and carried.image_shape == photo.image.shape[:2]
    src, dst = c.correspondence(photo.day, ref.day)  # true face points in photo and reference
    iod = np.linalg.norm(src[468] - src[473])
    errors = np.linalg.norm(carried.landmarks - src, axis=1) / iod
    # The reference's mesh itself is off the true points by its own fit; carried, by that
    # and the homography's (the synthetic course also bends the face a little). Measured:
    # 0.64 % IOD carried, 0.56 % the reference's mesh, 0.72 % the photo's own mesh.
    own = np.linalg.norm(find_face(ref.image).landmarks - dst, axis=1) / iod
    assert np.median(errors) < np.median(own) + 0.005, (np.median(errors), np.median(own))
    assert carried.inter_ocular_px == pytest.approx(np.linalg.norm(src[468] - src[473]),
                                                    rel=0.05)
    stranger = make_course(21, days=(3,), face="hopper").photos[0].image
    assert carry_face(stranger, target, np.diag([s, s, 1.0])) is None


def test_a_cheek_close_up_whose_face_is_not_found_joins_its_course(tmp_path):
    """Re-shoots of an ACNE04 cheek close-up (benchmarks/repeatability.py) in which the
    meshes find the face only in the first: the others are lined up by their skin and
    measured, with a plain warning, instead of being turned away (1 of 5 accepted before)."""
    from datetime import datetime, timedelta

    from monitor.pipeline import FACE_CARRIED, analyse_series
    from tests.courses import SHARED_DATA
    from tests.scripts import load_script

    found = sorted((SHARED_DATA / "acne04-dev").glob("levle1_24_jpg*.jpg"))
    if not found:
        pytest.skip("the shared ACNE04 dev photos are not beside the repository")
    files, _ = load_script("benchmarks/repeatability.py").write_reshoots(found[0], tmp_path)
    days = {p.name: datetime(2026, 1, 1) + timedelta(days=k) for k, p in enumerate(files)}
    analysis = analyse_series(files, captured_at=days, strict=True)
    photos = analysis["photos"]
    assert [p["status"] for p in photos] == ["ok"] * 5, [p.get("reason") for p in photos]
    carried = [p for p in photos if FACE_CARRIED in p["warnings"]]
    assert len(carried) >= 3
    counts = [p["lesion_count"] for p in photos]
    assert max(counts) - min(counts) <= 3, counts  # 11-13 measured, unchanged skin
    assert all(p["alignment_score"] > 0.95 for p in carried)


SMILE = PoseRange(expression_iod=0.02)


def _refined_errors_iod(c, alignments) -> tuple[np.ndarray, np.ndarray]:
    """Face-point errors (reference IODs) through the homography alone and refined."""
    plain, refined = [], []
    for photo in c.photos[1:]:
        src, dst = c.correspondence(photo.day, c.photos[0].day)
        iod = np.linalg.norm(dst[468] - dst[473])
        result = alignments[photo.day]
        plain.append(np.linalg.norm(apply_homography(result.to_reference, src) - dst, axis=1))
        mapped = (apply_homography(result.to_reference, src) if result.refinement is None
                  else result.refinement.to_reference(result.to_reference, src))
        refined.append(np.linalg.norm(mapped - dst, axis=1))
    return np.concatenate(plain) / iod, np.concatenate(refined) / iod


@pytest.mark.parametrize(("face", "seed"), [("astronaut", 31), ("hopper_deep", 33)])
def test_refinement_follows_a_smile(face, seed):
    """A smile of up to 2 % of the inter-ocular distance: the homography alone misses the
    mouth corners; with the refinement every face point is within 1.5 % (issue #14)."""
    c = make_course(seed, days=(0, 1, 2, 3), face=face, pose=SMILE)
    reference_face = find_face(c.photos[0].image)
    target = prepare_reference(c.photos[0].image, reference_face)
    alignments = {p.day: align(p.image, find_face(p.image), target) for p in c.photos[1:]}
    plain, refined = _refined_errors_iod(c, alignments)
    assert any(a.refinement is not None for a in alignments.values())
    assert plain.max() > 0.015  # the test would not show anything otherwise
    assert refined.max() <= 0.015, f"worst {refined.max():.4f} IOD"
    assert np.median(refined) <= 0.007
    iod = reference_face.inter_ocular_px
    near = _near_face(reference_face, 0.5 * iod)
    for a in alignments.values():
        assert 0.0 <= a.score <= 1.0
        if a.refinement is not None:
            # Where lesions and redness are read (the skin, and half a pupil distance around
            # it) the correction stays within a few per cent of the inter-ocular distance. Its
            # plane part grows away from the face: on an AMD EPYC host, 10 % at the working
            # image's bottom corners (5.9 % within reach of the face), within 7 % elsewhere.
            size = np.hypot(a.refinement.dx, a.refinement.dy)
            assert size[_grid_inside(a.refinement, near)].max() < 0.07 * iod
            assert a.refinement.largest() < 0.15 * iod


def _near_face(face, reach_px: float) -> np.ndarray:
    """The face's skin and ``reach_px`` around it, in the photo's pixels."""
    import cv2

    side = 2 * int(round(reach_px)) + 1
    return cv2.dilate(face.skin_mask().astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))) > 0


def _grid_inside(refinement: Refinement, mask: np.ndarray) -> np.ndarray:
    """Which points of the refinement's grid fall on ``mask`` (reference pixels)."""
    rows, cols = np.mgrid[0:refinement.dx.shape[0], 0:refinement.dx.shape[1]]
    points = apply_homography(refinement.grid_to_reference,
                              np.c_[cols.ravel(), rows.ravel()].astype(np.float64))
    x = np.clip(np.round(points[:, 0]).astype(int), 0, mask.shape[1] - 1)
    y = np.clip(np.round(points[:, 1]).astype(int), 0, mask.shape[0] - 1)
    return mask[y, x].reshape(rows.shape)


def test_no_refinement_without_an_expression():
    c = make_course(32, days=(0, 1, 2, 3), pose=PoseRange(expression_iod=0.0))
    target = prepare_reference(c.photos[0].image, find_face(c.photos[0].image))
    for photo in c.photos[1:]:
        assert align(photo.image, find_face(photo.image), target).refinement is None


def test_refinement_maps_both_ways_and_through_json():
    rows, cols = np.mgrid[0:30, 0:40].astype(np.float32)
    refinement = Refinement(
        grid_to_reference=np.array([[5.0, 0, 20], [0, 5.0, 10], [0, 0, 1]]),
        dx=(1.5 * np.sin(cols / 6)).astype(np.float32), dy=(np.cos(rows / 5)).astype(np.float32))
    homography = np.array([[0.98, 0.05, 12.0], [-0.04, 1.03, -7.0], [1e-5, -2e-5, 1.0]])
    points = np.array([[50.0, 40.0], [120.5, 90.2], [180.0, 150.0], [-40.0, 500.0]])
    there = refinement.from_reference(homography, points)
    assert np.abs(refinement.to_reference(homography, there) - points).max() < 1e-3
    # Beyond the grid the correction is zero: the homography alone.
    assert np.allclose(there[3], apply_homography(np.linalg.inv(homography), points[3:])[0])
    again = Refinement.from_json(refinement.to_json())
    assert np.abs(again.displacement(points) - refinement.displacement(points)).max() < 0.01
    entry = {"to_reference": homography.tolist(), "to_reference_refinement": refinement.to_json()}
    assert np.abs(photo_to_reference(entry, there) - points).max() < 0.02
    assert np.allclose(photo_to_reference({"to_reference": homography.tolist()}, points),
                       apply_homography(homography, points))
    with pytest.raises(ValueError, match="same shape"):
        Refinement.from_json({**refinement.to_json(), "dy": [[0.0]]})
