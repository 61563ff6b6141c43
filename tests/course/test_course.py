"""Tests of monitor.course on seeded synthetic courses (see tests/course_series.py)."""

from __future__ import annotations

import inspect
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.course as course_module
from monitor.course import (
    DEFAULT_EXPECTED_COURSE,
    STATUSES,
    ExpectedCourse,
    Severity,
    Symptoms,
    assess_course,
    hayashi_grade,
    summarise,
    track_lesions,
)
from tests.contract_shape import missing, shape
from tests.course_series import Truth, build_course, shift_dates

SEEDS = range(20)
GOOD = {"resolved", "resolving_as_expected"}
OFF = {"worsening", "slower_than_expected"}

# --------------------------------------------------------------------------------------------
# Status across seeds: a table of labelled cases
# --------------------------------------------------------------------------------------------

# label, build_course options, allowed statuses, expected flag (None: not checked)
STATUS_CASES = [
    ("peaks day 2, clears by day 7", dict(shape="clear"), GOOD, False),
    ("clears, observed to day 7", dict(shape="clear", days=range(0, 8)), GOOD, False),
    ("clears, gaps between photos", dict(shape="clear", days=(0, 1, 2, 4, 5, 7, 9)), GOOD, False),
    ("clears, photos on days 0, 2, 5, 8", dict(shape="clear", days=(0, 2, 5, 8)), GOOD, False),
    ("clears, no treatment date", dict(shape="clear", with_day=False), GOOD, False),
    ("clears, two photos a day", dict(shape="clear", photos_per_day=2), GOOD, False),
    ("clears, three photos on some days",
     dict(shape="clear", photos_per_day={1: 3, 4: 3, 8: 2}), GOOD, False),
    ("clears, redness follows spots", dict(shape="clear", redness_shape="following"), GOOD, False),
    ("clears, chronic acne before treatment",
     dict(shape="clear", chronic=8, days=range(-2, 10)), GOOD, False),
    ("clears, noisy detector",
     dict(shape="clear", miss_rate=0.1, false_spots=1.5, align_error_px=3.0), GOOD, False),
    ("clears, with rejected photos", dict(shape="clear", rejected=3), GOOD, False),
    ("day 4 of a clearing course", dict(shape="clear", days=range(0, 5)),
     {"resolving_as_expected"}, False),
    ("no breakout at all", dict(shape="none"), GOOD, False),
    ("still growing on day 9", dict(shape="growing"), OFF, True),
    ("still growing on day 9, no treatment date", dict(shape="growing", with_day=False), OFF, True),
    ("still growing on day 9, sparse photos", dict(shape="growing", days=(0, 3, 6, 9)), OFF, True),
    ("spots last two weeks", dict(shape="slow", days=range(0, 11)),
     {"slower_than_expected"}, True),
    ("second crop of spots from day 6", dict(shape="second_wave"), {"worsening"}, True),
    ("redness stays up past a week", dict(shape="clear", redness_shape="persistent"),
     {"slower_than_expected"}, True),
    ("two days of photos", dict(shape="clear", days=(0, 1)), {"insufficient_data"}, False),
    ("a single photo", dict(shape="clear", days=(3,)), {"insufficient_data"}, False),
    ("only the treatment day", dict(shape="clear", days=(0,), photos_per_day=3),
     {"insufficient_data"}, False),
    ("only before treatment", dict(shape="clear", days=(-3, -2, -1, 0)),
     {"insufficient_data"}, False),
]


@pytest.mark.parametrize(
    ("label", "options", "allowed", "flag"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES]
)
def test_status_across_seeds(label, options, allowed, flag):
    wrong = []
    for seed in SEEDS:
        photos, _ = build_course(seed, **options)
        course = assess_course(photos)
        if course.status not in allowed or (flag is not None and course.see_dermatologist != flag):
            wrong.append((seed, course.status, course.see_dermatologist, course.reasons))
        if course.see_dermatologist:
            assert course.reasons and course.flag_reasons
    assert wrong == [], f"{label}: {len(wrong)}/{len(SEEDS)} seeds wrong: {wrong[:3]}"


def test_growing_course_says_why_in_plain_words():
    photos, _ = build_course(0, shape="growing")
    course = assess_course(photos)
    assert course.status == "worsening"
    assert "Spots are still increasing on day 9." in course.reasons
    assert course.projected_resolution_day is None


def test_slow_course_says_spots_have_not_cleared():
    photos, _ = build_course(1, shape="slow", days=range(0, 11))
    course = assess_course(photos)
    assert any(r.startswith("Spots have not cleared after 7 days") for r in course.reasons)


def test_persistent_redness_says_redness_has_not_come_down():
    photos, _ = build_course(2, shape="clear", redness_shape="persistent")
    course = assess_course(photos)
    assert "Redness has not come down after 7 days." in course.reasons
    assert course.redness_state == "not_coming_down"


def test_second_wave_names_new_pustules_after_day_5():
    flagged = 0
    for seed in SEEDS:
        photos, _ = build_course(seed, shape="second_wave", pustule_fraction=0.6)
        course = assess_course(photos)
        flagged += any(r.startswith("New pustules appeared after day 5") for r in course.reasons)
    assert flagged >= 18


