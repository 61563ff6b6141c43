"""Seeded synthetic breakout courses, built as photo records of the analyse contract.

Each course is a population of painted lesions in the reference photo's pixels, each with an
onset day and a duration. Every photo has its own frame (a random similarity with a little
perspective), so lesion x/y are in that photo's pixels and ``to_reference`` maps them back with a
small alignment error: tracking has to go through ``to_reference`` to work. Detection noise
(missed lesions, false spots, position jitter) makes counts jitter by 1-2 between days.

The ground truth says, for every lesion listed in every photo, which painted lesion it is (or
None for a false spot), and which painted lesions were present on each day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

REFERENCE_SIZE = (1000, 1200)  # width, height of the reference photo in pixels
FACE_BOX = (250.0, 300.0, 750.0, 1000.0)  # x0, y0, x1, y1 in reference pixels
REGIONS = ("forehead", "left_cheek", "right_cheek", "nose", "chin")
MIN_SEPARATION_PX = 30.0

# Expected new lesions per day (index = day since treatment) for each breakout shape; multiplied
# by the course's scale. Durations are drawn per lesion.
ONSETS = {
    # Peaks on day 2, clears by day 7.
    "clear": ([1.5, 7.0, 5.0, 1.0, 0.3], (2, 4)),
    # New spots every day, more each day: still growing on day 9.
    "growing": ([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5], (5, 9)),
    # Peaks on time but spots last 1-2 weeks: still there on day 10.
    "slow": ([1.5, 7.0, 5.0, 1.0, 0.3], (8, 14)),
    # Clears, then a second crop of spots from day 6.
    "second_wave": ([1.5, 7.0, 5.0, 1.0, 0.3, 0.0, 4.0, 5.0, 5.0, 5.0, 5.0], (2, 4)),
    # No breakout at all.
    "none": ([], (2, 4)),
}


@dataclass
class Truth:
    """Ground truth of a synthetic course.

    ``lesion_ids[file]`` lists, for each entry of that photo's ``lesions``, the painted lesion it
    shows (None for a false spot); ``present[day]`` is the set of painted lesions on that day.
    """

    lesion_ids: dict[str, list[int | None]] = field(default_factory=dict)
    present: dict[int, set[int]] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)


def _region(x: float, y: float) -> str:
    if y < 500:
        return "forehead"
    if y > 850:
        return "chin"
    if 440 <= x <= 560:
        return "nose"
    return "right_cheek" if x < 440 else "left_cheek"  # patient's right is the image's left


def _random_frame(rng: np.random.Generator) -> np.ndarray:
    """Reference pixels -> this photo's pixels: similarity plus a little perspective."""
    scale = rng.uniform(0.6, 1.5)
    angle = math.radians(rng.uniform(-15, 15))
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    t = rng.uniform(-200, 200, size=2) + 300
    frame = np.array([[c, -s, t[0]], [s, c, t[1]], [0.0, 0.0, 1.0]])
    frame[2, :2] = rng.uniform(-2e-5, 2e-5, size=2)
    return frame


def _apply(matrix: np.ndarray, x: float, y: float) -> tuple[float, float]:
    v = matrix @ np.array([x, y, 1.0])
    return float(v[0] / v[2]), float(v[1] / v[2])


def _place(rng: np.random.Generator, taken: list[tuple[float, float]]) -> tuple[float, float]:
    x0, y0, x1, y1 = FACE_BOX
    for _ in range(10_000):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if all(math.hypot(x - a, y - b) >= MIN_SEPARATION_PX for a, b in taken):
            return x, y
    raise RuntimeError("face box too crowded for the requested lesions")


