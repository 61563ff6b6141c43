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
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import theilslopes

from monitor.align import Refinement

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

@dataclass(frozen=True)
class StatusInfo:
    """What a course status means, wherever it is shown.

    Attributes
    ----------
    words : str
        The status in plain words (patients, the app and the record read these, never the
        code).
    sentence : str
        How the course's summary puts it.
    triage : int
        Place on the clinician's triage list, most urgent first (courses flagged for a
        dermatologist come before all of these).
    settled : bool
        The course is going as it should: shown as good news.
    """

    words: str
    sentence: str
    triage: int
    settled: bool


#: Every value ``Course.status`` can take, from "nothing to say yet" to "getting worse", and
#: what each means: the one table the summary, the app, the report and triage read.
STATUS_INFO: dict[str, StatusInfo] = {
    "insufficient_data": StatusInfo(
        "Not enough photos yet to judge the course",
        "There are too few photos to judge the course yet; a photo a day helps.", 2, False),
    "resolved": StatusInfo("Settled", "The breakout has settled.", 4, True),
    "resolving_as_expected": StatusInfo(
        "Settling as expected", "This looks like the usual course.", 3, True),
    "slower_than_expected": StatusInfo(
        "Slower than expected", "This is taking longer than usual.", 1, False),
    "worsening": StatusInfo(
        "Getting worse", "This is getting worse rather than better.", 0, False),
}
STATUSES = tuple(STATUS_INFO)

#: The severity scale reported with every course.
HAYASHI_SCALE = (
    "Hayashi (J Dermatol 2008; Japanese Dermatological Association acne grading): "
    "inflammatory lesions (papules + pustules) on one half of the face, "
    "0-5 mild, 6-20 moderate, 21-50 severe, >50 very severe; "
    "the half-face count is estimated as half the whole-face count, rounded up"
)

_HAYASHI_GRADES = ((5, "mild"), (20, "moderate"), (50, "severe"))

#: A photo older than this many days before ``today_day`` is called out as out of date.
_STALE_AFTER_DAYS = 2
#: Photos further apart than this many days are not smoothed together.
_SMOOTH_GAP_DAYS = 2
#: Offset inside the logarithm of a relative redness level, so that 0 stays finite.
_REDNESS_LOG_OFFSET = 0.1
#: A projection further out than this is reported as "no bound" (the course is not improving).
_MAX_PROJECTION_DAYS = 365.0
#: Observed days in a row a tracked lesion may be read only faintly (``faint_lesions``) and still
#: be there; a lesion first counted on a day was there before if read faintly on up to this many
#: observed days just before.
_MAX_FAINT_DAYS = 4

#: Cost added per missed observed day when matching a lesion to a track that skipped days.
_MISSED_DAY_PENALTY = 0.25
_NO_MATCH = 1e6


# --------------------------------------------------------------------------------------------
# The expected course
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ExpectedBand:
    """The expected relative level of one measure, as a band the charts can draw.

    Levels are relative to the course's own peak above its baseline: 0 is the baseline
    (before treatment, or no breakout), 1 is the course's peak.

    Attributes
    ----------
    measure : {"lesions", "redness"}
        Which measure the band is for.
    days : ndarray of shape (N,)
        Days since treatment.
    lower, upper : ndarray of shape (N,)
        Edges of the expected zone. A breakout may be milder or settle faster than usual, so
        ``lower`` is 0; a course above ``upper`` is slower than expected.
    typical : ndarray of shape (N,)
        A typical course, for drawing a reference line.
    """

    measure: str
    days: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    typical: np.ndarray

    def to_json(self) -> dict:
        """Plain lists, ready for ``json.dumps``."""
        return {
            "measure": self.measure,
            "days": [float(d) for d in self.days],
            "lower": [round(float(v), 4) for v in self.lower],
            "upper": [round(float(v), 4) for v in self.upper],
            "typical": [round(float(v), 4) for v in self.typical],
        }