def test_clearing_course_projects_resolution_near_the_true_day():
    """Six days of a clearing course project its end: the true day it clears (the first day
    of the same course, observed for longer, with no painted lesion) lies inside the 95 %
    interval, and the projection is close to it."""
    covered, errors = 0, []
    for seed in SEEDS:
        photos, _ = build_course(seed, shape="clear", days=range(0, 6))
        course = assess_course(photos)
        if course.projected_resolution_day is None:
            continue
        _, truth = build_course(seed, shape="clear", days=range(0, 20))
        cleared = 1 + max(day for day, present in truth.present.items() if present)
        low, high = course.projected_resolution_interval
        assert low <= course.projected_resolution_day
        assert high is None or course.projected_resolution_day <= high
        covered += low <= cleared and (high is None or cleared <= high)
        errors.append(abs(course.projected_resolution_day - cleared))
    assert len(errors) >= 15  # 18 of 20 measured
    assert covered >= 0.9 * len(errors), (covered, len(errors))  # all 18 measured
    assert float(np.median(errors)) <= 2.0, errors  # 1.45 days measured


def test_projection_needs_three_days_after_the_peak():
    photos, _ = build_course(0, shape="clear", days=range(0, 4))
    assert assess_course(photos).projected_resolution_day is None


# --------------------------------------------------------------------------------------------
# Invariance: input order and shifted dates
# --------------------------------------------------------------------------------------------

SHAPES = st.sampled_from(["clear", "growing", "slow", "second_wave", "none"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shape=SHAPES, shuffle=st.randoms(use_true_random=False),
       two_a_day=st.booleans())
def test_input_order_changes_nothing(seed, shape, shuffle, two_a_day):
    photos, _ = build_course(seed, shape=shape, photos_per_day=2 if two_a_day else 1, rejected=2)
    shuffled = list(photos)
    shuffle.shuffle(shuffled)
    assert assess_course(shuffled).to_json() == assess_course(photos).to_json()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shape=SHAPES, shift=st.integers(-3000, 3000),
       hours=st.floats(0, 12))
def test_shifting_every_date_changes_nothing(seed, shape, shift, hours):
    """Photos are taken 8:00-11:00, so up to 12 hours later they stay on the same date."""
    photos, _ = build_course(seed, shape=shape, with_day=False)
    expected = assess_course(photos).to_json()
    shifted = shift_dates(photos, days=shift, hours=hours)
    assert assess_course(shifted).to_json() == expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shape=SHAPES, shift=st.integers(-3000, 3000))
def test_shifted_dates_with_a_treatment_day_keep_the_status(seed, shape, shift):
    photos, _ = build_course(seed, shape=shape)
    assert assess_course(shift_dates(photos, days=shift)).status == assess_course(photos).status


def test_days_from_dates_match_days_from_treatment_when_treated_on_the_first_photo():
    with_day, _ = build_course(3, shape="clear")
    without_day, _ = build_course(3, shape="clear", with_day=False)
    a, b = assess_course(with_day).to_json(), assess_course(without_day).to_json()
    assert b["day_origin"] == "first_photo" and a["day_origin"] == "treatment"
    assert [d["day"] for d in a["series"]] == [d["day"] for d in b["series"]]
    a.pop("day_origin"), b.pop("day_origin"), a.pop("summary"), b.pop("summary")
    assert a == b


def test_days_from_dates_are_calendar_days_in_the_photo_time_zone():
    tz = timezone(timedelta(hours=-5))
    times = [datetime(2026, 1, 1, 22, 30, tzinfo=tz), datetime(2026, 1, 2, 7, 0, tzinfo=tz),
             datetime(2026, 1, 3, 23, 59, tzinfo=tz)]
    photos = [
        {"file": f"{i}.jpg", "captured_at": t.isoformat(), "day": None, "status": "ok",
         "redness": {"index": 1.0}, "lesion_count": 2, "lesions": []}
        for i, t in enumerate(times)
    ]
    assert [d.day for d in assess_course(photos).series] == [0, 1, 2]


# --------------------------------------------------------------------------------------------
# Lesion tracking
# --------------------------------------------------------------------------------------------


def _identity(photos: list[dict], truth: Truth, tracking) -> tuple[int, int]:
    """Consecutive detections of one painted lesion that kept one track id: (kept, pairs)."""
    owner = {src: t.id for t in tracking.tracks for s in t.sightings for src in s.sources}
    seen: dict[int, dict[int, set]] = {}
    for photo in photos:
        if photo["status"] != "ok":
            continue
        for index, lesion_id in enumerate(truth.lesion_ids[photo["file"]]):
            if lesion_id is not None:
                seen.setdefault(lesion_id, {}).setdefault(photo["day"], set()).add(
                    owner.get((photo["file"], index))
                )
    kept = pairs = 0
    for by_day in seen.values():
        days = sorted(by_day)
        for a, b in zip(days, days[1:], strict=False):
            pairs += 1
            kept += len(by_day[a]) == 1 and by_day[a] == by_day[b] and None not in by_day[a]
    return kept, pairs


TRACKING_CASES = [
    ("clear course, noisy detector", dict(shape="clear")),
    ("growing course", dict(shape="growing")),
    ("two weeks of spots", dict(shape="slow", days=range(0, 11))),
    ("two photos a day", dict(shape="clear", photos_per_day=2)),
    ("gaps between photos", dict(shape="slow", days=(0, 1, 3, 4, 7, 8, 10))),
    ("poor alignment", dict(shape="clear", align_error_px=3.0, jitter_px=1.5)),
]


