"""The published JSON contracts, as typed records: ``monitor.analysis/1`` and ``monitor.lesions/1``.

``python -m monitor analyze`` writes :class:`Analysis`; ``python -m monitor lesions`` writes
:class:`CloseupAnalysis`. Other tools and evaluations read them, so a field is only ever added,
never renamed, retyped or given another meaning. Each record is frozen and validated
(pydantic): :meth:`Record.from_json` reads a document (any field a newer version added is kept
as it is, so a document read and written again is unchanged, see :meth:`Record.to_json`) and
refuses one whose fields have the wrong type, naming the field.

The JSON Schemas of both documents ship with the package (``monitor/schemas/``), generated from
these records, and so does the field-by-field reference ``docs/contract.md``:
``python -m monitor.contract`` writes both again after a record changes (the tests fail while
they are out of date).

Units: positions and sizes are in the photo's own pixels (EXIF orientation applied), redness in
CIELAB a* units, days since the treatment date (or since the first photo without one).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ANALYSIS_SCHEMA_FILE", "LESIONS_SCHEMA_FILE", "Analysis", "CloseupAnalysis",
    "CloseupPhoto", "ContractError", "Lesion", "Photo", "Record", "Redness", "Trend",
    "contract_markdown", "json_schema",
]

SCHEMAS = Path(__file__).with_name("schemas")
#: The JSON Schema of ``monitor.analysis/1``, shipped with the package.
ANALYSIS_SCHEMA_FILE = SCHEMAS / "analysis-1.schema.json"
#: The JSON Schema of ``monitor.lesions/1``.
LESIONS_SCHEMA_FILE = SCHEMAS / "lesions-1.schema.json"
DOC_FILE = Path(__file__).resolve().parents[1] / "docs" / "contract.md"


class ContractError(ValueError):
    """A document that does not follow its contract (a field missing or of the wrong type)."""


class Record(BaseModel):
    """A frozen, validated part of a published document; fields a newer version added pass
    through unchanged."""

    # ``populate_by_name``: a field whose JSON name is a Python keyword or clashes with
    # pydantic's own (``schema``) is declared under another name with the JSON one as alias.
    model_config = ConfigDict(frozen=True, extra="allow", strict=True, populate_by_name=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):
        """Read a document (the parsed JSON); :class:`ContractError` names what is wrong."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
                for e in error.errors()[:5])
            raise ContractError(f"not a valid {cls.__name__} document: {problems}") from None

    def to_json(self) -> dict:
        """The document as parsed JSON: exactly the fields it was made or read with."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


Number = float  # JSON numbers: an integer is a number too (strict mode takes int for float)
Matrix = list[list[Number]]


# --------------------------------------------------------------------------------------------
# One photo
# --------------------------------------------------------------------------------------------


class Lesion(Record):
    """A papule or pustule found on the photo."""

    x: Number = Field(description="Centre, photo pixels from the left edge.")
    y: Number = Field(description="Centre, photo pixels from the top edge.")
    radius: Number = Field(description="Radius, photo pixels.")
    kind: Literal["papule", "pustule"] = Field(
        description="A pustule has a pale (pus) head; a papule is reddest in its centre.")
    confidence: Number = Field(
        description="How sure the reader is, 0..1 (the density network's mass at the lesion, "
                    "capped at 1; 1.0 for one a clinician added).")
    region: str | None = Field(
        default=None, description="Facial region it lies in (see ``regions``), null outside "
                                  "them. Absent in ``monitor.lesions/1``.")


class RegionRedness(Record):
    """Redness figures of the skin of one facial region (or of the whole face)."""

    index: Number | None = Field(
        description="How much redder the skin is than in the reference photo, CIELAB a* "
                    "(0 as in the reference photo; lesions left out). Null when too little "
                    "skin was seen, and for a close-up (no reference photo).")
    mean_a_star: Number | None = Field(description="Mean CIELAB (D65) a* of the skin.")
    erythema_index: Number | None = Field(
        description="Mean 100 log10(R/G) over the skin, linear light (Dawson 1980).")
    red_fraction: Number | None = Field(
        description="Share of the skin redder than the reference photo's 90th percentile of "
                    "a* (about 0.10 on the reference photo itself).")
    pixels: int = Field(description="Skin pixels measured (working copy).")


class Redness(RegionRedness):
    """Redness of the face's skin, and of each facial region."""

    units: str = Field(description="What ``index`` is measured in, in words.")
    by_region: dict[str, RegionRedness] = Field(
        default_factory=dict, description="The same figures for each region of ``regions``.")


