"""The judge of every figure we quote (monitor.testing.evaluation), checked on cases whose answer is
known by hand: matching, the scores made from it, annotations read, and a course's accuracy
from an analysis that is right by construction and from ones wrong by a known amount."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from monitor.testing import (
    LesionScore,
    PoseRange,
    course_accuracy,
    make_course,
    match_lesions,
    voc_objects,
)


def _spot(x, y, radius=4.0):
    return {"x": x, "y": y, "radius": radius}


def test_matching_is_one_to_one_within_the_reach():
    truth = [_spot(100, 100, 4)]  # reach 1.5 * 4 + 3 = 9 px
    assert match_lesions([_spot(108.9, 100)], truth) == LesionScore(1, 0, 0)
    assert match_lesions([_spot(109.1, 100)], truth) == LesionScore(0, 1, 1)
    # Two detections of one lesion: one matches, the other is a false positive.
    assert match_lesions([_spot(101, 100), _spot(99, 101)], truth) == LesionScore(1, 1, 0)
    assert match_lesions([], truth) == LesionScore(0, 0, 1)
    assert match_lesions([_spot(5, 5)], []) == LesionScore(0, 1, 0)


def test_matching_finds_the_best_pairing_not_the_greedy_one():
    # Detection A is nearest to lesion 1, but lesion 2 can only be matched by A: a greedy
    # matcher pairs A with 1 and leaves B and 2 unmatched; the best pairing matches both.
    truth = [_spot(0, 0, 4), _spot(12, 0, 4)]
    detected = [_spot(5, 0), _spot(-5, 0)]  # A at 5 (5 from 1, 7 from 2), B at -5 (5 from 1)
    assert match_lesions(detected, truth) == LesionScore(2, 0, 0)


def test_scores_from_counts():
    score = LesionScore(6, 2, 4)
    assert score.precision == pytest.approx(0.75)
    assert score.recall == pytest.approx(0.6)
    assert score.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert score + LesionScore(1, 1, 1) == LesionScore(7, 3, 5)
    # Nothing to find and nothing found is perfect, not a division by zero.
    assert LesionScore(0, 0, 0).f1 == LesionScore(0, 0, 0).precision == 1.0
    assert LesionScore(0, 3, 0).precision == 0.0 and LesionScore(0, 3, 0).f1 == 0.0


def test_annotations_are_read_from_pascal_voc(tmp_path):
    xml = tmp_path / "photo.xml"
    xml.write_text("""<annotation>
  <object><name>papules</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>30</xmax>
    <ymax>44.5</ymax></bndbox></object>
  <object><name>note without a box</name></object>
  <object><name>pustules</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>
    </bndbox></object>
</annotation>""", encoding="utf-8")
    assert voc_objects(xml) == [("papules", 10.0, 20.0, 30.0, 44.5),
                                ("pustules", 1.0, 2.0, 3.0, 4.0)]


@pytest.fixture(scope="module")
def course():
    # No expression: each photo is its homography of the base image, so the true alignment
    # of a photo onto the reference is known exactly.
    return make_course(11, days=(0, 2, 4, 6), n_lesions=8,
                       pose=PoseRange(expression_iod=0.0))


def _right_analysis(course):
    """The analysis a perfect reader would write: true alignment, lesions and redness."""
    reference = course.photos[0]
    photos = []
    for photo in course.photos:
        to_reference = reference.homography @ np.linalg.inv(photo.homography)
        truth = photo.lesions_in_photo()
        photos.append({
            "file": f"day{photo.day}.jpg", "status": "ok",
            "to_reference": to_reference.tolist(), "to_reference_refinement": None,
            "lesions": [_spot(t["x"], t["y"], t["radius"]) for t in truth],
            "lesion_count": len(truth),
            "redness": {"index": 10.0 * photo.erythema},
        })
    return {"reference": "day0.jpg", "photos": photos}


def test_a_right_analysis_scores_perfectly(course):
    figures = course_accuracy(course, _right_analysis(course))
    assert figures["photos"] == figures["accepted"] == 4
    assert figures["alignment_worst_iod"] < 1e-9
    total = sum(len(p.lesions) for p in course.photos)
    assert figures["lesions"] == LesionScore(total, 0, 0)
    assert figures["count_error_mean"] == 0.0
    assert figures["redness_spearman"] == pytest.approx(1.0)


def test_known_errors_are_measured_as_made(course):
    analysis = _right_analysis(course)
    photos = analysis["photos"]
    # Day 2: one lesion missed and one invented; day 4 rejected; day 6 aligned 1 px off.
    day2 = photos[1]
    assert day2["lesions"], "the course must show lesions on day 2"
    day2["lesions"] = day2["lesions"][1:] + [_spot(3, 3)]
    photos[2].update(status="rejected", lesions=None, lesion_count=None, redness=None)
    shifted = np.array(photos[3]["to_reference"])
    photos[3]["to_reference"] = (np.array([[1, 0, 1.0], [0, 1, 0], [0, 0, 1]]) @ shifted).tolist()
    # Redness reported in the wrong order on the last day.
    photos[3]["redness"] = {"index": 100.0}
    figures = course_accuracy(course, analysis)
    assert figures["accepted"] == 3
    kept = [course.photos[k] for k in (0, 1, 3)]
    total = sum(len(p.lesions) for p in kept)
    assert figures["lesions"] == LesionScore(total - 1, 1, 1)
    assert figures["count_error_mean"] == 0.0  # one missed, one invented: the count is right
    iod = np.linalg.norm(course.base_landmarks[468] - course.base_landmarks[473])
    scale = np.sqrt(abs(np.linalg.det(course.photos[0].homography[:2, :2])))
    assert figures["alignment_worst_iod"] == pytest.approx(1.0 / (iod * scale), rel=0.02)
    # The rejected day is left out of the redness too: the three accepted days' ranks.
    erythema = [p.erythema for p in kept]
    expected = spearmanr(erythema, [10.0 * erythema[0], 10.0 * erythema[1], 100.0])[0]
    assert figures["redness_spearman"] == pytest.approx(expected)
    assert expected < 1.0  # the course's last day is not its reddest: the error shows