@pytest.mark.parametrize(("label", "options"), TRACKING_CASES, ids=[c[0] for c in TRACKING_CASES])
def test_a_painted_lesion_keeps_its_identity(label, options):
    kept = pairs = 0
    for seed in SEEDS:
        photos, truth = build_course(seed, **options)
        k, p = _identity(photos, truth, track_lesions(photos))
        kept, pairs = kept + k, pairs + p
    assert pairs > 300
    assert kept / pairs >= 0.95, f"{label}: identity kept {kept / pairs:.3f} of {pairs} pairs"


CLEAN = dict(miss_rate=0.0, false_spots=0.0, align_error_px=0.5, jitter_px=0.3)


@pytest.mark.parametrize("days", [range(0, 10), (0, 1, 3, 4, 7, 9)], ids=["daily", "gaps"])
def test_new_persisting_resolved_counts_are_exact_on_clean_data(days):
    for seed in SEEDS:
        photos, truth = build_course(seed, shape="slow", days=days, **CLEAN)
        tracking = track_lesions(photos)
        observed = sorted(truth.present)
        assert [d.day for d in tracking.days] == observed
        for k, day in enumerate(observed):
            now = truth.present[day]
            before = truth.present[observed[k - 1]] if k else set()
            entry = tracking.day(day)
            assert (entry.new, entry.persisting, entry.resolved) == (
                len(now - before), len(now & before), len(before - now)
            ), f"seed {seed} day {day}"
        identity_kept, pairs = _identity(photos, truth, tracking)
        assert identity_kept == pairs
        assert len(tracking.tracks) == len(set().union(*truth.present.values()))


def test_oldest_persisting_lesion_age():
    photos, truth = build_course(5, shape="clear", chronic=2, days=range(0, 10), **CLEAN)
    course = assess_course(photos)
    ages = [d.oldest_persisting_age_days for d in course.series]
    assert ages == [None] + list(range(1, 10))  # the chronic spots are there from day 0
    oldest = course.to_json()["oldest_persisting_lesion"]
    assert oldest["first_day"] == 0 and oldest["age_days"] == 9


def test_a_lesion_missed_for_one_day_keeps_its_identity():
    frame = np.eye(3).tolist()

    def photo(day: int, spots: list[tuple[float, float]]) -> dict:
        return {"file": f"d{day}.jpg", "day": day, "status": "ok", "to_reference": frame,
                "lesion_count": len(spots),
                "lesions": [{"x": x, "y": y, "radius": 5.0, "kind": "papule",
                             "confidence": 0.9} for x, y in spots]}

    a, b = (100.0, 100.0), (300.0, 300.0)
    photos = [photo(1, [a, b]), photo(2, [a]), photo(3, [a, b]), photo(4, [a]), photo(5, [a])]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 2
    b_track = next(t for t in tracking.tracks if t.x_ref > 200)
    assert b_track.days == (1, 3) and b_track.resolved_day == 4
    assert tracking.day(2).persisting == 2  # b was missed, not gone
    assert tracking.day(4).resolved == 1


def test_a_lesion_missed_for_two_days_is_a_new_lesion():
    frame = np.eye(3).tolist()
    photos = [
        {"file": f"d{d}.jpg", "day": d, "status": "ok", "to_reference": frame,
         "lesions": [{"x": 50.0, "y": 50.0, "radius": 4.0, "kind": "papule"}] * (d in (0, 3))}
        for d in range(4)
    ]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 2
    assert tracking.day(3).new == 1 and tracking.day(1).resolved == 1


def test_tracking_goes_through_to_reference():
    """A large shift between photos is undone by to_reference, not by a wide gate."""
    shift = np.array([[1.0, 0.0, 400.0], [0.0, 1.0, -250.0], [0.0, 0.0, 1.0]])
    back = np.linalg.inv(shift).tolist()
    photos = [
        {"file": "a.jpg", "day": 1, "status": "ok", "to_reference": np.eye(3).tolist(),
         "lesions": [{"x": 100.0, "y": 400.0, "radius": 5.0, "kind": "papule"}]},
        {"file": "b.jpg", "day": 2, "status": "ok", "to_reference": back,
         "lesions": [{"x": 501.0, "y": 149.0, "radius": 5.0, "kind": "papule"}]},
    ]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 1
    assert tracking.tracks[0].x_ref == pytest.approx(100.5)


def test_tracking_goes_through_the_refinement():
    """A photo whose homography is the identity but whose refinement says the skin at the
    reference's (100, 400) shows 30 px to the right: its lesion there is the same lesion."""
    refinement = {"grid_to_reference": [[50.0, 0, 0], [0, 50.0, 0], [0, 0, 1]],
                  "dx": [[30.0] * 12] * 12, "dy": [[0.0] * 12] * 12}
    photos = [
        {"file": "a.jpg", "day": 1, "status": "ok", "to_reference": np.eye(3).tolist(),
         "lesions": [{"x": 100.0, "y": 400.0, "radius": 5.0, "kind": "papule"}]},
        {"file": "b.jpg", "day": 2, "status": "ok", "to_reference": np.eye(3).tolist(),
         "to_reference_refinement": refinement,
         "lesions": [{"x": 131.0, "y": 400.0, "radius": 5.0, "kind": "papule"}]},
    ]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 1
    assert tracking.tracks[0].x_ref == pytest.approx(100.5)
    del photos[1]["to_reference_refinement"]
    assert len(track_lesions(photos).tracks) == 2