@dataclass(frozen=True)
class ExpectedCourse:
    """The usual course of redness and breakout after microneedling, as configurable data.

    Defaults follow the systematic review of microneedling cited in the project issue: expected
    effects last up to 7 days, common ones resolve within about 72 hours.

    Parameters
    ----------
    redness_settles_by_day : int
        Redness from the treatment itself usually settles by this day (default 3).
    breakout_peak_days : tuple of (int, int)
        The breakout usually peaks within these days, inclusive (default days 1-3).
    resolves_by_day : int
        Redness and spots are usually gone by this day (default 7). Still active after it is
        slower than expected and raises the flag.
    peak_tolerance_days : int
        A peak this many days after ``breakout_peak_days`` is still on time (default 1).
    new_lesions_until_day : int
        New spots are expected up to this day; new pustules after it raise the flag, and new
        spots that keep appearing after it make the course worsening (default 5).
    clear_count : int
        Spots above baseline that still count as clear (default 3), so that detector noise of
        1-2 spots does not keep a course open.
    clear_fraction : float
        The breakout counts as clear at or below this fraction of its peak above baseline
        (default 0.2). Clear means at or below the larger of the two.
    redness_clear_fraction : float
        Redness counts as back to normal at or below this fraction of its peak above
        baseline (default 0.4).
    band_tolerance : float
        Relative level allowed above the band's upper edge before a course is called slower
        than expected, for measurement noise (default 0.15).
    rise_count : int
        Smallest rise in spots, above the earlier peak, that counts as worsening (default 3).
    rise_fraction : float
        Smallest relative rise above the earlier peak that counts as worsening (default 0.25).
    projection_grace_days : int
        Projected resolution may lie this many days past ``resolves_by_day`` before the course
        is called slower than expected (default 2).
    new_pustules_min : int
        New pustules after ``new_lesions_until_day``, each seen on at least two days, that raise
        the flag (default 2: a single spot seen once is often a detection error).
    min_days : int
        Days with usable photos needed to judge a course (default 3).
    never_settled_count : int
        From this many spots on the whole face (ten on one half: moderate acne on the Hayashi
        scale) a course is never called settled or resolved (default 20).
    significant_noise_sigmas : float
        A rise of redness counts (as a breakout, or as worsening) only when it is this many
        times the course's day-to-day noise (default 3).
    margin_noise_sigmas : float
        Redness is back to normal at no less than this many noise sigmas above baseline, and
        spots must rise by at least as much to count as worsening (default 2).
    """

    redness_settles_by_day: int = 3
    breakout_peak_days: tuple[int, int] = (1, 3)
    resolves_by_day: int = 7
    peak_tolerance_days: int = 1
    new_lesions_until_day: int = 5
    clear_count: int = 3
    clear_fraction: float = 0.2
    redness_clear_fraction: float = 0.4
    band_tolerance: float = 0.15
    rise_count: int = 3
    rise_fraction: float = 0.25
    projection_grace_days: int = 2
    new_pustules_min: int = 2
    min_days: int = 3
    never_settled_count: int = 20
    significant_noise_sigmas: float = 3.0
    margin_noise_sigmas: float = 2.0
    source: str = (
        "Systematic review of microneedling (cited in the project issue): expected effects "
        "last up to 7 days; common effects resolve within about 72 h."
    )

    def __post_init__(self) -> None:
        peak = tuple(self.breakout_peak_days)
        if len(peak) != 2:
            raise ValueError(
                "breakout_peak_days must be two days (first, last), "
                f"got {self.breakout_peak_days!r}"
            )
        object.__setattr__(self, "breakout_peak_days", (int(peak[0]), int(peak[1])))
        first, last = self.breakout_peak_days
        if not 0 <= first <= last:
            raise ValueError(
                f"breakout_peak_days must satisfy 0 <= first <= last, got {self.breakout_peak_days}"
            )
        if self.peak_tolerance_days < 0:
            raise ValueError(f"peak_tolerance_days must be >= 0, got {self.peak_tolerance_days}")
        if self.resolves_by_day <= last + self.peak_tolerance_days:
            raise ValueError(
                "resolves_by_day must come after the peak window and its tolerance "
                f"(> {last + self.peak_tolerance_days}), got {self.resolves_by_day}"
            )
        if not 0 <= self.redness_settles_by_day < self.resolves_by_day:
            raise ValueError(
                "redness_settles_by_day must be between 0 and resolves_by_day "
                f"({self.resolves_by_day}), got {self.redness_settles_by_day}"
            )
        for name in ("clear_fraction", "redness_clear_fraction", "rise_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in (
            "clear_count",
            "rise_count",
            "projection_grace_days",
            "new_lesions_until_day",
            "band_tolerance",
            "never_settled_count",
            "significant_noise_sigmas",
            "margin_noise_sigmas",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.new_pustules_min < 1:
            raise ValueError(f"new_pustules_min must be >= 1, got {self.new_pustules_min}")
        if self.min_days < 2:
            raise ValueError(f"min_days must be >= 2, got {self.min_days}")

    @property
    def peak_window_end(self) -> int:
        """Last day a breakout peak is still on time (peak window plus tolerance)."""
        return self.breakout_peak_days[1] + self.peak_tolerance_days

    def band(self, days: Sequence[float] | np.ndarray, *, measure: str = "lesions") -> ExpectedBand:
        """The expected relative level on the given days, for drawing and for judging.

        The upper edge is 1 (the course's own peak) until the peak is due to be over
        (``peak_window_end`` for spots, ``redness_settles_by_day`` for redness), then falls
        exponentially to the clear level at ``resolves_by_day`` and stays there. Before
        treatment (negative days) it is the clear level.

        Parameters
        ----------
        days : array_like of shape (N,)
            Days since treatment.
        measure : {"lesions", "redness"}
            Spots follow the breakout window, redness the redness window.

        Returns
        -------
        ExpectedBand
            ``lower``, ``upper`` and ``typical`` arrays of shape (N,), in 0..1.
        """
        d = np.asarray(days, dtype=float)
        if d.ndim != 1:
            raise ValueError(f"days must be a 1-D sequence, got shape {d.shape}")
        end = float(self.resolves_by_day)
        if measure == "lesions":
            start = float(self.peak_window_end)
            floor = self.clear_fraction
            middle = 0.5 * (self.breakout_peak_days[0] + self.breakout_peak_days[1])
            rise = np.clip(d / middle, 0.0, 1.0) if middle > 0 else (d >= 0).astype(float)
            fall = (0.5 * floor) ** (np.maximum(d - middle, 0.0) / (end - middle))
            typical = np.where(d <= middle, rise, fall)
        elif measure == "redness":
            start = float(self.redness_settles_by_day)
            floor = self.redness_clear_fraction
            settle = max(start, 1.0)
            typical = np.where(d < 0, 0.0, (0.5 * floor) ** (np.maximum(d, 0.0) / settle))
        else:
            raise ValueError(f"measure must be 'lesions' or 'redness', got {measure!r}")
        falling = floor ** ((d - start) / (end - start))
        upper = np.where(d <= start, 1.0, np.where(d >= end, floor, falling))
        upper = np.where(d < 0, floor, upper)
        lower = np.zeros_like(d)
        return ExpectedBand(measure=measure, days=d, lower=lower, upper=upper, typical=typical)

    def to_json(self, *, days: Sequence[float] | np.ndarray | None = None) -> dict:
        """The window as data, with the bands on ``days`` (default: day 0 to two weeks)."""
        if days is None:
            days = np.arange(0, max(14, self.resolves_by_day + 7) + 1)
        return {
            "redness_settles_by_day": self.redness_settles_by_day,
            "breakout_peak_days": list(self.breakout_peak_days),
            "resolves_by_day": self.resolves_by_day,
            "peak_tolerance_days": self.peak_tolerance_days,
            "new_lesions_until_day": self.new_lesions_until_day,
            "clear_count": self.clear_count,
            "clear_fraction": self.clear_fraction,
            "redness_clear_fraction": self.redness_clear_fraction,
            "band_tolerance": self.band_tolerance,
            "rise_count": self.rise_count,
            "rise_fraction": self.rise_fraction,
            "projection_grace_days": self.projection_grace_days,
            "new_pustules_min": self.new_pustules_min,
            "min_days": self.min_days,
            "never_settled_count": self.never_settled_count,
            "significant_noise_sigmas": self.significant_noise_sigmas,
            "margin_noise_sigmas": self.margin_noise_sigmas,
            "source": self.source,
            "level": "relative to the course's own peak above baseline: 0 baseline, 1 peak",
            "band": {
                "lesions": self.band(days, measure="lesions").to_json(),
                "redness": self.band(days, measure="redness").to_json(),
            },
        }


DEFAULT_EXPECTED_COURSE = ExpectedCourse()


# --------------------------------------------------------------------------------------------
# Symptoms reported by the patient
# --------------------------------------------------------------------------------------------

_SYMPTOM_SENTENCES = {
    "fever": "You reported a fever{when}.",
    "pain": "You reported pain in the treated skin{when}.",
    "spreading_redness": "You reported redness that is spreading{when}.",
    "pus": "You reported pus (yellow or white fluid) in the treated skin{when}.",
    "cold_sores": "You reported cold sores{when}.",
}
#: The symptoms a patient is asked about, in the order they are reported: the one list the
#: check-in, the database's columns and the course's reasons follow.
SYMPTOM_NAMES: tuple[str, ...] = tuple(_SYMPTOM_SENTENCES)


@dataclass(frozen=True)
class Symptoms:
    """What the patient reported when the app asked (each reported symptom raises the flag).

    Parameters
    ----------
    fever, pain, spreading_redness, pus, cold_sores : bool
        Whether the patient reported it.
    day : int or None
        Day since treatment of the report, if known.
    """

    fever: bool = False
    pain: bool = False
    spreading_redness: bool = False
    pus: bool = False
    cold_sores: bool = False
    day: int | None = None

    def __post_init__(self) -> None:
        for name in SYMPTOM_NAMES:
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"Symptoms.{name} must be True or False, got {value!r}")
        if self.day is not None and (isinstance(self.day, bool) or not _is_whole(self.day)):
            raise TypeError(
                f"Symptoms.day must be a whole number of days or None, got {self.day!r}"
            )

    @property
    def reported(self) -> tuple[str, ...]:
        """Names of the symptoms reported, in a fixed order."""
        return tuple(name for name in SYMPTOM_NAMES if getattr(self, name))

    def reasons(self) -> tuple[str, ...]:
        """One plain sentence per reported symptom."""
        when = "" if self.day is None else f" on day {int(self.day)}"
        return tuple(_SYMPTOM_SENTENCES[name].format(when=when) for name in self.reported)


# --------------------------------------------------------------------------------------------
# Severity
# --------------------------------------------------------------------------------------------


def hayashi_grade(half_face_count: int) -> str:
    """Acne severity grade of Hayashi et al. (J Dermatol 2008) from a half-face count.

    Parameters
    ----------
    half_face_count : int
        Inflammatory lesions (papules + pustules) on one half of the face, >= 0.

    Returns
    -------
    str
        ``"mild"`` (0-5), ``"moderate"`` (6-20), ``"severe"`` (21-50) or ``"very severe"`` (>50).
    """
    if isinstance(half_face_count, bool) or not _is_whole(half_face_count) or half_face_count < 0:
        raise ValueError(f"half_face_count must be a whole number >= 0, got {half_face_count!r}")
    for upper, grade in _HAYASHI_GRADES:
        if half_face_count <= upper:
            return grade
    return "very severe"