class Quality(Record):
    """The quality gate's measurements (a photo is refused when one is out of bounds)."""

    sharpness: Number = Field(description="Variance of the Laplacian on the skin, "
                                          "brightness-normalised.")
    exposure: Number = Field(description="Median L* of the skin.")
    face_width_px: Number = Field(description="Width of the face, photo pixels.")
    inter_ocular_px: Number = Field(description="Pupil distance, photo pixels.")
    clipped_fraction: Number = Field(description="Share of skin pixels washed out (>= 250).")
    redness_measurable: bool = Field(description="False when too much skin is washed out to "
                                                 "measure redness (spots still are).")
    faces_found: int = Field(description="Faces the detector saw (the largest is used).")
    pose_deg: dict[str, Number] = Field(description="Head roll, yaw and pitch, degrees.")
    pose_change_deg: dict[str, Number] | None = Field(
        default=None, description="Roll, yaw and pitch against the reference photo, degrees; "
                                  "null for the reference photo itself.")


class Refinement(Record):
    """The non-rigid correction after ``to_reference`` (an expression, a slight turn)."""

    grid_to_reference: Matrix = Field(description="3x3: grid cells to reference pixels.")
    dx: Matrix = Field(description="Horizontal displacement per grid node, pixels.")
    dy: Matrix = Field(description="Vertical displacement per grid node, pixels.")


class RegionBox(Record):
    """Where a facial region is on the photo."""

    area_px: int = Field(description="Area of the region's skin, photo pixels squared.")
    box: list[Number] | None = Field(description="Bounding box x0, y0, x1, y1, photo pixels; "
                                                 "null when the region is not seen.")


class FaceBox(Record):
    """The face found on the photo."""

    box: list[Number] = Field(description="Bounding box of the face, x0, y0, x1, y1.")
    inter_ocular_px: Number = Field(description="Pupil distance, photo pixels.")
    pupils: Matrix = Field(description="The subject's right and left pupils, (x, y).")


class LesionReading(Record):
    """How the lesions of the photo were read."""

    measured: bool = Field(description="False when too little of the course's skin is seen to "
                                       "count lesions: then ``lesion_count`` is null, never 0.")
    reason: str | None = Field(description="Why not, in plain words; null when measured.")
    skin_seen: Number = Field(description="Share of the reference photo's lesion skin seen.")
    px_per_mm: Number = Field(description="Scale at which the lesions were read (pixels per "
                                          "millimetre of skin of the reference working copy).")
    held: int = Field(default=0, description="Lesions counted because the reference photo "
                                             "counted one there: read faintly (hysteresis) or "
                                             "not at all where the skin's redness is "
                                             "unchanged.")
    held_back: int = Field(default=0, description="Spots this photo's reader would count that "
                                                  "are not counted (kept as faint lesions): "
                                                  "the reference photo did not count them and "
                                                  "their redness is unchanged since.")
    area: Matrix | None = Field(default=None, description="Corners of the area read, photo "
                                                          "pixels, clockwise from top left.")
    separation_px: Number | None = Field(
        default=None, description="Lesions closer than this (photo pixels) may be read as one.")


class ColourSource(Record):
    """One surface whose colour set the colour correction."""

    name: str = Field(description="``hair``, ``background``, ``clothes``, ``card``, ...")
    gains: list[Number] = Field(description="Linear RGB gains it asked for.")
    pixels: int = Field(description="Pixels of it compared.")
    used: bool = Field(description="Whether it agreed with the others and was used.")


