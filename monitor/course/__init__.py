"""The course of a breakout after microneedling: series, lesion tracking, trend and flags.

A patient asks "is this normal, and is it getting better?"; a dermatologist asks "whose course
is off?". This module answers both from the per-photo records written by
``python -m monitor analyze`` (the ``photos`` list of the published JSON contract) and produces
the contract's top-level ``trend`` field (:meth:`Course.to_json`).

The expected course is data, not numbers scattered in code: :class:`ExpectedCourse` holds it,
documents where it comes from and draws the band the charts show (:meth:`ExpectedCourse.band`).
A systematic review of microneedling (as cited in the project issue) reports that the expected
effects last up to 7 days and the common ones resolve within about 72 hours; persistence past a
week, a worsening course or signs of infection call for a dermatologist.

Everything here is a pure function of its inputs: no I/O, no clock, no randomness. The result
does not depend on the order of the photos, nor on shifting every ``captured_at`` by whole days.
The wording guides and never diagnoses ("consider contacting your dermatologist").

::

    assess_course(photos, *, expected, symptoms, today_day) -> Course
        Course.to_json()            the contract's ``trend`` field
        summarise(course) -> str    one or two plain sentences for the command line
    track_lesions(photos, ...) -> LesionTracking   tracks and new / persisting / resolved per day
    ExpectedCourse.band(days)   -> ExpectedBand     the expected window, for the charts
    hayashi_grade(half_face_count) -> str           mild / moderate / severe / very severe

Days
----
``day`` in a photo record is the number of days since treatment (day 0 = treatment date). When
any usable photo has no ``day`` (no treatment date was given), every photo's day is counted in
calendar days, in the photo's own time zone, from the date of the earliest usable photo.
Photos from before treatment (negative days) serve as the baseline.

Layout
------
The package follows the data; each module's ``__all__`` is what its siblings may take, and
this package's ``__all__`` is the public API:

- :mod:`~monitor.course.records`: the per-photo records read and checked (days, lesions
  mapped into the reference frame, faint spots), and the JSON rounding of the figures.
- :mod:`~monitor.course.tracking`: lesions followed across days (new, persisting, resolved).
- :mod:`~monitor.course.series`: one entry per day, the photos of a day combined.
- :mod:`~monitor.course.expected`: the expected course, as data.
- :mod:`~monitor.course.trend`: each measure's smoothed trend, decay fit and noise.
- :mod:`~monitor.course.severity`, :mod:`~monitor.course.symptoms`: Hayashi grading and the
  patient's reported symptoms.
- :mod:`~monitor.course.rules`: the rules that judge the course.
- :mod:`~monitor.course.wording`: the statuses and the words they are told in.
- :mod:`~monitor.course.assessment`: all of the above composed (:func:`assess_course`).
"""

from __future__ import annotations

from monitor.course.assessment import Course, MeasureScale, assess_course, summarise
from monitor.course.expected import DEFAULT_EXPECTED_COURSE, ExpectedBand, ExpectedCourse
from monitor.course.series import CourseDay, RegionDay
from monitor.course.severity import HAYASHI_SCALE, Severity, hayashi_grade
from monitor.course.symptoms import SYMPTOM_NAMES, Symptoms
from monitor.course.tracking import LesionTracking, Sighting, Track, TrackingDay, track_lesions
from monitor.course.wording import STATUS_INFO, STATUSES, StatusInfo

__all__ = [
    "DEFAULT_EXPECTED_COURSE",
    "HAYASHI_SCALE",
    "STATUSES",
    "STATUS_INFO",
    "SYMPTOM_NAMES",
    "StatusInfo",
    "Course",
    "CourseDay",
    "ExpectedBand",
    "ExpectedCourse",
    "LesionTracking",
    "MeasureScale",
    "RegionDay",
    "Severity",
    "Sighting",
    "Symptoms",
    "Track",
    "TrackingDay",
    "assess_course",
    "hayashi_grade",
    "summarise",
    "track_lesions",
]