@dataclass(frozen=True)
class Severity:
    """Severity of the breakout on one day, on the Hayashi scale.

    Attributes
    ----------
    grade : str
        ``"mild"``, ``"moderate"``, ``"severe"`` or ``"very severe"``.
    half_face_count : int
        Estimated lesions on one half of the face (what the scale counts).
    whole_face_count : float
        Lesions on the whole face (median over the day's photos).
    day : int
        Day the severity refers to.
    scale : str
        The scale and how the count was made.
    """

    grade: str
    half_face_count: int
    whole_face_count: float
    day: int
    scale: str = HAYASHI_SCALE

    @classmethod
    def from_whole_face(cls, count: float, *, day: int) -> Severity:
        """Severity from a whole-face lesion count (the half-face count is half, rounded up)."""
        half = int(math.ceil(max(float(count), 0.0) / 2.0 - 1e-9))
        return cls(grade=hayashi_grade(half), half_face_count=half, whole_face_count=count, day=day)

    def to_json(self) -> dict:
        return {
            "scale": self.scale,
            "grade": self.grade,
            "count": self.half_face_count,
            "whole_face_count": _number(self.whole_face_count),
            "day": self.day,
        }


# --------------------------------------------------------------------------------------------
# Reading photo records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lesion:
    """One detected lesion mapped into the reference photo's pixels."""

    x: float
    y: float
    radius: float
    kind: str
    confidence: float
    region: str | None
    sources: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class _Photo:
    """One usable photo record, with its day and its lesions in reference coordinates."""

    file: str
    day: int
    redness: float | None
    redness_by_region: tuple[tuple[str, float], ...]
    lesion_count: float | None
    lesions: tuple[_Lesion, ...] | None  # None: no lesion positions in the record
    lesion_regions_known: bool
    faint: tuple[_Lesion, ...]  # faint spots (``faint_lesions``): keep a track, never counted
    area: np.ndarray | None  # (4, 2) where lesions were read, reference pixels; None: unknown
    separation: float  # lesions closer than this (reference pixels) read as one; 0: unknown
    alignment_score: float
    key: tuple


def _is_whole(value: object) -> bool:
    """A whole number of any numeric type (not a bool, not a string)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return False
    return math.isfinite(float(value)) and float(value) == int(value)


def _float_or_none(value: object, what: str, *parts: object) -> float | None:
    """A finite float, or None for null and non-finite values; ``what.format(*parts)`` names
    the field in the error message (formatted only when there is an error)."""
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        number = float(value)
    elif isinstance(value, bool | np.bool_ | str | bytes):
        raise ValueError(f"{what.format(*parts)} must be a number or null, got {value!r}")
    else:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"{what.format(*parts)} must be a number or null, got {value!r}"
            ) from None
    return number if math.isfinite(number) else None


def _local_date(value: object, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise ValueError(f"{what} must be an ISO 8601 date and time, got {value!r}")


def _homography(value: object, what: str) -> np.ndarray:
    if value is None:
        return np.eye(3)
    matrix = np.asarray(value, dtype=float)
    if matrix.shape != (3, 3):
        raise ValueError(f"{what} must be a 3x3 matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{what} must hold finite numbers, got {matrix.tolist()}")
    return matrix


def _map_lesions(raw: Sequence[Mapping], matrix: np.ndarray, file: str,
                 refinement: Refinement | None = None) -> tuple[_Lesion, ...]:
    """Map lesion centres through ``to_reference`` and its refinement, if any; radii scale
    with the homography's local area change (the refinement's is negligible)."""
    (h00, h01, h02), (h10, h11, h12), (h20, h21, h22) = matrix.tolist()
    lesions, points = [], []
    for index, item in enumerate(raw):
        what = "photo {!r} lesion {} {}"
        if not isinstance(item, Mapping):
            raise ValueError(
                f"photo {file!r} lesion {index} must be an object with x, y, radius, got {item!r}"
            )
        x = _float_or_none(item.get("x"), what, file, index, "x")
        y = _float_or_none(item.get("y"), what, file, index, "y")
        if x is None or y is None:
            raise ValueError(f"photo {file!r} lesion {index} needs numeric x and y, got {item!r}")
        radius = _float_or_none(item.get("radius"), what, file, index, "radius") or 0.0
        confidence = _float_or_none(item.get("confidence"), what, file, index, "confidence")
        w = h20 * x + h21 * y + h22
        if not w > 1e-12:
            continue  # maps to infinity: the alignment is unusable at this point
        xr, yr = (h00 * x + h01 * y + h02) / w, (h10 * x + h11 * y + h12) / w
        points.append((x, y))
        scale = _local_scale(matrix, x, y)
        kind = str(item.get("kind") or "papule")
        region = item.get("region")
        lesions.append(
            _Lesion(
                x=float(xr),
                y=float(yr),
                radius=max(radius, 0.0) * scale,
                kind=kind,
                confidence=1.0 if confidence is None else confidence,
                region=None if region is None else str(region),
                sources=((file, index),),
            )
        )
    if refinement is not None and lesions:
        moved = refinement.to_reference(matrix, np.array(points))
        lesions = [replace(les, x=float(x), y=float(y))
                   for les, (x, y) in zip(lesions, moved, strict=True)]
    return tuple(lesions)


def _refinement(data: object, file: str) -> Refinement | None:
    """A photo's ``to_reference_refinement`` (None when absent or null)."""
    if data is None:
        return None
    try:
        if not isinstance(data, Mapping):
            raise TypeError
        refinement = Refinement.from_json(dict(data))
        ok = (refinement is not None and refinement.grid_to_reference.shape == (3, 3)
              and np.all(np.isfinite(refinement.grid_to_reference))
              and np.all(np.isfinite(refinement.dx)) and np.all(np.isfinite(refinement.dy)))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"photo {file!r}: to_reference_refinement must be an object with a "
                         "3x3 grid_to_reference and grids dx, dy of finite numbers")
    return refinement


def _local_scale(matrix: np.ndarray, x: float, y: float) -> float:
    """How much a homography stretches lengths at (x, y) (root of its Jacobian's area)."""
    (h00, h01, h02), (h10, h11, h12), (h20, h21, h22) = matrix.tolist()
    w = h20 * x + h21 * y + h22
    if not w > 1e-12:
        return 1.0
    xr, yr = (h00 * x + h01 * y + h02) / w, (h10 * x + h11 * y + h12) / w
    det = ((h00 - xr * h20) * (h11 - yr * h21) - (h01 - xr * h21) * (h10 - yr * h20)) / w**2
    return math.sqrt(abs(det))