class Colour(Record):
    """The colour correction onto the reference photo's light."""

    reference: str = Field(description="What set the gains: ``surroundings``, ``card``, "
                                       "``none``, ...")
    gains: list[Number] = Field(description="Linear RGB gains applied.")
    pixels: int = Field(description="Pixels compared.")
    agreed: bool = Field(description="Whether the sources agreed with each other.")
    trusted: bool = Field(description="False when the light could not be told from a change of "
                                      "the surroundings: the photo's redness is then null.")
    sources: list[ColourSource] = Field(default_factory=list, description="Each source.")


class Photo(Record):
    """One photo of the course, accepted (``status`` "ok") or not."""

    file: str = Field(description="File name.")
    captured_at: str | None = Field(description="Capture time, ISO 8601, local time.")
    captured_at_source: str | None = Field(
        description="Where it came from: ``exif``, ``file`` (modification time), ``given`` "
                    "(by the caller), ``upload`` (the time it was uploaded).")
    day: int | None = Field(description="Days since the treatment (or the first photo); null "
                                        "when undated.")
    status: Literal["ok", "rejected"] = Field(description="Whether the photo was used.")
    reason: str | None = Field(description="Why not, in words for the patient; null when used.")
    warnings: list[str] = Field(default_factory=list,
                                description="Used, but worth telling (in plain words).")
    quality: Quality | None = Field(default=None, description="Null when no face was found.")
    to_reference: Matrix | None = Field(
        default=None, description="3x3 homography from this photo's pixels to the reference "
                                  "photo's; null when not aligned.")
    to_reference_refinement: Refinement | None = Field(
        default=None, description="Present with ``to_reference``; null when the homography "
                                  "alone fits.")
    alignment_score: Number | None = Field(default=None, description="Alignment quality 0..1.")
    alignment_method: str | None = Field(
        default=None, description="``reference`` (the reference photo itself), ``ecc`` "
                                  "(intensity-based), ``landmarks`` (face points alone).")
    face_match: Number | None = Field(
        default=None, description="How well the face matches the reference photo's, 0..1 "
                                  "(below 0.6: another person).")
    image_size: list[int] | None = Field(default=None, description="Width and height, pixels.")
    colour_card: bool | None = Field(
        default=None, description="Whether a colour card was found; null when not looked for.")
    redness: Redness | None = Field(default=None, description="Null unless measured.")
    lesion_count: int | None = Field(default=None,
                                     description="Papules and pustules; null unless measured.")
    lesions: list[Lesion] | None = Field(default=None, description="Each one; null unless "
                                                                   "measured.")
    regions: dict[str, RegionBox] | None = Field(default=None,
                                                 description="The facial regions.")
    face: FaceBox | None = Field(default=None, description="The face (accepted photos).")
    lesion_reading: LesionReading | None = Field(default=None,
                                                 description="How the lesions were read.")
    faint_lesions: list[Lesion] | None = Field(
        default=None, description="Spots read too faintly to count (never in "
                                  "``lesion_count``): a course follows a lesion through them.")
    colour: Colour | None = Field(default=None, description="The colour correction.")


# --------------------------------------------------------------------------------------------
# The course
# --------------------------------------------------------------------------------------------


class RegionDay(Record):
    """One region on one day."""

    redness_index: Number | None = Field(default=None, description="Median over the day.")
    lesion_count: Number | None = Field(default=None, description="Median over the day.")


