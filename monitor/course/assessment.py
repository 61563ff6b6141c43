"""The assessment of a course: every measure, its trend, its status and its flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.course.expected import DEFAULT_EXPECTED_COURSE, ExpectedCourse
from monitor.course.records import is_whole, json_number, read_photos
from monitor.course.rules import judge, late_new_tracks, redness_state_of
from monitor.course.series import CourseDay, daily_series
from monitor.course.severity import Severity
from monitor.course.symptoms import Symptoms
from monitor.course.tracking import Track, track_photos
from monitor.course.trend import measure, projection, resolved_day
from monitor.course.wording import REDNESS_PHRASES, STATUS_INFO, STATUSES, spots_phrase

__all__ = [
    "Course",
    "MeasureScale",
    "assess_course",
    "summarise",
]


#: A photo older than this many days before ``today_day`` is called out as out of date.
_STALE_AFTER_DAYS = 2


@dataclass(frozen=True)
class MeasureScale:
    """Where a measure of the course stands in its own units: the levels and the expected band
    are relative to these (0 at ``baseline``, 1 at ``peak``).

    Attributes
    ----------
    baseline : float
        The measure before the course rose: the median of the photos before treatment, day 0's
        when the peak came later, else 0 (no spots; the reference photo's redness).
    peak : float
        Its highest value from the treatment on.
    clear_level : float
        At or below this the measure counts as clear (settled).
    """

    baseline: float
    peak: float
    clear_level: float

    def to_json(self) -> dict:
        return {"baseline": json_number(self.baseline, 3), "peak": json_number(self.peak, 3),
                "clear_level": json_number(self.clear_level, 3)}


@dataclass(frozen=True)
class Course:
    """The assessed course: status, flag, reasons, projection, severity, series and tracks.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`.
    see_dermatologist : bool
        True when the course or the reported symptoms call for a dermatologist.
    reasons : tuple of str
        Plain sentences; the ones behind the flag come first (reported symptoms first of all).
    flag_reasons : tuple of str
        The reasons that raised the flag (empty when it is not raised).
    projected_resolution_day : float or None
        Day the fitted trend reaches the clear level (may lie in the past), None when there are
        fewer than 3 days after the peak or the course is not coming down.
    projected_resolution_interval : tuple of (float, float or None) or None
        95 % interval of that day from the slope's confidence bounds; the upper end is None when
        the data are also consistent with no improvement.
    resolved_on_day : int or None
        First observed day from which the course stayed clear, when resolved.
    severity, peak_severity : Severity or None
        Hayashi grade on the latest day and on the day with most spots.
    redness_state : str
        ``"not_measured"``, ``"not_raised"``, ``"back_to_normal"``, ``"coming_down"``,
        ``"still_raised"``, ``"not_coming_down"`` or ``"rising"``.
    day_origin : str
        ``"treatment"`` when days count from the treatment date, ``"first_photo"`` otherwise.
    scales : mapping of str to MeasureScale
        ``"lesions"`` and ``"redness"`` (each when measured on some day): the baseline and
        peak that the levels and the expected band are relative to, in the measure's units.
    """

    status: str
    see_dermatologist: bool
    reasons: tuple[str, ...]
    flag_reasons: tuple[str, ...]
    projected_resolution_day: float | None
    projected_resolution_interval: tuple[float, float | None] | None
    resolved_on_day: int | None
    severity: Severity | None
    peak_severity: Severity | None
    redness_state: str
    expected: ExpectedCourse
    series: tuple[CourseDay, ...]
    tracks: tuple[Track, ...]
    day_origin: str
    latest_day: int | None
    today_day: int | None
    symptoms: tuple[Symptoms, ...] = ()
    scales: Mapping[str, MeasureScale] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.day_origin not in ("treatment", "first_photo"):
            raise ValueError(
                f"day_origin must be 'treatment' or 'first_photo', got {self.day_origin!r}"
            )

    @property
    def oldest_persisting(self) -> Track | None:
        """The oldest lesion still present on the latest observed day with lesion positions."""
        tracked = [d for d in self.series if d.new is not None]
        if not tracked:
            return None
        last = tracked[-1].day
        present = [t for t in self.tracks if t.first_day < last and t.resolved_day is None]
        return min(present, key=lambda t: (t.first_day, t.id), default=None)

    def to_json(self) -> dict:
        """The contract's ``trend`` field: plain values, ready for ``json.dumps``."""
        last = max((s.day for s in self.series), default=0)
        oldest = self.oldest_persisting
        tracked = [d.day for d in self.series if d.new is not None]
        interval = self.projected_resolution_interval
        return {
            "status": self.status,
            "see_dermatologist": self.see_dermatologist,
            "reasons": list(self.reasons),
            "summary": summarise(self),
            "projected_resolution_day": json_number(self.projected_resolution_day, 1),
            "projected_resolution_interval": (
                None if interval is None
                else [json_number(interval[0], 1), json_number(interval[1], 1)]
            ),
            "resolved_on_day": self.resolved_on_day,
            "severity": None if self.severity is None else self.severity.to_json(),
            "peak_severity": None if self.peak_severity is None else self.peak_severity.to_json(),
            "redness_state": self.redness_state,
            "day_origin": self.day_origin,
            "latest_day": self.latest_day,
            "today_day": self.today_day,
            "oldest_persisting_lesion": None if oldest is None else {
                "id": oldest.id,
                "first_day": oldest.first_day,
                "age_days": (tracked[-1] if tracked else last) - oldest.first_day,
                "x_ref": round(oldest.x_ref, 1),
                "y_ref": round(oldest.y_ref, 1),
            },
            "symptoms": [
                {"day": s.day, "reported": list(s.reported)} for s in self.symptoms if s.reported
            ],
            "expected_course": self.expected.to_json(
                days=np.arange(min(0, min((s.day for s in self.series), default=0)),
                               max(last, self.expected.resolves_by_day + 7) + 1)
            ),
            "series": [d.to_json() for d in self.series],
            "tracks": [t.to_json() for t in self.tracks],
            "scales": {name: scale.to_json() for name, scale in self.scales.items()},
        }


def assess_course(
    photos: Sequence[Mapping],
    *,
    expected: ExpectedCourse = DEFAULT_EXPECTED_COURSE,
    symptoms: Sequence[Symptoms] = (),
    today_day: int | None = None,
) -> Course:
    """Assess a breakout course from the per-photo records of ``monitor analyze``.

    Rejected photos are ignored; photos of the same day are combined by median; days without
    photos are simply absent. Spots (lesion count) are the main measure, redness the second;
    each is compared with its own baseline (photos before treatment, or day 0 when the peak came
    later, else 0) and its own peak.

    Status rules, first match wins:

    ``insufficient_data``
        Fewer than ``expected.min_days`` days with usable photos, or none after treatment:
        there is no course to judge yet.
    ``worsening``
        After the peak window (``breakout_peak_days`` plus tolerance), spots or redness rise
        clearly above the earlier peak and are not coming down (a rise of at least
        ``rise_count`` spots and ``rise_fraction`` of the peak, beyond the day-to-day noise);
        or new spots keep appearing after ``new_lesions_until_day`` (at least 3, first seen on
        two or more different days, each seen again on a later photo so that a one-off
        detection error does not count).
    ``slower_than_expected``
        After ``resolves_by_day``, spots are still above the clear level or redness has not come
        down; or, earlier, the latest level is above the expected band, or the projected
        resolution day (with its whole 95 % interval) lies past ``resolves_by_day`` plus
        ``projection_grace_days``.
    ``resolved``
        After the peak window, the latest spots and redness (smoothed over the last photos)
        are back near baseline: at or below the clear level (``clear_count`` spots or
        ``clear_fraction`` of the peak above baseline; redness ``redness_clear_fraction`` of
        its peak), or there never was a breakout.
    ``resolving_as_expected``
        Anything else: still inside the expected window.

    The flag (``see_dermatologist``) is raised for ``worsening``; for ``slower_than_expected``
    after ``resolves_by_day``; for at least ``new_pustules_min`` new pustules after
    ``new_lesions_until_day``, each seen on two or more days (one sighting is often a detection
    error); and for any symptom the patient reported.

    Parameters
    ----------
    photos : sequence of mapping
        The ``photos`` list of the analyse contract, in any order.
    expected : ExpectedCourse
        The expected window and its tolerances.
    symptoms : sequence of Symptoms
        What the patient reported when the app asked.
    today_day : int or None
        Today's day since treatment (or since the first photo); defaults to the latest photo's
        day. An out-of-date latest photo is mentioned in the reasons.

    Returns
    -------
    Course
        The assessment; ``Course.to_json()`` is the contract's ``trend`` field.
    """
    if not isinstance(expected, ExpectedCourse):
        raise TypeError(f"expected must be an ExpectedCourse, got {type(expected).__name__}")
    symptoms = tuple(symptoms)
    for item in symptoms:
        if not isinstance(item, Symptoms):
            raise TypeError(f"symptoms must be Symptoms values, got {type(item).__name__}")
    records, origin, undated = read_photos(photos)
    tracking = track_photos(records, gate_radius_factor=2.5, gate_min_px=8.0, max_missed_days=1)
    series = daily_series(records, tracking)
    latest_day = series[-1].day if series else None
    if today_day is not None:
        if isinstance(today_day, bool) or not is_whole(today_day):
            raise ValueError(f"today_day must be a whole number of days, got {today_day!r}")
        today_day = int(today_day)
        if latest_day is not None and today_day < latest_day:
            raise ValueError(
                f"today_day is {today_day} but the latest photo is from day {latest_day}; "
                "today cannot come before a photo"
            )

    usable = [s for s in series if s.lesion_count is not None or s.redness_index is not None]
    lesion_days = [s for s in usable if s.lesion_count is not None]
    redness_days = [s for s in usable if s.redness_index is not None]
    lesions = measure(
        "lesions", [s.day for s in lesion_days], [s.lesion_count for s in lesion_days], expected
    )
    redness = measure(
        "redness", [s.day for s in redness_days], [s.redness_index for s in redness_days], expected
    )

    # Relative levels and grades for the charts.
    series = [
        replace(
            s,
            lesion_level=None if lesions is None or s.lesion_count is None
            else lesions.relative(s.lesion_count),
            redness_level=None if redness is None or s.redness_index is None
            else redness.relative(s.redness_index),
            severity_grade=None if s.lesion_count is None
            else Severity.from_whole_face(s.lesion_count, day=s.day).grade,
        )
        for s in series
    ]

    usable_days = [s.day for s in usable]
    status, flags, notes = judge(lesions, redness, tracking, usable_days, expected)
    enough = status != "insufficient_data"
    last = usable_days[-1] if usable_days else None

    redness_state = redness_state_of(redness, expected)
    if STATUS_INFO[status].settled:
        sentence = {
            "back_to_normal": "Redness is back to normal.",
            "coming_down": "Redness is coming down.",
            "still_raised": "Redness is still raised, which is usual in the first days.",
        }.get(redness_state)
        if sentence:
            notes.append(sentence)

    # New pustules late in the course, each confirmed on two or more days.
    late_pustules = [
        t for t in late_new_tracks(tracking, expected)
        if any(s.kind == "pustule" for s in t.sightings)
    ]
    if len(late_pustules) >= expected.new_pustules_min:
        first = min(t.first_day for t in late_pustules)
        flags.append(
            f"New pustules appeared after day {expected.new_lesions_until_day} "
            f"({len(late_pustules)}, first on day {first})."
        )

    # What the patient reports comes first: fever, pus or spreading redness matter most.
    reported = [
        reason
        for item in sorted(symptoms, key=lambda s: (-1 if s.day is None else s.day, s.reported))
        for reason in item.reasons()
    ]
    flags = reported + flags

    # Projection: the later of the measures still to settle; None if one of them cannot say.
    projected, interval = projection(lesions, redness) if enough else (None, None)
    if status == "resolving_as_expected" and projected is not None and last is not None \
            and projected > last:
        notes.append(f"At the current pace, this should settle around day {round(projected)}.")

    resolved_on = None
    if status == "resolved":
        candidates = [
            resolved_day(m) for m in (lesions, redness) if m is not None and m.significant
        ]
        known = [c for c in candidates if c is not None]
        resolved_on = max(known) if known and len(known) == len(candidates) else None

    if undated:
        notes.append(
            f"{undated} photo{'s have' if undated > 1 else ' has'} no date and "
            f"{'were' if undated > 1 else 'was'} left out of the course."
        )
    if today_day is not None and latest_day is not None \
            and today_day - latest_day > _STALE_AFTER_DAYS:
        notes.append(
            f"The latest photo is from day {latest_day}; a new photo would show how things are now."
        )

    flags = list(dict.fromkeys(flags))
    severity = peak_severity = None
    if lesions is not None:
        severity = Severity.from_whole_face(float(lesions.values[-1]), day=lesions.latest_day)
        top = int(np.argmax(lesions.values))
        peak_severity = Severity.from_whole_face(
            float(lesions.values[top]), day=int(lesions.days[top])
        )

    return Course(
        status=status,
        see_dermatologist=bool(flags),
        reasons=tuple(flags + [n for n in dict.fromkeys(notes) if n not in flags]),
        flag_reasons=tuple(flags),
        projected_resolution_day=projected,
        projected_resolution_interval=interval,
        resolved_on_day=resolved_on,
        severity=severity,
        peak_severity=peak_severity,
        redness_state=redness_state,
        expected=expected,
        series=tuple(series),
        tracks=tracking.tracks,
        day_origin=origin,
        latest_day=latest_day,
        today_day=today_day if today_day is not None else latest_day,
        symptoms=symptoms,
        scales={m.name: MeasureScale(m.baseline, m.peak, m.clear_level)
                for m in (lesions, redness) if m is not None},
    )


def summarise(course: Course) -> str:
    """One or two plain sentences about the course, for the command line and the app.

    Examples: ``"Day 5 after treatment: 7 spots (mild), redness coming down. This looks like the
    usual course."`` or ``"Day 9 after treatment: 24 spots (moderate). This is getting worse
    rather than better. Consider contacting your dermatologist: spots are still increasing on
    day 9."``
    """
    if not course.series:
        head = "No usable photos yet."
    else:
        day = course.series[-1].day
        when = "after treatment" if course.day_origin == "treatment" else "since your first photo"
        parts = []
        if course.severity is not None:
            parts.append(
                f"{spots_phrase(course.severity.whole_face_count)} ({course.severity.grade})"
            )
        phrase = REDNESS_PHRASES.get(course.redness_state)
        if phrase:
            parts.append(phrase)
        head = f"Day {day} {when}" + (": " + ", ".join(parts) if parts else "") + "."
    text = f"{head} {STATUS_INFO[course.status].sentence}"
    if course.see_dermatologist:
        shown = [r.rstrip(".") for r in course.flag_reasons[:3]]
        shown = [r[0].lower() + r[1:] for r in shown]
        more = len(course.flag_reasons) - len(shown)
        if more:
            shown.append(f"and {more} more reason{'s' if more > 1 else ''}")
        text += " Consider contacting your dermatologist: " + "; ".join(shown) + "."
    elif course.status == "slower_than_expected":
        text += (
            f" If it is not clearly better by day {course.expected.resolves_by_day}, consider "
            "contacting your dermatologist."
        )
    return text