def _read_photos(photos: Sequence[Mapping]) -> tuple[list[_Photo], str, int]:
    """Usable photos with their days, where days count from, and how many had no date.

    Days come from ``day`` when any usable photo has one (a treatment date was given), else
    from ``captured_at``. A usable photo that has neither cannot be placed and is left out.
    """
    if isinstance(photos, Mapping) or isinstance(photos, str | bytes):
        raise TypeError(f"photos must be a sequence of photo records, got {type(photos).__name__}")
    usable: list[Mapping] = []
    for index, photo in enumerate(photos):
        if not isinstance(photo, Mapping):
            raise TypeError(f"photo record {index} must be a mapping, got {type(photo).__name__}")
        if photo.get("status", "ok") == "rejected":
            continue
        usable.append(photo)
    if not usable:
        return [], "treatment", 0

    if any(p.get("day") is not None for p in usable):
        origin = "treatment"
        undated = sum(1 for p in usable if p.get("day") is None)
        usable = [p for p in usable if p.get("day") is not None]
        days = []
        for p in usable:
            day = p["day"]
            if isinstance(day, bool) or not _is_whole(day):
                raise ValueError(
                    f"photo {p.get('file')!r}: day must be a whole number of days, got {day!r}"
                )
            days.append(int(day))
    else:
        origin = "first_photo"
        undated = sum(1 for p in usable if p.get("captured_at") is None)
        usable = [p for p in usable if p.get("captured_at") is not None]
        dates = [
            _local_date(p["captured_at"], f"photo {p.get('file')!r} captured_at") for p in usable
        ]
        first = min(dates, default=None)
        days = [(d - first).days for d in dates] if first is not None else []

    records = []
    for p, day in zip(usable, days, strict=True):
        file = str(p.get("file", ""))
        redness = p.get("redness")
        index = None
        by_region: list[tuple[str, float]] = []
        if isinstance(redness, Mapping):
            index = _float_or_none(redness.get("index"), "photo {!r} redness index", file)
            regions = redness.get("by_region") or {}
            for name in sorted(regions):
                entry = regions[name]
                value = entry.get("index") if isinstance(entry, Mapping) else entry
                number = _float_or_none(value, "photo {!r} redness {}", file, name)
                if number is not None:
                    by_region.append((str(name), number))
        elif redness is not None:
            raise ValueError(f"photo {file!r}: redness must be an object or null, got {redness!r}")

        raw_lesions = p.get("lesions")
        lesions = None
        if raw_lesions is not None:
            if isinstance(raw_lesions, Mapping | str) or not isinstance(raw_lesions, Sequence):
                raise ValueError(f"photo {file!r}: lesions must be a list, got {raw_lesions!r}")
            matrix = _homography(p.get("to_reference"), f"photo {file!r} to_reference")
            refinement = _refinement(p.get("to_reference_refinement"), file)
            lesions = _map_lesions(raw_lesions, matrix, file, refinement)
        raw_faint = p.get("faint_lesions") if lesions is not None else None
        faint: tuple[_Lesion, ...] = ()
        if raw_faint is not None:
            if isinstance(raw_faint, Mapping | str) or not isinstance(raw_faint, Sequence):
                raise ValueError(
                    f"photo {file!r}: faint_lesions must be a list, got {raw_faint!r}")
            faint = _map_lesions(raw_faint, matrix, file, refinement)
        area = None
        reading = p.get("lesion_reading")
        face_centre = None
        box = p["face"].get("box") if isinstance(p.get("face"), Mapping) else None
        if isinstance(box, Sequence) and not isinstance(box, str) and len(box) == 4:
            corners = [_float_or_none(v, "photo {!r} face box", file) for v in box]
            if None not in corners:
                x0, y0, x1, y1 = corners
                face_centre = (0.5 * (x0 + x1), 0.5 * (y0 + y1))
        if lesions is not None and isinstance(reading, Mapping) and reading.get("area"):
            try:
                corners = np.asarray(reading["area"], dtype=float)
            except (TypeError, ValueError):
                corners = np.zeros(0)  # not corners: the whole photo counts as read
            if corners.shape == (4, 2) and np.all(np.isfinite(corners)):
                w = corners @ matrix[2, :2] + matrix[2, 2]
                if np.all(w > 1e-12):
                    mapped = np.c_[corners, np.ones(4)] @ matrix.T
                    area = mapped[:, :2] / mapped[:, 2:]
        separation = 0.0
        if lesions is not None and isinstance(reading, Mapping):
            sep = _float_or_none(reading.get("separation_px"), "photo {!r} separation_px", file)
            if sep is not None and sep > 0 and face_centre is not None:
                separation = sep * _local_scale(matrix, *face_centre)
        count = _float_or_none(p.get("lesion_count"), "photo {!r} lesion_count", file)
        if count is None and raw_lesions is not None:
            count = float(len(raw_lesions))
        if lesions == () and count:
            lesions = None  # a count without positions: nothing to track, not "no lesions"
        regions_known = bool(raw_lesions) and all(
            isinstance(item, Mapping) and item.get("region") is not None for item in raw_lesions
        )
        alignment = _float_or_none(p.get("alignment_score"), "photo {!r} alignment_score", file)
        alignment = 0.0 if alignment is None else alignment
        # Only breaks ties between records of one day with the same file name and time.
        lesion_key = tuple(sorted((le.x, le.y, le.radius, le.kind) for le in lesions or ()))
        key = (
            -alignment,
            file,
            str(p.get("captured_at")),
            -1.0 if count is None else count,
            -math.inf if index is None else index,
            lesion_key,
        )
        records.append(
            _Photo(
                file=file,
                day=day,
                redness=index,
                redness_by_region=tuple(by_region),
                lesion_count=count,
                lesions=lesions,
                lesion_regions_known=regions_known,
                faint=faint if lesions is not None else (),
                area=area,
                separation=separation,
                alignment_score=alignment,
                key=key,
            )
        )
    records.sort(key=lambda r: (r.day, r.key))
    return records, origin, undated


# --------------------------------------------------------------------------------------------
# Lesion tracking
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sighting:
    """One lesion on one observed day, in reference-photo pixels.

    ``sources`` names the (file, index in that photo's ``lesions``) it was built from; several
    when photos of the same day were combined. A ``faint`` sighting is one of the photo's
    ``faint_lesions`` (the index is into that list): the lesion was there but read too faintly
    to be counted.
    """

    day: int
    x_ref: float
    y_ref: float
    radius_ref: float
    kind: str
    confidence: float
    region: str | None
    sources: tuple[tuple[str, int], ...]
    faint: bool = False


@dataclass(frozen=True)
class Track:
    """One lesion followed across days.

    Attributes
    ----------
    id : int
        1, 2, ... in order of first appearance (then position), the same for any input order.
    first_day, last_day : int
        First and last day it was seen (counted or faint).
    resolved_day : int or None
        First observed day after the last sighting (when it was gone), None if still present.
    x_ref, y_ref, radius_ref : float
        Mean position and median radius in reference-photo pixels, of the counted sightings.
    kind : str
        Kind at the last counted sighting (``"papule"`` or ``"pustule"``).
    sightings : tuple of Sighting
        Every day it was seen, in day order; ``faint`` ones on days it read too faintly to
        be counted (a track always has at least one counted sighting).
    """

    id: int
    first_day: int
    last_day: int
    resolved_day: int | None
    x_ref: float
    y_ref: float
    radius_ref: float
    kind: str
    sightings: tuple[Sighting, ...]

    @property
    def days(self) -> tuple[int, ...]:
        """Days on which it was counted."""
        return tuple(s.day for s in self.sightings if not s.faint)

    @property
    def faint_days(self) -> tuple[int, ...]:
        """Days on which it was there but read too faintly to be counted."""
        return tuple(s.day for s in self.sightings if s.faint)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "first_day": self.first_day,
            "last_day": self.last_day,
            "resolved_day": self.resolved_day,
            "x_ref": round(self.x_ref, 1),
            "y_ref": round(self.y_ref, 1),
            "radius_ref": round(self.radius_ref, 1),
            "kind": self.kind,
            "days": list(self.days),
            "faint_days": list(self.faint_days),
        }


@dataclass(frozen=True)
class TrackingDay:
    """Lesion turnover on one observed day.

    ``new`` lesions were first seen that day (on the first observed day every lesion is new);
    ``persisting`` were seen before and are still there (including one the detector missed that
    day but saw again later); ``resolved`` were there on the previous observed day and are gone.
    """

    day: int
    detected: int
    new: int
    persisting: int
    resolved: int
    new_pustules: int
    oldest_persisting_age_days: int | None
    oldest_persisting_id: int | None


@dataclass(frozen=True)
class LesionTracking:
    """Tracks and per-day turnover, from :func:`track_lesions`."""

    tracks: tuple[Track, ...]
    days: tuple[TrackingDay, ...]

    def day(self, day: int) -> TrackingDay | None:
        """Turnover on ``day``, or None when that day had no lesion positions."""
        for entry in self.days:
            if entry.day == day:
                return entry
        return None


def _gates(r_a: np.ndarray, r_b: np.ndarray, factor: float, minimum: float) -> np.ndarray:
    return np.maximum(factor * np.maximum(r_a[:, None], r_b[None, :]), minimum)


def _assign(
    centres: np.ndarray, radii: np.ndarray, lesions: Sequence[_Lesion], extra: np.ndarray,
    *, factor: float, minimum: float,
) -> list[tuple[int, int]]:
    """Hungarian assignment of lesions to centres within the distance gate; (centre, lesion)."""
    if len(centres) == 0 or len(lesions) == 0:
        return []
    points = np.array([[le.x, le.y] for le in lesions])
    sizes = np.array([le.radius for le in lesions])
    distance = np.hypot(
        centres[:, None, 0] - points[None, :, 0], centres[:, None, 1] - points[None, :, 1]
    )
    gate = _gates(radii, sizes, factor, minimum)
    cost = np.where(distance <= gate, distance / gate + extra[:, None], _NO_MATCH)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]