class CourseDay(Record):
    """One observed day of the course (photos of the same day combined by median)."""

    day: int = Field(description="Days since the treatment (or the first photo).")
    photos: int = Field(description="Photos used that day.")
    redness_index: Number | None = Field(description="Median redness index.")
    lesion_count: Number | None = Field(description="Median lesion count.")
    new: int | None = Field(description="Tracked lesions first seen that day.")
    persisting: int | None = Field(description="Tracked lesions seen before and that day.")
    resolved: int | None = Field(description="Tracked lesions gone that day.")
    new_pustules: int | None = Field(default=None, description="New tracks that are pustules.")
    oldest_persisting_age_days: int | None = Field(
        default=None, description="Age of the oldest lesion still there.")
    lesion_level: Number | None = Field(
        default=None, description="Count relative to the course's peak above its baseline "
                                  "(0 baseline, 1 peak; see ``scales``).")
    redness_level: Number | None = Field(default=None, description="Redness, likewise.")
    severity_grade: str | None = Field(default=None, description="Hayashi grade of the day.")
    by_region: dict[str, RegionDay] = Field(default_factory=dict, description="Each region.")


class Track(Record):
    """One lesion followed from day to day, in the reference photo's pixels."""

    id: int = Field(description="Number of the track, 1 up.")
    first_day: int = Field(description="First day seen (counted or faint).")
    last_day: int = Field(description="Last day seen.")
    resolved_day: int | None = Field(default=None, description="First observed day it was "
                                                               "gone; null while present.")
    x_ref: Number = Field(description="Centre, reference photo pixels.")
    y_ref: Number = Field(description="Centre, reference photo pixels.")
    radius_ref: Number | None = Field(default=None, description="Radius, reference pixels.")
    kind: Literal["papule", "pustule"] = Field(description="As last counted.")
    days: list[int] = Field(description="Days it was counted.")
    faint_days: list[int] = Field(default_factory=list,
                                  description="Days it was there but read faintly.")


class MeasureScale(Record):
    """Where a measure of the course stands in its own units."""

    baseline: Number = Field(description="Before the course rose (0 of the levels).")
    peak: Number = Field(description="Highest from the treatment on (1 of the levels).")
    clear_level: Number = Field(description="At or below this the measure is clear.")


class Trend(Record):
    """The course: its status for the patient and the clinician, and its daily series."""

    status: str = Field(description="One of monitor.course.STATUSES, e.g. "
                                    "``resolving_as_expected``, ``resolved``.")
    see_dermatologist: bool = Field(description="The flag: see your dermatologist.")
    reasons: list[str] = Field(description="Plain sentences; the flag's reasons first.")
    summary: str = Field(description="One paragraph for the patient.")
    projected_resolution_day: Number | None = Field(
        default=None, description="Day the trend reaches the clear level; null when unknown.")
    projected_resolution_interval: list[Number | None] | None = Field(
        default=None, description="Its 95 % interval; the upper end null when the course may "
                                  "not be improving.")
    resolved_on_day: int | None = Field(default=None, description="When resolved: since when.")
    severity: dict[str, Any] | None = Field(default=None, description="Hayashi grade now.")
    peak_severity: dict[str, Any] | None = Field(default=None,
                                                 description="Hayashi grade at the peak.")
    redness_state: str | None = Field(default=None, description="``back_to_normal``, "
                                                                "``coming_down``, ...")
    day_origin: str | None = Field(default=None, description="``treatment`` or "
                                                             "``first_photo``.")
    latest_day: int | None = Field(default=None, description="Latest observed day.")
    today_day: int | None = Field(default=None, description="Today, in course days.")
    oldest_persisting_lesion: dict[str, Any] | None = Field(
        default=None, description="The oldest lesion still there (id, first_day, age_days, "
                                  "x_ref, y_ref).")
    symptoms: list[dict[str, Any]] = Field(default_factory=list,
                                           description="What the patient reported, by day.")
    expected_course: dict[str, Any] = Field(
        default_factory=dict, description="The expected course and its band, relative levels.")
    series: list[CourseDay] = Field(default_factory=list, description="Each observed day.")
    tracks: list[Track] = Field(default_factory=list, description="Each lesion followed.")
    scales: dict[str, MeasureScale] = Field(
        default_factory=dict, description="Baseline, peak and clear level of ``lesions`` and "
                                          "``redness``, in their own units.")


