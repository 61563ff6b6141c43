"""The daily series of a course: one entry per day, photos of a day combined."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.course.records import PhotoRecord, json_number
from monitor.course.tracking import LesionTracking

__all__ = [
    "CourseDay",
    "RegionDay",
    "daily_series",
]


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
            "redness_index": json_number(self.redness_index, 4),
            "lesion_count": json_number(self.lesion_count),
            "new": self.new,
            "persisting": self.persisting,
            "resolved": self.resolved,
            "new_pustules": self.new_pustules,
            "oldest_persisting_age_days": self.oldest_persisting_age_days,
            "lesion_level": json_number(self.lesion_level, 4),
            "redness_level": json_number(self.redness_level, 4),
            "severity_grade": self.severity_grade,
            "by_region": {
                r.region: {
                    "redness_index": json_number(r.redness_index, 4),
                    "lesion_count": json_number(r.lesion_count),
                }
                for r in self.by_region
            },
        }


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if len(values) else None


def daily_series(photos: Sequence[PhotoRecord], tracking: LesionTracking) -> list[CourseDay]:
    by_day: dict[int, list[PhotoRecord]] = {}
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
