"""The trend of one measure over the course: smoothing, decay fit, noise, rising."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import theilslopes

from monitor.course.expected import ExpectedCourse

__all__ = [
    "Measure",
    "above_band",
    "measure",
    "projection",
    "resolved_day",
    "rising",
]


#: Photos further apart than this many days are not smoothed together.
_SMOOTH_GAP_DAYS = 2


#: Offset inside the logarithm of a relative redness level, so that 0 stays finite.
_REDNESS_LOG_OFFSET = 0.1


#: A projection further out than this is reported as "no bound" (the course is not improving).
_MAX_PROJECTION_DAYS = 365.0


@dataclass(frozen=True)
class Fit:
    """Exponential decay after the peak, fitted as a robust (Theil-Sen) line in log space."""

    slope: float
    day: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, eq=False)
class Measure:
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
    fit: Fit | None

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
) -> Fit | None:
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
    return Fit(slope=float(result.slope), day=day, low=low, high=high)


def measure(
    name: str, days: Sequence[int], values: Sequence[float], expected: ExpectedCourse
) -> Measure | None:
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
    return Measure(
        name=name, days=d, values=v, smoothed=smoothed, sigma=sigma, baseline=baseline,
        peak_day=peak_day, peak=peak, peak_excess=peak_excess, significant=significant,
        clear_level=clear_level, level=level, fit=fit,
    )


def rising(m: Measure, expected: ExpectedCourse) -> bool:
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


def above_band(m: Measure, expected: ExpectedCourse) -> bool:
    relative = m.relative(m.level)
    if relative is None:
        return False
    upper = float(expected.band([m.latest_day], measure=m.name).upper[0])
    return relative > upper + expected.band_tolerance


def resolved_day(m: Measure) -> int | None:
    """First observed day after the peak from which every value stayed at or below clear."""
    day = None
    for d, v in zip(m.days[::-1], m.values[::-1], strict=True):
        if v > m.clear_level or d <= m.peak_day:
            break
        day = int(d)
    return day


def projection(
    *measures: Measure | None,
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
