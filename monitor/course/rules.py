"""The rules that judge a course: worsening, slower than expected, late new lesions."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.course.expected import ExpectedCourse
from monitor.course.severity import Severity
from monitor.course.tracking import LesionTracking, Track
from monitor.course.trend import Measure, above_band, rising
from monitor.course.wording import spots_phrase

__all__ = [
    "judge",
    "late_new_tracks",
    "redness_state_of",
]


def judge(
    lesions: Measure | None,
    redness: Measure | None,
    tracking: LesionTracking,
    usable_days: Sequence[int],
    expected: ExpectedCourse,
) -> tuple[str, list[str], list[str]]:
    """Status, the reasons that raise the flag, and the other reasons (see assess_course)."""
    late = expected.resolves_by_day
    if len(usable_days) < expected.min_days or not any(d > 0 for d in usable_days):
        notes = []
        if not usable_days:
            notes.append("There are no usable photos yet; a photo a day helps follow the course.")
        elif not any(d > 0 for d in usable_days):
            notes.append(
                "All photos are from the treatment day or before; photos from the following days "
                "are needed to follow the course."
            )
        else:
            n = len(usable_days)
            notes.append(
                f"Only {n} day{'s' if n != 1 else ''} with usable photos so far; at least "
                f"{expected.min_days} are needed to judge the course."
            )
        flags = []
        # Too few photos to judge a course, but many spots well after the window still show.
        if lesions is not None and lesions.latest_day > late:
            level = lesions.level
            grade = Severity.from_whole_face(level, day=lesions.latest_day).grade
            if level > lesions.baseline + expected.clear_count and grade != "mild":
                flags.append(
                    f"There are still {spots_phrase(level)} on day {lesions.latest_day}, more than "
                    f"{late} days after treatment."
                )
        return "insufficient_data", flags, notes

    worse = _worsening_reasons(lesions, redness, tracking, expected)
    if worse:
        return "worsening", worse, []

    flags, notes = _slower_reasons(lesions, redness, expected)
    if flags or notes:
        return "slower_than_expected", flags, notes

    # Resolved only once the peak window is over: before that the breakout may still come.
    settled = all(m is None or not m.active for m in (lesions, redness))
    status = (
        "resolved" if settled and usable_days[-1] > expected.peak_window_end
        else "resolving_as_expected"
    )
    # Many spots are never "settled", whatever the course: a face that had dozens of spots
    # before treatment (or whose rise the photos missed) still needs its dermatologist.
    if (status == "resolved" and lesions is not None
            and lesions.level >= expected.never_settled_count):
        grade = Severity.from_whole_face(lesions.level, day=lesions.latest_day).grade
        reason = (f"There are still {spots_phrase(lesions.level)} on the latest photos ({grade} "
                  "acne on the Hayashi scale).")
        if grade in ("severe", "very severe"):
            return "slower_than_expected", [reason + " Acne this severe is worth showing "
                                            "your dermatologist."], []
        return "slower_than_expected", [], [reason]
    notes = []
    if lesions is not None and lesions.significant:
        if status == "resolved":
            notes.append(
                "Spots are back to where they were before treatment."
                if lesions.baseline >= 1 else "The spots have cleared."
            )
        elif lesions.latest_day > lesions.peak_day and lesions.level < lesions.peak:
            notes.append(
                f"Spots peaked on day {lesions.peak_day} and are coming down, as expected."
            )
        else:
            notes.append(
                f"Spots usually peak in the first {expected.breakout_peak_days[1]} days; "
                "this is still within that time."
            )
    elif lesions is not None and status == "resolved":
        notes.append("No breakout of spots was seen.")
    return status, [], notes


def _worsening_reasons(
    lesions: Measure | None,
    redness: Measure | None,
    tracking: LesionTracking,
    expected: ExpectedCourse,
) -> list[str]:
    reasons = []
    if lesions is not None and rising(lesions, expected):
        reasons.append(f"Spots are still increasing on day {lesions.latest_day}.")
    late_new = late_new_tracks(tracking, expected)
    if len(late_new) >= 3 and len({t.first_day for t in late_new}) >= 2:
        until = expected.new_lesions_until_day
        reasons.append(
            f"New spots keep appearing after day {until} ({len(late_new)} new since day "
            f"{until + 1})."
        )
    if redness is not None and redness.significant and rising(redness, expected):
        reasons.append(f"Redness is increasing again on day {redness.latest_day}.")
    return reasons


def _slower_reasons(
    lesions: Measure | None, redness: Measure | None, expected: ExpectedCourse
) -> tuple[list[str], list[str]]:
    """Reasons the course is slower than expected: (after the window: flag, within: note)."""
    late = expected.resolves_by_day
    flags: list[str] = []
    notes: list[str] = []
    if lesions is not None and lesions.active:
        day = lesions.latest_day
        if day > late:
            flags.append(f"Spots have not cleared after {late} days.")
        elif day > expected.peak_window_end and above_band(lesions, expected):
            if lesions.level >= float(lesions.smoothed.max()) - expected.rise_count:
                notes.append(f"Spots have not started to come down yet on day {day}.")
            else:
                notes.append(f"Spots are coming down more slowly than usual for day {day}.")
        elif (
            lesions.fit is not None
            and lesions.fit.day is not None
            and lesions.fit.low is not None
            and lesions.fit.low > late + expected.projection_grace_days
        ):
            notes.append(
                f"At the current pace, spots would clear around day {round(lesions.fit.day)}, "
                f"later than the usual {late} days."
            )
    # Redness of inflamed spots follows the spots, so redness is judged only after
    # resolves_by_day, not against its own (treatment-redness) band.
    if redness is not None and redness.active and redness.latest_day > late:
        flags.append(f"Redness has not come down after {late} days.")
    return flags, notes


def late_new_tracks(tracking: LesionTracking, expected: ExpectedCourse) -> list[Track]:
    """Lesions first seen after ``new_lesions_until_day`` and seen again on a later day.

    A spot seen in a single photo is often a detection error, so it does not count; lesions
    on the first observed day are not new (they were there before the photos began).
    """
    if not tracking.days:
        return []
    first = tracking.days[0].day
    return [
        t for t in tracking.tracks
        if t.first_day > expected.new_lesions_until_day and t.first_day != first
        and len(t.sightings) >= 2
    ]


def redness_state_of(m: Measure | None, expected: ExpectedCourse) -> str:
    if m is None:
        return "not_measured"
    if not m.significant:
        return "not_raised"
    if not m.active:
        return "back_to_normal"
    if rising(m, expected):
        return "rising"
    if m.latest_day > expected.resolves_by_day:
        return "not_coming_down"
    if m.latest_day > m.peak_day and m.level < m.peak:
        return "coming_down"
    return "still_raised"