@pytest.mark.parametrize("refinement", [[1, 2], {"dx": [[0.0]], "dy": [[0.0]]},
                                        {"grid_to_reference": np.eye(3).tolist(),
                                         "dx": [[0.0, 1.0]], "dy": [[0.0]]}])
def test_a_malformed_refinement_says_what_was_expected(refinement):
    photo = {"file": "a.jpg", "status": "ok", "day": 1, "to_reference": np.eye(3).tolist(),
             "lesions": [{"x": 1, "y": 2}], "to_reference_refinement": refinement}
    with pytest.raises(ValueError, match="to_reference_refinement"):
        assess_course([photo])


def test_tracking_ignores_records_without_lesion_positions():
    photos = [{"file": "a.jpg", "day": 1, "status": "ok", "lesion_count": 3}]
    assert track_lesions(photos).tracks == ()
    course = assess_course(photos)
    assert course.series[0].new is None and course.series[0].lesion_count == 3


def _with_extra_pustules(photos: list[dict], spots: dict[int, list[tuple[float, float]]]):
    """The photos with pustules painted at reference points on the given days."""
    out = []
    for photo in photos:
        extra = spots.get(photo["day"], [])
        if extra:
            to_photo = np.linalg.inv(np.array(photo["to_reference"]))
            photo = dict(photo, lesions=list(photo["lesions"]))
            for x, y in extra:
                px, py, w = to_photo @ np.array([x, y, 1.0])
                photo["lesions"].append({"x": px / w, "y": py / w, "radius": 6.0,
                                         "kind": "pustule", "confidence": 0.9})
            photo["lesion_count"] = len(photo["lesions"])
        out.append(photo)
    return out


@pytest.mark.parametrize(
    ("spots", "flagged"),
    [({6: [(20.0, 20.0), (60.0, 20.0)], 7: [(20.0, 20.0), (60.0, 20.0)]}, True),
     ({6: [(20.0, 20.0), (60.0, 20.0)]}, False),  # seen once: likely detection errors
     ({6: [(20.0, 20.0)], 7: [(20.0, 20.0)]}, False),  # a single new pustule
     ({3: [(20.0, 20.0), (60.0, 20.0)], 4: [(20.0, 20.0), (60.0, 20.0)]}, False)],  # in time
    ids=["two, seen twice", "two, seen once", "one", "before day 5"],
)
def test_new_pustules_after_day_5_raise_the_flag(spots, flagged):
    photos, _ = build_course(0, shape="clear", miss_rate=0.0, false_spots=0.0)
    course = assess_course(_with_extra_pustules(photos, spots))
    named = any(r.startswith("New pustules appeared after day 5") for r in course.reasons)
    assert course.see_dermatologist == flagged and named == flagged


def test_a_count_without_positions_is_not_tracked_as_no_lesions():
    photos = [{"file": f"{d}.jpg", "day": d, "status": "ok", "lesion_count": 4,
               "lesions": [] if d == 2 else [{"x": 10.0, "y": 10.0, "radius": 3.0}]}
              for d in range(4)]
    tracking = track_lesions(photos)
    assert [d.day for d in tracking.days] == [0, 1, 3] and len(tracking.tracks) == 1


def test_tracking_options_are_checked():
    with pytest.raises(ValueError, match="gate_radius_factor"):
        track_lesions([], gate_radius_factor=0)
    with pytest.raises(ValueError, match="max_missed_days"):
        track_lesions([], max_missed_days=-1)


# --------------------------------------------------------------------------------------------
# Series: several photos a day, gaps, rejected photos, regions
# --------------------------------------------------------------------------------------------


def test_several_photos_on_one_day_are_combined_by_median():
    photos, _ = build_course(0, shape="clear", photos_per_day={2: 3})
    day2 = [p for p in photos if p["day"] == 2]
    course = assess_course(photos)
    entry = next(d for d in course.series if d.day == 2)
    assert entry.photos == 3
    assert entry.lesion_count == float(np.median([p["lesion_count"] for p in day2]))
    assert entry.redness_index == pytest.approx(np.median([p["redness"]["index"] for p in day2]))
    assert [d.photos for d in course.series].count(1) == 9


def test_gaps_leave_days_out_of_the_series():
    photos, _ = build_course(0, shape="clear", days=(0, 1, 4, 8))
    assert [d["day"] for d in assess_course(photos).to_json()["series"]] == [0, 1, 4, 8]


def test_rejected_photos_are_ignored():
    photos, _ = build_course(4, shape="clear")
    with_rejected, _ = build_course(4, shape="clear", rejected=4)
    garbage = {"file": "x.jpg", "status": "rejected", "reason": "no face", "day": None,
               "captured_at": None, "redness": None, "lesion_count": None, "lesions": None,
               "to_reference": None}
    assert assess_course(with_rejected + [garbage]).to_json() == assess_course(photos).to_json()