def _combine_day(photos: Sequence[_Photo], *, factor: float, minimum: float) -> list[_Lesion]:
    """One lesion list for a day: lesions seen in at least half of the day's photos."""
    with_lesions = [p for p in photos if p.lesions is not None]
    if len(with_lesions) == 1:
        return sorted(with_lesions[0].lesions or (), key=lambda le: (le.x, le.y, le.radius))
    clusters: list[list[_Lesion]] = []
    for photo in with_lesions:
        ordered = sorted(photo.lesions or (), key=lambda le: (le.x, le.y, le.radius))
        centres = np.array([
            [statistics.fmean(m.x for m in c), statistics.fmean(m.y for m in c)] for c in clusters
        ])
        radii = np.array([statistics.median([m.radius for m in c]) for c in clusters])
        pairs = _assign(
            centres.reshape(-1, 2), radii, ordered, np.zeros(len(clusters)),
            factor=factor, minimum=minimum,
        )
        matched = set()
        for c, j in pairs:
            clusters[c].append(ordered[j])
            matched.add(j)
        clusters.extend([ordered[j]] for j in range(len(ordered)) if j not in matched)
    needed = math.ceil(len(with_lesions) / 2)
    combined = []
    for members in clusters:
        if len(members) < needed:
            continue
        pustules = sum(m.kind == "pustule" for m in members)
        regions = sorted(m.region for m in members if m.region is not None)
        combined.append(
            _Lesion(
                x=float(statistics.fmean([m.x for m in members])),
                y=float(statistics.fmean([m.y for m in members])),
                radius=float(statistics.median([m.radius for m in members])),
                kind="pustule" if 2 * pustules >= len(members) else "papule",
                confidence=max(m.confidence for m in members),
                region=max(set(regions), key=lambda r: (regions.count(r), r)) if regions else None,
                sources=tuple(sorted(s for m in members for s in m.sources)),
            )
        )
    return sorted(combined, key=lambda le: (le.x, le.y, le.radius))


@dataclass
class _TrackState:
    sightings: list[Sighting] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    unseen: set[int] = field(default_factory=set)  # observed days its place was out of view
    centre: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0

    def add(self, index: int, sighting: Sighting) -> None:
        self.indices.append(index)
        self.sightings.append(sighting)
        if sighting.faint:
            return  # where and how big it is comes from the counted sightings
        counted = [s for s in self.sightings if not s.faint]
        n = len(counted)
        self.centre = (
            self.centre[0] + (sighting.x_ref - self.centre[0]) / n,
            self.centre[1] + (sighting.y_ref - self.centre[1]) / n,
        )
        self.radius = statistics.median(s.radius_ref for s in counted)

    def missed(self, k: int) -> int:
        """Observed days before the ``k``-th since the last sighting, not counting unseen ones."""
        return sum(1 for i in range(self.indices[-1] + 1, k) if i not in self.unseen)

    def prepend(self, index: int, sighting: Sighting) -> None:
        """A faint sighting before the first one (found when the lesion was first counted)."""
        self.indices.insert(0, index)
        self.sightings.insert(0, sighting)

    @property
    def faint_run(self) -> int:
        """Faint sightings since the last counted one."""
        run = 0
        for s in reversed(self.sightings):
            if not s.faint:
                break
            run += 1
        return run


def _sighting(day: int, lesion: _Lesion, *, faint: bool = False) -> Sighting:
    return Sighting(day=day, x_ref=lesion.x, y_ref=lesion.y, radius_ref=lesion.radius,
                    kind=lesion.kind, confidence=lesion.confidence, region=lesion.region,
                    sources=lesion.sources, faint=faint)


def _in_view(photos: Sequence[_Photo], x: float, y: float, margin: float) -> bool:
    """Whether any photo of a day showed the place (x, y) of the reference, ``margin`` inside
    the area its lesions were read on; a photo without a known area showed everything."""
    for photo in photos:
        if photo.lesions is None:
            continue
        if photo.area is None:
            return True
        inside = cv2.pointPolygonTest(photo.area.astype(np.float32).reshape(-1, 1, 2),
                                      (float(x), float(y)), True)
        if inside >= margin:
            return True
    return False


def _hidden(photos: Sequence[_Photo], x: float, y: float, separation: float) -> bool:
    """Whether a lesion at (x, y) may have been read as one with a neighbour that day: a
    lesion or faint spot of one of the day's photos lies closer than ``separation``."""
    if separation <= 0:
        return False
    for photo in photos:
        if photo.lesions is None:
            continue
        for le in (*photo.lesions, *photo.faint):
            if math.hypot(le.x - x, le.y - y) < separation:
                return True
    return False


def _merged_sighting(day: int, state: _TrackState) -> Sighting:
    """A faint sighting of a tracked lesion read as one with a neighbour (no source)."""
    last = state.sightings[-1] if state.sightings else None
    return Sighting(day=day, x_ref=state.centre[0], y_ref=state.centre[1],
                    radius_ref=state.radius, kind=last.kind if last else "papule",
                    confidence=0.0, region=last.region if last else None, sources=(),
                    faint=True)


def _faint_of_day(photos: Sequence[_Photo], counted: Sequence[_Lesion]) -> list[_Lesion]:
    """The day's faint spots: every photo's, and lesions of its photos not counted that day."""
    with_lesions = [p for p in photos if p.lesions is not None]
    used = {src for le in counted for src in le.sources}
    spots = [le for p in with_lesions for le in p.faint]
    spots += [le for p in with_lesions for le in p.lesions or () if le.sources[0] not in used]
    return sorted(spots, key=lambda le: (-le.confidence, le.x, le.y))


def _first_counted(track: Track) -> Sighting:
    return next(s for s in track.sightings if not s.faint)


def _extend_back(
    state: _TrackState, k: int, observed: Sequence[int], faint_left: list[list[_Lesion]],
    factor: float, minimum: float, max_faint_days: int,
    out_of_view: Callable[[int, float, float, float], bool],
    hidden: Callable[[int, float, float], bool],
    max_missed_days: int,
) -> None:
    """Prepend the faint spots at a new track's place on the observed days just before ``k``.

    Goes back one observed day at a time while that day has an untaken faint spot within the
    gate (or did not show the place, ``out_of_view``), at most ``max_faint_days`` faint ones;
    the spots taken are removed from ``faint_left``.
    """
    x, y = state.centre
    taken = missed = 0
    for back in range(k - 1, -1, -1):
        if taken == max_faint_days:
            return
        if out_of_view(back, x, y, state.radius):
            state.unseen.add(back)
            continue
        spots = faint_left[back]
        best = None
        if spots:
            gates = _gates(np.array([state.radius]), np.array([sp.radius for sp in spots]),
                           factor, minimum)[0]
            d = np.hypot([sp.x - x for sp in spots], [sp.y - y for sp in spots])
            d = np.where(d <= gates, d, np.inf)
            best = int(np.argmin(d)) if np.isfinite(d.min()) else None
        if best is not None:
            state.prepend(back, _sighting(observed[back], spots.pop(best), faint=True))
        elif hidden(back, x, y):
            state.prepend(back, _merged_sighting(observed[back], state))
        elif missed < max_missed_days:
            missed += 1
            continue
        else:
            return
        taken += 1
        missed = 0


