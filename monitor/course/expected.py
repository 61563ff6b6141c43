"""The expected course after microneedling, as data: the window the charts draw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_EXPECTED_COURSE",
    "ExpectedBand",
    "ExpectedCourse",
]


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