class Analysis(Record):
    """``monitor.analysis/1``: what ``python -m monitor analyze`` writes."""

    schema_: Literal["monitor.analysis/1"] = Field(alias="schema",
                                                   description="``monitor.analysis/1``.")
    treatment_date: str | None = Field(description="Day 0, ISO date; null when not given.")
    reference: str | None = Field(description="File every photo is aligned to; null when no "
                                              "photo could be.")
    photos: list[Photo] = Field(description="Every photo given, in capture order.")
    trend: Trend | None = Field(default=None, description="The course.")


class CloseupPhoto(Record):
    """One close-up photo of ``monitor.lesions/1``."""

    file: str = Field(description="File name.")
    status: Literal["ok", "rejected"] = Field(description="Whether the photo was read.")
    reason: str | None = Field(description="Why not, in plain words; null when read.")
    lesion_count: int | None = Field(description="Papules and pustules; null when not read.")
    lesions: list[Lesion] | None = Field(description="Each one; null when not read.")
    redness: Redness | None = Field(description="The photo's own redness (``index`` null).")


class CloseupAnalysis(Record):
    """``monitor.lesions/1``: what ``python -m monitor lesions`` writes."""

    schema_: Literal["monitor.lesions/1"] = Field(alias="schema",
                                                  description="``monitor.lesions/1``.")
    photos: list[CloseupPhoto] = Field(description="Every photo given.")


# --------------------------------------------------------------------------------------------
# Schemas and the reference document
# --------------------------------------------------------------------------------------------


def json_schema(record: type[Record]) -> dict:
    """The JSON Schema (2020-12) of a document, as shipped in ``monitor/schemas``."""
    schema = record.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _type_name(annotation: Any) -> str:
    """A field's type in words: ``number or null``, ``list of Lesion``, ``one of "ok", ..."``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in args)
    if origin in (Union, UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"object of {_type_name(args[1])} by name"
    if annotation is type(None):
        return "null"
    return {float: "number", int: "integer", str: "string", bool: "true/false",
            Any: "any"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def contract_markdown() -> str:
    """docs/contract.md: every record of both documents, field by field."""
    lines = ["# The published JSON contracts", "",
             "Generated from `monitor/contract.py` by `python -m monitor.contract`; do not edit "
             "by hand. Fields are only ever added, never renamed, retyped or repurposed. A "
             "reader must accept fields it does not know. The JSON Schemas are "
             "`monitor/schemas/analysis-1.schema.json` and `lesions-1.schema.json`.", ""]
    lines += [line.strip() for line in (__doc__ or "").split("\n\n")[-1].splitlines()] + [""]
    records: list[type[Record]] = [
        Analysis, Photo, Quality, Redness, RegionRedness, Lesion, LesionReading, Refinement,
        RegionBox, FaceBox, Colour, ColourSource, Trend, CourseDay, RegionDay, Track,
        MeasureScale, CloseupAnalysis, CloseupPhoto]
    for record in records:
        lines += [f"## {record.__name__}", "", (record.__doc__ or "").strip(), "",
                  "| field | type | meaning |", "| --- | --- | --- |"]
        for name, field in record.model_fields.items():
            key = field.alias or name
            required = "" if field.is_required() else " (may be absent)"
            lines.append(f"| `{key}` | {_type_name(field.annotation)}{required} | "
                         f"{(field.description or '').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def write_published(folder: Path = SCHEMAS, doc: Path = DOC_FILE) -> None:
    """Write the JSON Schemas and docs/contract.md again from the records."""
    folder.mkdir(parents=True, exist_ok=True)
    for record, path in ((Analysis, folder / ANALYSIS_SCHEMA_FILE.name),
                         (CloseupAnalysis, folder / LESIONS_SCHEMA_FILE.name)):
        path.write_text(json.dumps(json_schema(record), indent=1, sort_keys=True) + "\n",
                        encoding="utf-8")
    doc.write_text(contract_markdown(), encoding="utf-8")


if __name__ == "__main__":
    write_published()
    print(f"wrote {ANALYSIS_SCHEMA_FILE}, {LESIONS_SCHEMA_FILE} and {DOC_FILE}", file=sys.stderr)