def _track(
    photos: Sequence[_Photo], *, gate_radius_factor: float, gate_min_px: float,
    max_missed_days: int, max_faint_days: int = _MAX_FAINT_DAYS,
) -> LesionTracking:
    by_day: dict[int, list[_Photo]] = {}
    for photo in photos:
        if photo.lesions is not None:
            by_day.setdefault(photo.day, []).append(photo)
    observed = sorted(by_day)
    # Every photo of a course is read in the reference's frame at one scale, so two lesions
    # are read as one at the same distance in all of them; each photo's own estimate of that
    # distance follows its own pupil distance, which MediaPipe gave as 189-240 px on re-shoots
    # of one face at one scale. The course takes the largest, so that a lesion beside a
    # neighbour is not called new or gone on the strength of one photo's small estimate.
    separation = max((p.separation for p in photos if p.lesions is not None), default=0.0)
    states: list[_TrackState] = []
    faint_left: list[list[_Lesion]] = []  # each observed day's faint spots no track has taken

    def out_of_view(k: int, x: float, y: float, radius: float) -> bool:
        return not _in_view(by_day[observed[k]], x, y, radius)

    def assign(pool: list[_TrackState], lesions: Sequence[_Lesion], k: int):
        centres = np.array([s.centre for s in pool]).reshape(-1, 2)
        radii = np.array([s.radius for s in pool])
        missed = np.array([s.missed(k) for s in pool], dtype=float)
        pairs = _assign(
            centres, radii, lesions, _MISSED_DAY_PENALTY * missed,
            factor=gate_radius_factor, minimum=gate_min_px,
        )
        return {j: pool[i] for i, j in pairs}

    for k, day in enumerate(observed):
        lesions = _combine_day(by_day[day], factor=gate_radius_factor, minimum=gate_min_px)
        faint = _faint_of_day(by_day[day], lesions)
        candidates = [s for s in states if s.missed(k) <= max_missed_days]
        owner = assign(candidates, lesions, k)
        new = []
        for j, lesion in enumerate(lesions):
            state = owner.get(j)
            if state is None:
                state = _TrackState()
                states.append(state)
                new.append(state)
            state.add(k, _sighting(day, lesion))
        # A lesion followed so far but not counted today is still there if read faintly.
        taken = {id(s) for s in owner.values()}
        waiting = [s for s in candidates
                   if id(s) not in taken and s.faint_run < max_faint_days]
        kept = assign(waiting, faint, k)
        for j, state in kept.items():
            state.add(k, _sighting(day, faint[j], faint=True))
        faint_left.append([le for j, le in enumerate(faint) if j not in kept])
        # Not seen at all: gone, unless read as one with a neighbour or out of view.
        held = taken | {id(s) for s in kept.values()}
        for state in candidates:
            if id(state) in held:
                continue
            if state.faint_run < max_faint_days and _hidden(by_day[day], *state.centre, separation):
                state.add(k, _merged_sighting(day, state))
            elif out_of_view(k, *state.centre, state.radius):
                state.unseen.add(k)
        # A lesion counted for the first time was there before if read faintly then.
        for state in new:
            _extend_back(state, k, observed, faint_left, gate_radius_factor, gate_min_px,
                         max_faint_days, out_of_view,
                         lambda i, x, y: _hidden(by_day[observed[i]], x, y, separation),
                         max_missed_days)

    def order(state: _TrackState) -> tuple:
        first = state.sightings[0]
        return (first.day, round(first.x_ref, 6), round(first.y_ref, 6), round(first.radius_ref, 6))

    states.sort(key=order)
    tracks = []
    resolved_at: list[int | None] = []  # observed-day index it was first gone
    for number, state in enumerate(states, start=1):
        x, y = state.centre
        after = [i for i in range(state.indices[-1] + 1, len(observed)) if i not in state.unseen]
        resolved_at.append(after[0] if after else None)
        tracks.append(
            Track(
                id=number,
                first_day=state.sightings[0].day,
                last_day=state.sightings[-1].day,
                resolved_day=None if not after else observed[after[0]],
                x_ref=x,
                y_ref=y,
                radius_ref=state.radius,
                kind=[s for s in state.sightings if not s.faint][-1].kind,
                sightings=tuple(state.sightings),
            )
        )

    spans = [(s.indices[0], s.indices[-1], t) for s, t in zip(states, tracks, strict=True)]
    days = []
    for k, day in enumerate(observed):
        new = [t for first, _, t in spans if first == k]
        persisting = [t for first, last, t in spans if first < k <= last]
        resolved = sum(1 for gone in resolved_at if gone == k)
        detected = sum(1 for t in tracks for s in t.sightings if s.day == day and not s.faint)
        oldest = max(persisting, key=lambda t: (day - t.first_day, -t.id), default=None)
        days.append(
            TrackingDay(
                day=day,
                detected=detected,
                new=len(new),
                persisting=len(persisting),
                resolved=resolved,
                new_pustules=sum(1 for t in new if _first_counted(t).kind == "pustule"),
                oldest_persisting_age_days=None if oldest is None else day - oldest.first_day,
                oldest_persisting_id=None if oldest is None else oldest.id,
            )
        )
    return LesionTracking(tracks=tuple(tracks), days=tuple(days))


def track_lesions(
    photos: Sequence[Mapping],
    *,
    gate_radius_factor: float = 2.5,
    gate_min_px: float = 8.0,
    max_missed_days: int = 1,
) -> LesionTracking:
    """Follow each lesion across days in the reference photo's pixels.

    Lesion centres are mapped through each photo's ``to_reference`` homography (radii scale with
    the local change of area). Photos of the same day are combined first: a lesion counts when
    it is seen in at least half of that day's photos. Lesions are then matched between observed
    days by optimal (Hungarian) assignment on distance, within a gate of
    ``max(gate_radius_factor * radius, gate_min_px)``. A lesion may be missed on up to
    ``max_missed_days`` observed days in a row without losing its identity, because detectors
    miss things. Days without photos do not count as missed.

    Where the records say more (``faint_lesions``, ``lesion_reading.area`` and
    ``separation_px``, as :mod:`monitor.pipeline` writes them), a lesion that is not counted
    on a day is still there when a faint spot lies at its place, or when a lesion or faint
    spot lies closer than the separation (read as one with a neighbour; the largest of the
    photos' ``separation_px``, in reference pixels, for every day), for up to
    :data:`_MAX_FAINT_DAYS` observed days in a row (faint sightings, never counted); a day on
    which its place was outside the part of every photo that was read does not count at all.
    A lesion first counted on a day was there before if it was read faintly (or as one with a
    neighbour) on the days just before. On re-shoots of the same skin (12 ACNE04 dev faces)
    the tracks falsely reported new or resolved went from 9.1 to 0.33 per course with this
    and a steadier alignment; on 8 synthetic courses this took the summed error of the daily
    new counts from 37 to 17, of the resolved counts from 29 to 26.

    Parameters
    ----------
    photos : sequence of mapping
        Photo records of the analyse contract; rejected ones are ignored, as are records
        without a ``lesions`` list.
    gate_radius_factor : float
        Gate in radii of the larger of the two lesions.
    gate_min_px : float
        Smallest gate, in reference-photo pixels, for alignment error on small lesions.
    max_missed_days : int
        Observed days a lesion may go unseen and keep its identity.

    Returns
    -------
    LesionTracking
        Tracks (ids in order of first appearance, independent of input order) and per-day
        new / persisting / resolved counts and the age of the oldest persisting lesion.
    """
    if gate_radius_factor <= 0 or gate_min_px < 0:
        raise ValueError(
            "gate_radius_factor must be > 0 and gate_min_px >= 0, "
            f"got {gate_radius_factor} and {gate_min_px}"
        )
    if max_missed_days < 0:
        raise ValueError(f"max_missed_days must be >= 0, got {max_missed_days}")
    records, _, _ = _read_photos(photos)
    return _track(
        records, gate_radius_factor=gate_radius_factor, gate_min_px=gate_min_px,
        max_missed_days=max_missed_days,
    )


# --------------------------------------------------------------------------------------------
# The daily series
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionDay:
    """One face region on one day: median redness index and median lesion count."""

    region: str
    redness_index: float | None
    lesion_count: float | None