def test_photos_without_a_date_are_left_out_and_mentioned():
    photos, _ = build_course(0, shape="clear")
    undated = dict(photos[3], day=None, captured_at=None, file="undated.jpg")
    course = assess_course(photos + [undated])
    assert "1 photo has no date and was left out of the course." in course.reasons
    assert [d.photos for d in course.series] == [1] * 10
    no_dates = [dict(p, day=None) for p in photos] + [undated]
    assert len(assess_course(no_dates).series) == 10


def test_all_photos_rejected_is_insufficient_data():
    course = assess_course([{"file": "x.jpg", "status": "rejected", "day": 1}])
    assert course.status == "insufficient_data" and course.series == ()
    assert summarise(course).startswith("No usable photos yet.")


def test_by_region_series():
    photos, _ = build_course(0, shape="clear")
    day = assess_course(photos).to_json()["series"][2]
    assert set(day["by_region"]) == {"forehead", "left_cheek", "right_cheek", "nose", "chin"}
    assert sum(r["lesion_count"] for r in day["by_region"].values()) == day["lesion_count"]
    assert all(isinstance(r["redness_index"], float) for r in day["by_region"].values())


def test_redness_only_course():
    photos = [{"file": f"{d}.jpg", "day": d, "status": "ok",
               "redness": {"index": 6.0 * np.exp(-d / 1.5) + 0.05 * (-1) ** d}}
              for d in range(0, 9)]
    course = assess_course(photos)
    assert course.status == "resolved" and not course.see_dermatologist
    assert course.severity is None


# --------------------------------------------------------------------------------------------
# Symptoms, severity, expected course
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symptom", "words"),
    [("fever", "fever"), ("pain", "pain"), ("spreading_redness", "spreading"),
     ("pus", "pus"), ("cold_sores", "cold sores")],
)
def test_any_reported_symptom_raises_the_flag(symptom, words):
    photos, _ = build_course(0, shape="clear")
    calm = assess_course(photos)
    assert not calm.see_dermatologist
    course = assess_course(photos, symptoms=[Symptoms(**{symptom: True}, day=4)])
    assert course.see_dermatologist and course.status == calm.status
    assert any(words in r and "day 4" in r for r in course.flag_reasons)
    assert "Consider contacting your dermatologist" in summarise(course)


def test_symptoms_raise_the_flag_even_with_too_few_photos():
    course = assess_course([], symptoms=[Symptoms(fever=True)])
    assert course.status == "insufficient_data" and course.see_dermatologist


def test_no_symptoms_reported_leaves_the_flag_down():
    photos, _ = build_course(0, shape="clear")
    assert not assess_course(photos, symptoms=[Symptoms(day=3)]).see_dermatologist