def build_course(
    seed: int,
    *,
    shape: str = "clear",
    days: tuple[int, ...] | range = range(0, 10),
    scale: float | None = None,
    photos_per_day: int | dict[int, int] = 1,
    with_day: bool = True,
    miss_rate: float = 0.05,
    false_spots: float = 0.6,
    jitter_px: float = 0.7,
    align_error_px: float = 1.5,
    pustule_fraction: float = 0.3,
    redness_shape: str = "settling",
    redness_scale: float | None = None,
    redness_noise: float = 0.3,
    chronic: int = 0,
    start: datetime | None = None,
    rejected: int = 0,
) -> tuple[list[dict], Truth]:
    """A seeded synthetic course as photo records, and its ground truth.

    Parameters
    ----------
    seed : int
        Seed of everything random.
    shape : str
        Breakout shape, a key of :data:`ONSETS`.
    days : sequence of int
        Days with photos (gaps allowed, negative days are before treatment).
    scale : float or None
        Multiplier of the onset rates (random 1-3 when None).
    photos_per_day : int or dict
        Photos taken on each day (a dict maps day to count, default 1).
    with_day : bool
        Write ``day``; when False ``day`` is null and only ``captured_at`` places the photo.
    miss_rate, false_spots, jitter_px, align_error_px : float
        Detector misses (per lesion and photo), false spots (Poisson mean per photo), position
        jitter in photo pixels and alignment error of ``to_reference`` in reference pixels.
    redness_shape : {"settling", "following", "persistent"}
        Treatment redness settling by day 3 plus inflammation following the spots; only
        following the spots; or staying up.
    chronic : int
        Pre-existing spots present on every day, before and after treatment.
    rejected : int
        Extra rejected photos scattered over the days.
    """
    rng = np.random.default_rng(seed)
    days = tuple(sorted(days))
    scale = rng.uniform(1.0, 3.0) if scale is None else scale
    redness_scale = rng.uniform(3.0, 8.0) if redness_scale is None else redness_scale
    rates, (short, long) = ONSETS[shape]

    # Painted lesions: (x, y, radius, kind, onset, end) with end exclusive.
    lesions: list[tuple[float, float, float, str, int, int]] = []
    taken: list[tuple[float, float]] = []
    for _ in range(chronic):
        x, y = _place(rng, taken)
        taken.append((x, y))
        lesions.append((x, y, rng.uniform(4, 9), "papule", -1000, 1000))
    for onset, rate in enumerate(rates):
        for _ in range(rng.poisson(rate * scale)):
            x, y = _place(rng, taken)
            taken.append((x, y))
            kind = "pustule" if rng.random() < pustule_fraction else "papule"
            duration = int(rng.integers(short, long + 1))
            lesions.append((x, y, rng.uniform(4, 9), kind, onset, onset + duration))

    truth = Truth(kinds={i: le[3] for i, le in enumerate(lesions)})
    present_counts = {
        d: sum(1 for le in lesions if le[4] <= d < le[5]) for d in days
    }
    peak_count = max(max(present_counts.values(), default=0), 1)
    start = start or datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))

    photos: list[dict] = []
    for day in days:
        present = [i for i, le in enumerate(lesions) if le[4] <= day < le[5]]
        truth.present[day] = set(present)
        breakout = (present_counts[day] - chronic) / max(peak_count - chronic, 1)
        if redness_shape == "settling":
            level = (0.7 * math.exp(-max(day, 0) / 1.2) if day >= 0 else 0.0) + 0.4 * breakout
        elif redness_shape == "following":
            level = breakout
        elif redness_shape == "persistent":
            level = 0.0 if day < 0 else min(1.0, 0.3 + 0.25 * day) if day < 3 else 0.9
        else:
            raise ValueError(f"unknown redness_shape {redness_shape!r}")
        if isinstance(photos_per_day, dict):
            n_photos = photos_per_day.get(day, 1)
        else:
            n_photos = photos_per_day
        for shot in range(n_photos):
            frame = _random_frame(rng)
            error = np.eye(3)
            error[:2, 2] = rng.normal(0, align_error_px, size=2)
            to_reference = error @ np.linalg.inv(frame)
            photo_scale = math.sqrt(abs(np.linalg.det(frame[:2, :2])))
            listed, ids = [], []
            for i in present:
                if rng.random() < miss_rate:
                    continue
                x, y, radius, kind, _, _ = lesions[i]
                px, py = _apply(frame, x, y)
                listed.append({
                    "x": px + rng.normal(0, jitter_px),
                    "y": py + rng.normal(0, jitter_px),
                    "radius": radius * photo_scale,
                    "kind": kind,
                    "confidence": float(rng.uniform(0.6, 0.99)),
                    "region": _region(x, y),
                })
                ids.append(i)
            for _ in range(rng.poisson(false_spots)):
                x0, y0, x1, y1 = FACE_BOX
                x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
                px, py = _apply(frame, x, y)
                listed.append({
                    "x": px, "y": py, "radius": rng.uniform(3, 6) * photo_scale,
                    "kind": "pustule" if rng.random() < 0.5 else "papule",
                    "confidence": float(rng.uniform(0.3, 0.6)),
                    "region": _region(x, y),
                })
                ids.append(None)
            order = rng.permutation(len(listed))
            listed = [listed[j] for j in order]
            ids = [ids[j] for j in order]
            index = redness_scale * level + rng.normal(0, redness_noise)
            when = start + timedelta(days=day, minutes=float(rng.uniform(-60, 60)) + 20 * shot)
            file = f"day{day}_{shot}.jpg"
            truth.lesion_ids[file] = ids
            photos.append({
                "file": file,
                "captured_at": when.isoformat(timespec="seconds"),
                "day": day if with_day else None,
                "status": "ok",
                "reason": None,
                "warnings": [],
                "to_reference": to_reference.tolist(),
                "alignment_score": float(rng.uniform(0.8, 0.99)),
                "redness": {
                    "index": float(index),
                    "mean_a_star": float(12.0 + index),
                    "by_region": {
                        name: {"index": float(index * f + rng.normal(0, redness_noise))}
                        for name, f in zip(REGIONS, (0.8, 1.2, 1.1, 1.0, 0.9), strict=True)
                    },
                },
                "lesion_count": len(listed),
                "lesions": listed,
                "regions": {},
            })
    for r in range(rejected):
        day = days[int(rng.integers(0, len(days)))]
        when = start + timedelta(days=day, hours=3)
        photos.append({
            "file": f"rejected_{r}.jpg",
            "captured_at": when.isoformat(timespec="seconds"),
            "day": day if with_day else None,
            "status": "rejected",
            "reason": "The photo is blurred; hold the phone still and retake it.",
            "warnings": [],
            "to_reference": None,
            "alignment_score": 0.0,
            "redness": None,
            "lesion_count": None,
            "lesions": [],
            "regions": {},
        })
    return photos, truth


def shift_dates(photos: list[dict], *, days: int, hours: float = 0.0) -> list[dict]:
    """The same photos with every ``captured_at`` moved by ``days`` days and ``hours`` hours."""
    shifted = []
    for photo in photos:
        copy = dict(photo)
        when = datetime.fromisoformat(photo["captured_at"]) + timedelta(days=days, hours=hours)
        copy["captured_at"] = when.isoformat(timespec="seconds")
        shifted.append(copy)
    return shifted