@dataclass(frozen=True)
class CourseDay:
    """One observed day of the course (several photos of a day are combined by median).

    ``lesion_level`` and ``redness_level`` are relative to the course's own peak above its
    baseline (0 baseline, 1 peak), on the same scale as :meth:`ExpectedCourse.band`.
    Tracking fields are None when the day has no lesion positions.
    """

    day: int
    photos: int
    redness_index: float | None
    lesion_count: float | None
    new: int | None
    persisting: int | None
    resolved: int | None
    new_pustules: int | None
    oldest_persisting_age_days: int | None
    by_region: tuple[RegionDay, ...]
    lesion_level: float | None = None
    redness_level: float | None = None
    severity_grade: str | None = None

    def to_json(self) -> dict:
        return {
            "day": self.day,
            "photos": self.photos,
            "redness_index": _number(self.redness_index, 4),
            "lesion_count": _number(self.lesion_count),
            "new": self.new,
            "persisting": self.persisting,
            "resolved": self.resolved,
            "new_pustules": self.new_pustules,
            "oldest_persisting_age_days": self.oldest_persisting_age_days,
            "lesion_level": _number(self.lesion_level, 4),
            "redness_level": _number(self.redness_level, 4),
            "severity_grade": self.severity_grade,
            "by_region": {
                r.region: {
                    "redness_index": _number(r.redness_index, 4),
                    "lesion_count": _number(r.lesion_count),
                }
                for r in self.by_region
            },
        }


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if len(values) else None


def _series(photos: Sequence[_Photo], tracking: LesionTracking) -> list[CourseDay]:
    by_day: dict[int, list[_Photo]] = {}
    for photo in photos:
        by_day.setdefault(photo.day, []).append(photo)
    regions_known = any(p.lesion_regions_known for p in photos)
    series = []
    for day in sorted(by_day):
        group = by_day[day]
        region_names = sorted(
            {name for p in group for name, _ in p.redness_by_region}
            | ({le.region for p in group for le in (p.lesions or ()) if le.region} if regions_known
               else set())
        )
        by_region = []
        for name in region_names:
            redness = [v for p in group for n, v in p.redness_by_region if n == name]
            counts = [
                float(sum(1 for le in p.lesions if le.region == name))
                for p in group
                if p.lesions is not None and (p.lesion_regions_known or not p.lesions)
            ] if regions_known else []
            by_region.append(RegionDay(name, _median(redness), _median(counts)))
        turnover = tracking.day(day)
        series.append(
            CourseDay(
                day=day,
                photos=len(group),
                redness_index=_median([p.redness for p in group if p.redness is not None]),
                lesion_count=_median([p.lesion_count for p in group if p.lesion_count is not None]),
                new=None if turnover is None else turnover.new,
                persisting=None if turnover is None else turnover.persisting,
                resolved=None if turnover is None else turnover.resolved,
                new_pustules=None if turnover is None else turnover.new_pustules,
                oldest_persisting_age_days=(
                    None if turnover is None else turnover.oldest_persisting_age_days
                ),
                by_region=tuple(by_region),
            )
        )
    return series


# --------------------------------------------------------------------------------------------
# Trend of one measure
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    """Exponential decay after the peak, fitted as a robust (Theil-Sen) line in log space."""

    slope: float
    day: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, eq=False)
class _Measure:
    name: str  # "lesions" | "redness"
    days: np.ndarray
    values: np.ndarray
    smoothed: np.ndarray
    sigma: float | None
    baseline: float
    peak_day: int
    peak: float
    peak_excess: float
    significant: bool
    clear_level: float
    level: float
    fit: _Fit | None

    @property
    def latest_day(self) -> int:
        return int(self.days[-1])

    @property
    def active(self) -> bool:
        """Still above the clear level at the latest days."""
        return self.level > self.clear_level and (self.name == "lesions" or self.significant)

    def relative(self, value: float) -> float | None:
        if self.peak_excess <= 0:
            return None
        return (value - self.baseline) / self.peak_excess


