"""The whole-face lesion path on real photos (``benchmarks/face_accuracy.py``).

The scoring is checked on hand-made analyses whose figures are known; the guards run the
benchmark on the ACNE04 dev split in place (skipped when it is not beside the repository).
The engine is being tuned, so the guards are the constants below: raise them as it improves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

DEV_DIR = Path(__file__).resolve().parents[2] / "shared/data/acne04-dev"

MIN_FACES_FOUND = 40  # of the 60 dev photos
MIN_COUNT_SPEARMAN = 0.80
# Issue #13's target is 4.0: measured 3.84 on the 50 dev faces found before find_face retried
# inside a grey border, 4.27 on the 56 found with it (the six added are crowded cheek
# close-ups, read 7.9 lesions off on average), 4.04 once a lesion's neighbours were left out
# of the skin its redness is compared with.
MAX_COUNT_MAE = 4.2
MIN_F1 = 0.60
MAX_CROWDED_READ_LOW = 0  # photos with >= 40 annotated lesions read as fewer than 20

bench = load_script("benchmarks/face_accuracy.py")


def _entry(points=None, *, reason=None):
    """An ``analysis["photos"][i]`` entry: accepted with these lesion centres, or rejected."""
    if points is None:
        return {"status": "rejected", "reason": reason, "lesion_count": None, "lesions": None}
    lesions = [{"x": x, "y": y, "radius": 3.0, "kind": "papule"} for x, y in points]
    return {"status": "ok", "reason": None, "lesion_count": len(lesions), "lesions": lesions,
            "face": {"box": [0.0, 0.0, 640.0, 640.0]}}


BOXES = np.array([[10, 10, 20, 20], [30, 30, 40, 40], [100, 100, 110, 110]], float)


@pytest.mark.parametrize(
    ("label", "points", "found", "matched"),
    [
        ("all three boxes hit once", [(15, 15), (35, 35), (105, 105)], 3, 3),
        ("two centres in one box count once", [(12, 12), (18, 18)], 2, 1),
        ("a centre on the box edge is inside", [(20, 20)], 1, 1),
        ("a centre outside every box", [(60, 60)], 1, 0),
        ("nothing found", [], 0, 0),
    ],
)
def test_score_photo_matches_centres_to_boxes(label, points, found, matched):
    row = bench.score_photo(_entry(points), BOXES, file="p.jpg", grade=1)
    assert row.face_found and row.reason is None, label
    assert (row.annotated, row.found, row.matched) == (3, found, matched), label


def test_score_photo_without_a_face_has_no_count():
    row = bench.score_photo(_entry(reason="no face"), BOXES, file="p.jpg")
    assert not row.face_found
    assert (row.found, row.matched, row.reason, row.annotated) == (None, None, "no face", 3)


def test_summarise_known_figures():
    reject = "We could not find a face in this photo."
    rows = [
        # grade 0: 1 box, 2 found (1 right) -> error 1, bias +1
        bench.score_photo(_entry([(15, 15), (60, 60)]), BOXES[:1], file="a.jpg", grade=0,
                          seconds=1.0),
        # grade 1: 2 boxes, 1 found and right -> error 1, bias -1
        bench.score_photo(_entry([(35, 35)]), BOXES[:2], file="b.jpg", grade=1, seconds=2.0),
        # grade 1: 3 boxes, 3 found and right -> error 0
        bench.score_photo(_entry([(15, 15), (35, 35), (105, 105)]), BOXES, file="c.jpg",
                          grade=1, seconds=3.0),
        # grade 3, no face: left out of the counts, counted among the rejections
        bench.score_photo(_entry(reason=reject), BOXES, file="d.jpg", grade=3, seconds=2.0),
        bench.score_photo(_entry(reason=reject), BOXES, file="e.jpg", grade=3, seconds=2.0),
    ]
    acc = bench.summarise(rows)
    assert (acc.n_photos, acc.faces_found) == (5, 3)
    assert acc.rejections == {reject: 2}
    assert acc.seconds_per_photo == pytest.approx(2.0)
    s = acc.overall
    # 5 true positives of 6 found and 6 annotated.
    assert s.n_photos == 3
    assert (s.precision, s.recall, s.f1) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    assert s.count_mae == pytest.approx(2 / 3)
    assert s.count_bias == pytest.approx(0.0)
    assert s.count_spearman == pytest.approx(0.5)  # found 2, 1, 3 vs annotated 1, 2, 3
    assert sorted(acc.by_grade) == [0, 1, 3]
    assert acc.by_grade[1].count_mae == pytest.approx(0.5)
    assert acc.by_grade[0].count_bias == pytest.approx(1.0)
    assert acc.by_grade[3].n_photos == 0 and math.isnan(acc.by_grade[3].count_mae)
    assert "faces found 3/5" in acc.summary()


def test_crowded_photo_read_low_misses_a_target():
    many = np.array([[i * 10, 0, i * 10 + 8, 8] for i in range(45)], float)
    low = bench.score_photo(_entry([(4, 4)] * 5), many, file="low.jpg", grade=3)
    unread = bench.score_photo(_entry(reason="no face"), many, file="unread.jpg", grade=3)
    acc = bench.summarise([low, unread])
    assert [row.file for row in acc.crowded] == ["low.jpg", "unread.jpg"]
    assert low.read_low and not unread.read_low
    assert any("below 20" in m for m in acc.missed_targets())
    assert "<< below 20" in bench.report(acc)


def test_select_pairs_by_grade_and_spread():
    pairs = [(Path(f"levle{g}_{i}.jpg"), Path(f"levle{g}_{i}.xml")) for g in range(4)
             for i in range(5)]
    assert {bench.severity_grade(p) for p, _ in bench.select_pairs(pairs, grades=[2, 3])} == {
        2, 3}
    picked = bench.select_pairs(pairs, limit=4)
    assert [p.name for p, _ in picked] == ["levle0_0.jpg", "levle1_1.jpg", "levle2_3.jpg",
                                           "levle3_4.jpg"]


# --------------------------------------------------------------------------------------------
# Real photos (ACNE04 dev split, never used for training): 15-20 s on two cores


@pytest.fixture(scope="module")
def dev_accuracy():
    if not DEV_DIR.is_dir() or not any(DEV_DIR.glob("*.xml")):
        pytest.skip(f"annotated photos not found at {DEV_DIR}")
    return bench.face_accuracy(bench.photo_pairs(DEV_DIR))


@pytest.mark.slow
def test_dev_faces_found(dev_accuracy):
    found = dev_accuracy.faces_found
    assert found >= MIN_FACES_FOUND, dict(dev_accuracy.rejections)


@pytest.mark.slow
def test_dev_count_rank_agreement(dev_accuracy):
    rho = dev_accuracy.overall.count_spearman
    assert rho >= MIN_COUNT_SPEARMAN, dev_accuracy.summary()


@pytest.mark.slow
def test_dev_count_error(dev_accuracy):
    mae = dev_accuracy.overall.count_mae
    assert mae <= MAX_COUNT_MAE, dev_accuracy.summary()


@pytest.mark.slow
def test_dev_f1(dev_accuracy):
    f1 = dev_accuracy.overall.f1
    assert f1 >= MIN_F1, dev_accuracy.summary()


@pytest.mark.slow
def test_dev_crowded_photos_not_read_low(dev_accuracy):
    low = [(row.file, row.annotated, row.found) for row in dev_accuracy.rows if row.read_low]
    assert len(low) <= MAX_CROWDED_READ_LOW, low
