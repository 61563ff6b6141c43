"""Reading the per-photo records of the analysis JSON (the contract's ``photos``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import numpy as np

from monitor.imaging import Refinement

__all__ = [
    "LesionRecord",
    "PhotoRecord",
    "is_whole",
    "json_number",
    "read_photos",
]


@dataclass(frozen=True)
class LesionRecord:
    """One detected lesion mapped into the reference photo's pixels."""

    x: float
    y: float
    radius: float
    kind: str
    confidence: float
    region: str | None
    sources: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PhotoRecord:
    """One usable photo record, with its day and its lesions in reference coordinates."""

    file: str
    day: int
    redness: float | None
    redness_by_region: tuple[tuple[str, float], ...]
    lesion_count: float | None
    lesions: tuple[LesionRecord, ...] | None  # None: no lesion positions in the record
    lesion_regions_known: bool
    faint: tuple[LesionRecord, ...]  # faint spots (``faint_lesions``): keep a track, never counted
    area: np.ndarray | None  # (4, 2) where lesions were read, reference pixels; None: unknown
    separation: float  # lesions closer than this (reference pixels) read as one; 0: unknown
    alignment_score: float
    key: tuple


def is_whole(value: object) -> bool:
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
                 refinement: Refinement | None = None) -> tuple[LesionRecord, ...]:
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
            LesionRecord(
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


def read_photos(photos: Sequence[Mapping]) -> tuple[list[PhotoRecord], str, int]:
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
            if isinstance(day, bool) or not is_whole(day):
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
        faint: tuple[LesionRecord, ...] = ()
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
            PhotoRecord(
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


def json_number(value: float | None, digits: int = 2) -> float | int | None:
    if value is None or not math.isfinite(float(value)):
        return None
    value = float(value)
    if value.is_integer():
        return int(value)
    return round(value, digits)