def _smooth(days: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running median of three, within runs of photos at most ``_SMOOTH_GAP_DAYS`` apart.

    Values across a longer gap are not neighbours: the course may have changed in between.
    """
    out = values.astype(float).copy()
    start = 0
    for i in range(1, len(days) + 1):
        if i == len(days) or days[i] - days[i - 1] > _SMOOTH_GAP_DAYS:
            out[start:i] = _running_median3(values[start:i])
            start = i
    return out


def _running_median3(values: np.ndarray) -> np.ndarray:
    """Median of each value and its neighbours, with Tukey's end-point rule.

    An end keeps its value when it continues the trend of its neighbours (a peak on the first
    day, a rise on the last) and is pulled in when it is a lone spike. Fewer than four values
    are returned with only the middle one smoothed.
    """
    n = len(values)
    out = values.astype(float).copy()
    if n < 3:
        return out
    for i in range(1, n - 1):
        out[i] = statistics.median(values[i - 1 : i + 2])
    if n >= 4:
        out[0] = statistics.median((values[0], out[1], 3 * out[1] - 2 * out[2]))
        out[-1] = statistics.median((values[-1], out[-2], 3 * out[-2] - 2 * out[-3]))
    else:
        out[0] = statistics.median((values[0], out[1], values[0]))
        out[-1] = statistics.median((values[-1], out[-2], values[-1]))
    return out



def _noise_sigma(days: np.ndarray, values: np.ndarray) -> float | None:
    """Robust day-to-day noise: each value against the line through its two neighbours."""
    if len(values) < 3:
        return None
    residuals = []
    for i in range(1, len(values) - 1):
        span = float(days[i + 1] - days[i - 1])
        w_next = float(days[i] - days[i - 1]) / span
        w_prev = 1.0 - w_next
        predicted = w_prev * values[i - 1] + w_next * values[i + 1]
        residuals.append(abs(values[i] - predicted) / math.sqrt(1 + w_prev**2 + w_next**2))
    return 1.4826 * float(np.median(residuals))


def _fit_decay(
    days: np.ndarray, y: np.ndarray, target: float, peak_day: int
) -> _Fit | None:
    """Theil-Sen line through ``y`` from the peak on; the day it reaches ``target``, with 95 %."""
    keep = days >= peak_day
    if int(np.sum(days > peak_day)) < 3:
        return None
    x, y = days[keep].astype(float), y[keep]
    result = theilslopes(y, x, alpha=0.95)

    def crossing(slope: float) -> float | None:
        if not slope < 0:
            return None
        intercept = float(np.median(y - slope * x))
        day = (target - intercept) / slope
        return day if day <= _MAX_PROJECTION_DAYS else None

    day = crossing(float(result.slope))
    steep = crossing(float(result.low_slope))
    shallow = crossing(float(result.high_slope))
    low = None if day is None or steep is None else min(steep, day)
    high = None if day is None or shallow is None else max(shallow, day)
    if day is not None and low is None:
        low = day
    return _Fit(slope=float(result.slope), day=day, low=low, high=high)


def _measure(
    name: str, days: Sequence[int], values: Sequence[float], expected: ExpectedCourse
) -> _Measure | None:
    if not days:
        return None
    d = np.asarray(days, dtype=int)
    v = np.asarray(values, dtype=float)
    smoothed = _smooth(d, v)
    sigma = _noise_sigma(d, v)
    after = d >= 0 if np.any(d >= 0) else np.ones(len(d), dtype=bool)
    candidates = np.flatnonzero(after)
    # The raw maximum: a running median clips a genuine one-day peak, and noise adds only about
    # one standard deviation to it.
    peak_index = int(candidates[np.argmax(v[candidates])])
    peak_day, peak = int(d[peak_index]), float(v[peak_index])

    # A baseline needs a photo from before the course rose: before treatment, or day 0 when the
    # peak comes later. Otherwise the contract's baseline: no spots, and a redness index of
    # roughly 0 (the reference photo's own redness).
    if np.any(d < 0):
        baseline = float(np.median(v[d < 0]))
    elif np.any(d == 0) and peak_day > 0:
        baseline = float(min(v[d == 0][0], smoothed[d == 0][0]))
    else:
        baseline = 0.0
    peak_excess = peak - baseline

    if name == "lesions":
        significant = peak_excess >= expected.clear_count
        clear_level = baseline + max(expected.clear_count, expected.clear_fraction * peak_excess)
    else:
        noise = 0.0 if sigma is None else sigma
        significant = peak_excess > expected.significant_noise_sigmas * noise and peak_excess > 0
        clear_level = baseline + max(
            expected.redness_clear_fraction * max(peak_excess, 0.0),
            expected.margin_noise_sigmas * noise,
        )
    level = float(smoothed[-1])

    fit = None
    if peak_excess > 0:
        if name == "lesions":
            y = np.log(np.maximum(v - baseline, 0.0) + 1.0)
            target = math.log(clear_level - baseline + 1.0)
        else:
            y = np.log(np.maximum((v - baseline) / peak_excess, 0.0) + _REDNESS_LOG_OFFSET)
            target = math.log((clear_level - baseline) / peak_excess + _REDNESS_LOG_OFFSET)
        fit = _fit_decay(d, y, target, peak_day)
    return _Measure(
        name=name, days=d, values=v, smoothed=smoothed, sigma=sigma, baseline=baseline,
        peak_day=peak_day, peak=peak, peak_excess=peak_excess, significant=significant,
        clear_level=clear_level, level=level, fit=fit,
    )


def _rising(m: _Measure, expected: ExpectedCourse) -> bool:
    """Latest level clearly above the earlier peak, after the peak window, and not coming down."""
    window_end = expected.peak_window_end
    if m.latest_day <= window_end or len(m.days) < 2:
        return False
    early = m.days <= window_end
    reference = float(m.smoothed[early].max()) if np.any(early) else float(m.smoothed[0])
    noise = 0.0 if m.sigma is None else m.sigma
    if m.name == "lesions":
        margin = max(expected.rise_count, expected.rise_fraction * reference,
                     expected.margin_noise_sigmas * noise)
    else:
        margin = max(expected.rise_fraction * abs(reference - m.baseline),
                     expected.significant_noise_sigmas * noise)
        if margin <= 0:
            return False
    late_max = float(m.smoothed[m.days > window_end].max())
    return m.level >= reference + margin and m.level >= late_max - margin


def _above_band(m: _Measure, expected: ExpectedCourse) -> bool:
    relative = m.relative(m.level)
    if relative is None:
        return False
    upper = float(expected.band([m.latest_day], measure=m.name).upper[0])
    return relative > upper + expected.band_tolerance


# --------------------------------------------------------------------------------------------
# The course
# --------------------------------------------------------------------------------------------


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
        return {"baseline": _number(self.baseline, 3), "peak": _number(self.peak, 3),
                "clear_level": _number(self.clear_level, 3)}


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
            "projected_resolution_day": _number(self.projected_resolution_day, 1),
            "projected_resolution_interval": (
                None if interval is None else [_number(interval[0], 1), _number(interval[1], 1)]
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


def _number(value: float | None, digits: int = 2) -> float | int | None:
    if value is None or not math.isfinite(float(value)):
        return None
    value = float(value)
    if value.is_integer():
        return int(value)
    return round(value, digits)


def _spots(count: float) -> str:
    n = int(round(count))
    return "1 spot" if n == 1 else f"{n} spots"


def _resolved_on(m: _Measure) -> int | None:
    """First observed day after the peak from which every value stayed at or below clear."""
    day = None
    for d, v in zip(m.days[::-1], m.values[::-1], strict=True):
        if v > m.clear_level or d <= m.peak_day:
            break
        day = int(d)
    return day


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
    records, origin, undated = _read_photos(photos)
    tracking = _track(records, gate_radius_factor=2.5, gate_min_px=8.0, max_missed_days=1)
    series = _series(records, tracking)
    latest_day = series[-1].day if series else None
    if today_day is not None:
        if isinstance(today_day, bool) or not _is_whole(today_day):
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
    lesions = _measure(
        "lesions", [s.day for s in lesion_days], [s.lesion_count for s in lesion_days], expected
    )
    redness = _measure(
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
    status, flags, notes = _judge(lesions, redness, tracking, usable_days, expected)
    enough = status != "insufficient_data"
    last = usable_days[-1] if usable_days else None

    redness_state = _redness_state(redness, expected)
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
        t for t in _late_new_tracks(tracking, expected)
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
    projected, interval = _projection(lesions, redness) if enough else (None, None)
    if status == "resolving_as_expected" and projected is not None and last is not None \
            and projected > last:
        notes.append(f"At the current pace, this should settle around day {round(projected)}.")

    resolved_on = None
    if status == "resolved":
        candidates = [
            _resolved_on(m) for m in (lesions, redness) if m is not None and m.significant
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


def _judge(
    lesions: _Measure | None,
    redness: _Measure | None,
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
                    f"There are still {_spots(level)} on day {lesions.latest_day}, more than "
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
        reason = (f"There are still {_spots(lesions.level)} on the latest photos ({grade} "
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
    lesions: _Measure | None,
    redness: _Measure | None,
    tracking: LesionTracking,
    expected: ExpectedCourse,
) -> list[str]:
    reasons = []
    if lesions is not None and _rising(lesions, expected):
        reasons.append(f"Spots are still increasing on day {lesions.latest_day}.")
    late_new = _late_new_tracks(tracking, expected)
    if len(late_new) >= 3 and len({t.first_day for t in late_new}) >= 2:
        until = expected.new_lesions_until_day
        reasons.append(
            f"New spots keep appearing after day {until} ({len(late_new)} new since day "
            f"{until + 1})."
        )
    if redness is not None and redness.significant and _rising(redness, expected):
        reasons.append(f"Redness is increasing again on day {redness.latest_day}.")
    return reasons


def _slower_reasons(
    lesions: _Measure | None, redness: _Measure | None, expected: ExpectedCourse
) -> tuple[list[str], list[str]]:
    """Reasons the course is slower than expected: (after the window: flag, within: note)."""
    late = expected.resolves_by_day
    flags: list[str] = []
    notes: list[str] = []
    if lesions is not None and lesions.active:
        day = lesions.latest_day
        if day > late:
            flags.append(f"Spots have not cleared after {late} days.")
        elif day > expected.peak_window_end and _above_band(lesions, expected):
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


def _late_new_tracks(tracking: LesionTracking, expected: ExpectedCourse) -> list[Track]:
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


def _projection(
    *measures: _Measure | None,
) -> tuple[float | None, tuple[float, float | None] | None]:
    fits = []
    for m in measures:
        if m is None or not m.significant:
            continue
        if m.fit is None or m.fit.day is None:
            if m.active:
                return None, None
            continue
        fits.append(m.fit)
    if not fits:
        return None, None
    day = max(f.day for f in fits if f.day is not None)
    low = max(f.low if f.low is not None else f.day for f in fits if f.day is not None)
    highs = [f.high for f in fits]
    high = None if any(h is None for h in highs) else max(h for h in highs if h is not None)
    return day, (low, high)


def _redness_state(m: _Measure | None, expected: ExpectedCourse) -> str:
    if m is None:
        return "not_measured"
    if not m.significant:
        return "not_raised"
    if not m.active:
        return "back_to_normal"
    if _rising(m, expected):
        return "rising"
    if m.latest_day > expected.resolves_by_day:
        return "not_coming_down"
    if m.latest_day > m.peak_day and m.level < m.peak:
        return "coming_down"
    return "still_raised"


_REDNESS_PHRASES = {
    "back_to_normal": "redness back to normal",
    "coming_down": "redness coming down",
    "still_raised": "redness still raised",
    "not_coming_down": "redness not coming down",
    "rising": "redness increasing",
}

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
                f"{_spots(course.severity.whole_face_count)} ({course.severity.grade})"
            )
        phrase = _REDNESS_PHRASES.get(course.redness_state)
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