def test_symptoms_are_checked():
    with pytest.raises(TypeError, match="fever"):
        Symptoms(fever="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Symptoms values"):
        assess_course([], symptoms=[{"fever": True}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("half_face", "grade"),
    [(0, "mild"), (5, "mild"), (6, "moderate"), (20, "moderate"), (21, "severe"),
     (50, "severe"), (51, "very severe"), (400, "very severe")],
)
def test_hayashi_boundaries(half_face, grade):
    assert hayashi_grade(half_face) == grade


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3", None])
def test_hayashi_rejects_non_counts(bad):
    with pytest.raises(ValueError, match="half_face_count"):
        hayashi_grade(bad)


@pytest.mark.parametrize(
    ("whole_face", "half", "grade"),
    [(0, 0, "mild"), (10, 5, "mild"), (11, 6, "moderate"), (40, 20, "moderate"),
     (41, 21, "severe"), (100, 50, "severe"), (101, 51, "very severe"), (10.5, 6, "moderate")],
)
def test_severity_from_whole_face_count(whole_face, half, grade):
    severity = Severity.from_whole_face(whole_face, day=3)
    assert (severity.half_face_count, severity.grade) == (half, grade)


def test_severity_in_the_output_names_the_scale():
    photos, _ = build_course(0, shape="growing")
    trend = assess_course(photos).to_json()
    severity = trend["severity"]
    assert severity["scale"].startswith("Hayashi")
    assert severity["day"] == 9 and severity["grade"] in {"moderate", "severe", "very severe"}
    assert severity["count"] == -(-trend["series"][-1]["lesion_count"] // 2)


def test_expected_band_shape_and_edges():
    days = np.arange(-2, 15)
    band = DEFAULT_EXPECTED_COURSE.band(days)
    assert band.upper.shape == band.lower.shape == band.typical.shape == (17,)
    assert np.all(band.lower == 0) and np.all(band.upper <= 1) and np.all(band.upper >= 0)
    upper = dict(zip(days.tolist(), band.upper.tolist(), strict=True))
    assert upper[0] == upper[4] == 1.0
    assert upper[7] == pytest.approx(0.2) and upper[14] == pytest.approx(0.2)
    assert np.all(np.diff(band.upper[days >= 0]) <= 0)
    assert np.all(band.typical <= band.upper + 1e-12)
    redness = DEFAULT_EXPECTED_COURSE.band(days, measure="redness")
    assert dict(zip(days.tolist(), redness.upper.tolist(), strict=True))[3] == 1.0
    with pytest.raises(ValueError, match="measure"):
        DEFAULT_EXPECTED_COURSE.band(days, measure="pores")


def test_the_expected_course_is_configurable():
    photos, _ = build_course(1, shape="slow", days=range(0, 11))
    assert assess_course(photos).status == "slower_than_expected"
    patient = ExpectedCourse(resolves_by_day=21, clear_fraction=0.5)
    assert assess_course(photos, expected=patient).status in GOOD


@pytest.mark.parametrize(
    ("options", "message"),
    [(dict(breakout_peak_days=(3, 1)), "breakout_peak_days"),
     (dict(resolves_by_day=3), "resolves_by_day"),
     (dict(clear_fraction=1.5), "clear_fraction"),
     (dict(redness_settles_by_day=9), "redness_settles_by_day"),
     (dict(min_days=1), "min_days")],
)
def test_expected_course_is_checked(options, message):
    with pytest.raises(ValueError, match=message):
        ExpectedCourse(**options)


# --------------------------------------------------------------------------------------------
# Output contract, summary, errors
# --------------------------------------------------------------------------------------------


GOLDEN_TREND = Path(__file__).resolve().parents[1] / "golden" / "trend_shape.json"


def test_the_trend_contract_keeps_every_field_of_its_published_shape():
    """The trend's JSON against the shape published in tests/golden (extend it, never rename
    or retype a field: other tools read it). Regenerate the file only to add fields."""
    photos, _ = build_course(0, shape="clear", photos_per_day={3: 2})
    trend = assess_course(photos).to_json()
    golden = json.loads(GOLDEN_TREND.read_text())
    assert missing(golden, shape(trend)) == []
    # And the check itself catches a renamed or retyped field.
    renamed = dict(trend, see_a_dermatologist=trend["see_dermatologist"])
    del renamed["see_dermatologist"]
    assert missing(golden, shape(renamed)) == ["$.see_dermatologist: missing"]
    retyped = json.loads(json.dumps(trend))
    retyped["series"][0]["lesion_count"] = "12"
    assert missing(golden, shape(retyped)) == ["$.series[0].lesion_count: number became str"]


def test_to_json_is_the_trend_contract():
    photos, _ = build_course(0, shape="clear", photos_per_day={3: 2})
    trend = assess_course(photos).to_json()
    json.dumps(trend, allow_nan=False)
    assert trend["status"] in STATUSES and isinstance(trend["see_dermatologist"], bool)
    for key in ("reasons", "projected_resolution_day", "projected_resolution_interval",
                "severity", "expected_course", "series", "tracks", "summary"):
        assert key in trend
    for key in ("day", "photos", "redness_index", "lesion_count", "new", "persisting", "resolved",
                "oldest_persisting_age_days", "by_region"):
        assert key in trend["series"][0]
    for key in ("id", "first_day", "last_day", "x_ref", "y_ref", "kind", "days"):
        assert key in trend["tracks"][0]
    band = trend["expected_course"]["band"]["lesions"]
    assert len(band["days"]) == len(band["upper"]) == len(band["lower"])
    assert trend["expected_course"]["resolves_by_day"] == 7


@pytest.mark.parametrize(
    ("options", "start", "flagged"),
    [(dict(shape="clear", days=range(0, 6)), "Day 5 after treatment:", False),
     (dict(shape="growing"), "Day 9 after treatment:", True),
     (dict(shape="clear", with_day=False), "Day 9 since your first photo:", False),
     (dict(shape="clear", days=(0, 1)), "Day 1 after treatment:", False)],
)
def test_summary_is_short_and_plain(options, start, flagged):
    photos, _ = build_course(0, **options)
    course = assess_course(photos)
    text = summarise(course)
    assert text.startswith(start) and len(text) < 400
    assert ("Consider contacting your dermatologist" in text) == flagged
    assert "spot" in text and "diagnos" not in text and "infection" not in text


def test_today_day_calls_out_an_old_photo():
    photos, _ = build_course(0, shape="clear", days=range(0, 5))
    course = assess_course(photos, today_day=9)
    assert course.today_day == 9
    assert any("latest photo is from day 4" in r for r in course.reasons)
    with pytest.raises(ValueError, match="today_day"):
        assess_course(photos, today_day=2)


@pytest.mark.parametrize(
    ("photo", "message"),
    [({"file": "a.jpg", "status": "ok", "day": 1.5}, "whole number"),
     ({"file": "a.jpg", "status": "ok", "day": None, "captured_at": "yesterday"}, "ISO 8601"),
     ({"file": "a.jpg", "status": "ok", "day": 1, "lesions": [{"x": 1, "y": 2}],
       "to_reference": [[1, 0], [0, 1]]}, "3x3"),
     ({"file": "a.jpg", "status": "ok", "day": 1, "lesion_count": "many"}, "lesion_count")],
)
def test_malformed_records_say_what_was_expected(photo, message):
    with pytest.raises(ValueError, match=message):
        assess_course([photo])


def test_public_api_is_exactly_all():
    """The package's public names are its ``__all__``, and each is defined in the package."""
    name = course_module.__name__

    def defined_here(value):
        module = getattr(value, "__module__", name)
        return module == name or module.startswith(f"{name}.")

    public = {n for n, v in vars(course_module).items()
              if not n.startswith("_") and not inspect.ismodule(v) and defined_here(v)}
    assert public == set(course_module.__all__)
    assert "annotations" not in public  # the __future__ import is not the API


def test_results_are_reproducible():
    photos, _ = build_course(7, shape="second_wave", photos_per_day=2)
    photos = random.Random(0).sample(photos, len(photos))
    assert assess_course(photos).to_json() == assess_course(photos).to_json()


@pytest.mark.parametrize("count", [57, 24])
def test_a_face_with_dozens_of_spots_is_never_called_resolved(count):
    """Dozens of spots before treatment and the same after it: not settled, not clear."""
    frame = np.eye(3).tolist()
    spots = [{"x": 40.0 * (i % 10), "y": 40.0 * (i // 10), "radius": 4.0, "kind": "papule",
              "confidence": 0.9} for i in range(count)]
    photos = [{"file": f"d{d}.jpg", "day": d, "status": "ok", "to_reference": frame,
               "lesion_count": count, "lesions": spots} for d in (-3, -1, *range(1, 14, 2))]
    course = assess_course(photos)
    assert course.status == "slower_than_expected"
    assert any(f"{count} spots" in reason for reason in course.reasons)
    assert course.see_dermatologist is (count >= 42)  # severe on the Hayashi scale
    # The rule is the expected course's knob: set above this face's count, the unchanged
    # course is settled.
    relaxed = assess_course(photos, expected=ExpectedCourse(never_settled_count=count + 1))
    assert relaxed.status == "resolved"
    assert relaxed.to_json()["expected_course"]["never_settled_count"] == count + 1


def _spot_photo(day: int, spots, faint=(), *, area=None, separation=None) -> dict:
    """A photo record with counted and faint spots (reference frame = photo frame)."""
    def entries(points, confidence):
        return [{"x": x, "y": y, "radius": 5.0, "kind": "papule", "confidence": confidence}
                for x, y in points]

    record = {"file": f"d{day}.jpg", "day": day, "status": "ok",
              "to_reference": np.eye(3).tolist(), "lesion_count": len(spots),
              "lesions": entries(spots, 0.6), "faint_lesions": entries(faint, 0.15),
              "face": {"box": [0.0, 0.0, 400.0, 400.0]}}
    reading = {"measured": True, "reason": None, "skin_seen": 1.0, "px_per_mm": 3.0}
    if area is not None:
        reading["area"] = area
    if separation is not None:
        reading["separation_px"] = separation
    record["lesion_reading"] = reading
    return record


A, B = (100.0, 100.0), (300.0, 300.0)


def test_a_lesion_read_faintly_keeps_its_track_and_is_not_counted():
    """Flickering below the count on days 2 and 3 (but read faintly) is not gone and back."""
    photos = [_spot_photo(1, [A, B]), _spot_photo(2, [A], [B]), _spot_photo(3, [A], [B]),
              _spot_photo(4, [A, B])]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 2
    b_track = next(t for t in tracking.tracks if t.x_ref > 200)
    assert b_track.days == (1, 4) and b_track.faint_days == (2, 3)
    assert b_track.resolved_day is None
    assert [d.detected for d in tracking.days] == [2, 1, 1, 2]  # faint is never counted
    assert [d.resolved for d in tracking.days] == [0, 0, 0, 0]
    assert b_track.to_json()["faint_days"] == [2, 3]


def test_a_lesion_first_counted_late_was_there_if_read_faintly_before():
    photos = [_spot_photo(1, [A], [B]), _spot_photo(2, [A], [B]), _spot_photo(3, [A, B])]
    tracking = track_lesions(photos)
    b_track = next(t for t in tracking.tracks if t.x_ref > 200)
    assert b_track.first_day == 1 and b_track.faint_days == (1, 2) and b_track.days == (3,)
    assert [d.new for d in tracking.days] == [2, 0, 0]


def test_a_lesion_only_faint_for_many_days_is_resolved():
    """Faint sightings hold a track for at most _MAX_FAINT_DAYS days in a row: a lesion that
    fades into a faint mark is resolved, a few days late, not held for ever."""
    from monitor.course.tracking import _MAX_FAINT_DAYS

    n = _MAX_FAINT_DAYS + 3
    photos = [_spot_photo(0, [A, B])] + [_spot_photo(d, [A], [B]) for d in range(1, n)]
    b_track = next(t for t in track_lesions(photos).tracks if t.x_ref > 200)
    assert b_track.faint_days == tuple(range(1, _MAX_FAINT_DAYS + 1))
    assert b_track.resolved_day == _MAX_FAINT_DAYS + 1


def test_a_lesion_out_of_view_is_not_resolved():
    """A photo framed tighter (its read area misses B's place) does not make B gone."""
    tight = [[0.0, 0.0], [200.0, 0.0], [200.0, 200.0], [0.0, 200.0]]
    photos = [_spot_photo(1, [A, B]), _spot_photo(2, [A], area=tight), _spot_photo(3, [A, B]),
              _spot_photo(4, [A], area=tight)]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 2
    b_track = next(t for t in tracking.tracks if t.x_ref > 200)
    assert b_track.days == (1, 3) and b_track.resolved_day is None
    assert [d.resolved for d in tracking.days] == [0, 0, 0, 0]
    # With the whole face in view, B missing on the last day is resolved.
    photos[-1] = _spot_photo(4, [A])
    b_track = next(t for t in track_lesions(photos).tracks if t.x_ref > 200)
    assert b_track.resolved_day == 4


def test_a_lesion_read_as_one_with_its_neighbour_is_not_resolved():
    """Two lesions closer than the reader separates are read as one on some days."""
    c = (110.0, 100.0)
    merged = (105.0, 100.0)
    photos = [_spot_photo(1, [A, c], separation=14.0), _spot_photo(2, [merged], separation=14.0),
              _spot_photo(3, [merged], separation=14.0), _spot_photo(4, [A, c], separation=14.0)]
    tracking = track_lesions(photos)
    assert len(tracking.tracks) == 2
    assert all(t.resolved_day is None and t.first_day == 1 for t in tracking.tracks)
    # Without a known separation the same photos mean one of them went and a new one came.
    plain = [{k: v for k, v in p.items() if k != "lesion_reading"} for p in photos]
    assert any(t.resolved_day is not None or t.first_day > 1
               for t in track_lesions(plain).tracks)


def test_one_photos_small_separation_does_not_make_a_lesion_new():
    """The photos of a course are read at one scale, but each estimates the separation from
    its own pupil distance; one small estimate (day 1) must not cut a lesion read as one with
    its neighbour there off its track (re-shoots of one face gave 19 and 26-29 px)."""
    c = (110.0, 100.0)
    seps = (8.0, 14.0, 14.0, 14.0)
    spots = ([A], [A], [A, c], [A])
    photos = [_spot_photo(d, sp, separation=sep)
              for d, sp, sep in zip((1, 2, 3, 4), spots, seps, strict=True)]
    c_track = next(t for t in track_lesions(photos).tracks if t.x_ref > 105)
    assert c_track.first_day == 1 and c_track.resolved_day is None
    assert c_track.days == (3,) and c_track.faint_days == (1, 2, 4)
    # Had every photo estimated 8 px, the spot 10 px from A would be a lesion of day 3 only.
    small = [_spot_photo(d, sp, separation=8.0) for d, sp in zip((1, 2, 3, 4), spots, strict=True)]
    c_track = next(t for t in track_lesions(small).tracks if t.x_ref > 105)
    assert c_track.first_day == 3 and c_track.resolved_day == 4


def test_every_place_asks_for_records_and_explains_the_same_symptoms():
    """One list of symptoms (course.SYMPTOM_NAMES): the course's record and its reasons, the
    database's check-in columns and the check-in page's questions all follow it."""
    import dataclasses

    from app_pages.common import SYMPTOM_QUESTIONS
    from monitor.course import SYMPTOM_NAMES, Symptoms
    from monitor.store import METADATA, CheckIn

    fields = [f.name for f in dataclasses.fields(Symptoms) if f.name != "day"]
    assert tuple(fields) == SYMPTOM_NAMES
    assert tuple(SYMPTOM_QUESTIONS) == SYMPTOM_NAMES
    assert [f.name for f in dataclasses.fields(CheckIn)][3:] == list(SYMPTOM_NAMES)
    columns = set(METADATA.tables["checkins"].columns.keys())
    assert set(SYMPTOM_NAMES) <= columns
    everything = Symptoms(day=2, **dict.fromkeys(SYMPTOM_NAMES, True))
    assert everything.reported == SYMPTOM_NAMES
    assert len(set(everything.reasons())) == len(SYMPTOM_NAMES)
    assert all(reason.endswith("on day 2.") for reason in everything.reasons())


def test_one_table_says_what_each_status_means():
    """course.STATUS_INFO is read by the summary, the report's and the app's words and the
    clinician's triage order: every status is in it, in the order of urgency on the list."""
    from monitor.clinic.service import _triage_place
    from monitor.course import STATUS_INFO, STATUSES
    from monitor.present import STATUS_WORDS

    assert tuple(STATUS_INFO) == STATUSES
    assert STATUS_WORDS == {name: info.words for name, info in STATUS_INFO.items()}
    by_urgency = sorted(STATUSES, key=_triage_place)
    assert by_urgency == ["worsening", "slower_than_expected", "insufficient_data",
                          "resolving_as_expected", "resolved"]
    assert _triage_place("a status of a later version") == pytest.approx(1.5)
    assert {name for name, info in STATUS_INFO.items() if info.settled} == {
        "resolved", "resolving_as_expected"}
    photos, _ = build_course(0, shape="clear")
    course = assess_course(photos)
    assert STATUS_INFO[course.status].sentence in course.to_json()["summary"]


def test_the_noise_knobs_of_the_expected_course_act():
    """How many noise sigmas make a redness rise count, and how far above baseline redness is
    back to normal, are ExpectedCourse's (not literals in the rules)."""
    photos, _ = build_course(4, shape="clear", days=range(0, 5))
    plain = assess_course(photos)
    assert plain.redness_state != "not_raised"
    deaf = assess_course(photos, expected=ExpectedCourse(significant_noise_sigmas=1e6))
    assert deaf.redness_state == "not_raised"
    wide = assess_course(photos, expected=ExpectedCourse(margin_noise_sigmas=1e6))
    assert wide.scales["redness"].clear_level > plain.scales["redness"].clear_level + 100
