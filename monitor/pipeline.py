"""Composition of the steps into one analysis of a course of photos (no new maths here).

For each photo: decode (:mod:`monitor.imaging.photo`), find the face
(:mod:`monitor.imaging.face`), cut a *working copy* of the face at a bounded scale, run the
quality gate (:mod:`monitor.imaging.quality`). Then pick the reference photo, check each
photo's pose against it and align it (:mod:`monitor.imaging.align`). The result is the
``monitor.analysis/1`` JSON contract.

Working copy: the face and a margin, resampled so that the pupils are at most
:data:`WORKING_IOD_PX` apart. A 12 MP selfie is cut down to well under 1 MP, so every later step
costs the same whatever the camera; results are mapped back to the photo's own pixels.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import cv2
import numpy as np

from monitor.course import Symptoms, assess_course
from monitor.errors import (
    AlignmentFailed,
    MonitorError,
    NoFaceFound,
    NoSkinFound,
    NotTheSameFace,
    PoorPhotoQuality,
    SeveralFaces,
)
from monitor.imaging import (
    IDENTITY,
    MIN_FACE_MATCH,
    REGIONS,
    TURNED_A_LITTLE,
    TURNED_AWAY,
    WASHED_OUT_REFERENCE,
    Alignment,
    AlignmentTarget,
    ColourCorrection,
    ColourReference,
    Face,
    Photo,
    Quality,
    Redness,
    RednessBaseline,
    Refinement,
    align,
    apply_homography,
    assess,
    carry_face,
    check_pose,
    crop_resize_transform,
    estimate_correction,
    find_colour_card,
    find_face,
    load_photo,
    measure_redness,
    prepare_colour_reference,
    prepare_reference,
    shrink,
)
from monitor.lesions import (
    FACE_MIN_A_EXCESS,
    FACE_READ_PX_PER_MM,
    FACE_SEPARATION_MM,
    Lesion,
    LesionRead,
    detect_lesions,
    disc_mask,
    read_lesions,
    redness_excess,
    skin_mask_by_colour,
)

__all__ = [
    "SCHEMA",
    "WORKING_IOD_PX",
    "CLOSEUP_SCHEMA",
    "FACE_CARRIED",
    "FaceCrop",
    "LesionReading",
    "Measurement",
    "PhotoResult",
    "Reference",
    "analyse_closeup",
    "analyse_photo",
    "analyse_series",
    "make_reference",
    "fit_as_reference",
    "refuse_as_reference",
    "reference_order",
    "expand_paths",
    "face_crop",
]

SCHEMA = "monitor.analysis/1"
#: Largest inter-ocular distance of the working copy (a 1 mm spot is then ~3 px across).
WORKING_IOD_PX = 200.0
_CROP_MARGIN = 0.2

ProgressCallback = Callable[[int, int, str, str], None]


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """The working copy of a photo: its face region at a bounded scale.

    Attributes
    ----------
    pixels : ndarray of shape (h, w, 3), uint8
    to_crop : ndarray of shape (3, 3)
        Maps the photo's pixels to the working copy's pixels.
    face : Face
        The face, in the working copy's pixels.
    """

    pixels: np.ndarray
    to_crop: np.ndarray
    face: Face

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) working-copy points back to the photo's pixels."""
        return apply_homography(np.linalg.inv(self.to_crop), points)

    @property
    def scale(self) -> float:
        """Working-copy pixels per photo pixel."""
        return float(self.to_crop[0, 0])


def face_crop(rgb: np.ndarray, face: Face) -> FaceCrop:
    """Cut the face (with a margin) out of a photo at a scale of at most WORKING_IOD_PX."""
    scale = min(1.0, WORKING_IOD_PX / face.inter_ocular_px)
    x0, y0, x1, y1 = face.box
    mx, my = (x1 - x0) * _CROP_MARGIN, (y1 - y0) * _CROP_MARGIN
    height, width = rgb.shape[:2]
    x0, y0 = max(int(x0 - mx), 0), max(int(y0 - my), 0)
    x1, y1 = min(int(np.ceil(x1 + mx)), width), min(int(np.ceil(y1 + my)), height)
    region = rgb[y0:y1, x0:x1]
    if scale < 1.0:
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        pixels = shrink(region, size)
        sx, sy = size[0] / region.shape[1], size[1] / region.shape[0]
    else:
        pixels, sx, sy = np.ascontiguousarray(region), 1.0, 1.0
    to_crop = crop_resize_transform(x0, y0, sx, sy)
    landmarks = face.landmarks * (sx, sy) + to_crop[:2, 2]
    cropped = Face(landmarks=landmarks, depth=face.depth * sx, image_shape=pixels.shape[:2],
                   faces_found=face.faces_found)
    return FaceCrop(pixels=pixels, to_crop=to_crop, face=cropped)


@dataclass(frozen=True)
class LesionReading:
    """How the lesions of a photo were read (the ``lesion_reading`` entry of the contract).

    Attributes
    ----------
    measured : bool
        False when the photo shows too little of the skin the course is read on to count its
        lesions; then ``lesion_count`` and ``lesions`` are null, never 0.
    reason : str or None
        Why not, in plain words, when not measured.
    skin_seen : float
        Share (0..1) of the reference photo's lesion skin that this photo shows.
    px_per_mm : float
        The physical scale the lesions were read at (reference working copy, from the 63 mm
        pupil distance).
    held : int
        Lesions counted because the reference photo counted a lesion there, although this
        photo reads them faintly (:func:`_hold_reference_lesions`) or not at all where the
        skin's redness is unchanged (:func:`_keep_unchanged_places`); 0 on the reference.
    held_back : int
        Spots this photo's reader counts that are not counted (they are faint lesions): the
        reference did not count them and their redness is unchanged since
        (:func:`_keep_unchanged_places`); 0 on the reference.

    In the contract it also carries ``area``: the corners (photo pixels, clockwise from the
    top left) of the part of the photo its lesions were read on. Skin outside it was not in
    view: a lesion there is not seen that day, not gone. And ``separation_px``: two lesions
    closer than this (photo pixels, about 6 mm; more on a face read at low resolution, see
    :func:`_separation_px`) are read as one.
    """

    measured: bool
    reason: str | None
    skin_seen: float
    px_per_mm: float
    held: int = 0
    held_back: int = 0

    def to_json(self) -> dict:
        return {"measured": self.measured, "reason": self.reason,
                "skin_seen": round(self.skin_seen, 3), "px_per_mm": round(self.px_per_mm, 3),
                "held": self.held, "held_back": self.held_back}


#: A photo that shows less than this share of the reference's lesion skin is not counted: a
#: count of part of the face would read as spots gone.
_MIN_SKIN_SEEN = 0.8


@dataclass(frozen=True, eq=False)
class Measurement:
    """Colour correction, redness and lesions of one photo, in its working copy's pixels."""

    colour: ColourCorrection
    redness: Redness | None  # None: too washed out to measure (Quality.redness_measurable)
    lesions: tuple[Lesion, ...] | None  # None: the lesions could not be read (see reading)
    regions: dict[str, np.ndarray]  # region masks in the working copy
    reading: LesionReading
    faint: tuple[Lesion, ...] | None = None  # faint spots (monitor.lesions.LesionRead)

    def lesions_json(self, crop: FaceCrop, *, faint: bool = False) -> list[dict] | None:
        """Lesions (or the faint spots) in the photo's own pixels, with their facial region."""
        lesions = self.faint if faint else self.lesions
        if lesions is None:
            return None
        out = []
        for lesion in lesions:
            (x, y), = crop.to_photo(np.array([[lesion.x, lesion.y]]))
            entry = lesion.to_json()
            entry.update(x=round(float(x), 1), y=round(float(y), 1),
                         radius=round(lesion.radius_px / crop.scale, 1))
            cx, cy = int(round(lesion.x)), int(round(lesion.y))
            entry["region"] = next((name for name, mask in self.regions.items()
                                    if 0 <= cy < mask.shape[0] and 0 <= cx < mask.shape[1]
                                    and mask[cy, cx]), None)
            out.append(entry)
        return out


@dataclass(frozen=True, eq=False)
class PhotoResult:
    """What the analysis knows about one photo (the contract's entry, before JSON)."""

    file: str
    source: str
    captured_at: datetime | None = None
    captured_at_source: str | None = None
    status: str = "rejected"
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    quality: Quality | None = None
    crop: FaceCrop | None = None
    alignment: Alignment | None = None
    to_reference: np.ndarray | None = None
    #: The non-rigid correction after ``to_reference`` (:class:`monitor.imaging.align.Refinement`,
    #: with the reference photo's pixels), None where the homography alone is as good.
    refinement: Refinement | None = None
    measurement: Measurement | None = None
    #: How well the face matches the reference photo's (:attr:`Alignment.face_match`); None
    #: when it was not compared (the reference itself, a photo turned away before alignment).
    face_match: float | None = None
    #: (width, height) of the photo as decoded (EXIF orientation applied), pixels.
    image_size: tuple[int, int] | None = None
    #: The colour card's 24 patches, linear RGB (:func:`monitor.imaging.colour.find_colour_card`),
    #: when one was looked for and found; ``card_searched`` says whether it was looked for.
    card: np.ndarray | None = None
    card_searched: bool = False
    #: Rejected because no face was found in it at all (not several): with a reference, the
    #: reference's face may be carried onto it (:func:`_carried_face`).
    face_missing: bool = False

    @property
    def other_face(self) -> bool:
        """Turned away because its face did not match the reference photo's."""
        return (self.status == "rejected" and self.face_match is not None
                and self.face_match < MIN_FACE_MATCH)

    def to_json(self, *, treatment_date: date | None) -> dict:
        day = None
        if treatment_date is not None and self.captured_at is not None:
            day = (self.captured_at.date() - treatment_date).days
        entry: dict = {
            "file": self.file,
            "captured_at": None if self.captured_at is None else self.captured_at.isoformat(),
            "captured_at_source": self.captured_at_source,
            "day": day,
            "status": self.status,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "quality": None if self.quality is None else self.quality.to_json(),
            "to_reference": None,
            "alignment_score": None,
            "alignment_method": None,
            "face_match": None if self.face_match is None else round(self.face_match, 4),
            "image_size": None if self.image_size is None else list(self.image_size),
            "colour_card": (self.card is not None) if self.card_searched else None,
            # Null unless measured: never a made-up value.
            "redness": None,
            "lesion_count": None,
            "lesions": None,
            "regions": None,
        }
        if self.to_reference is not None:
            entry["to_reference"] = [[float(f"{v:.8g}") for v in row]
                                     for row in self.to_reference]
            entry["to_reference_refinement"] = (None if self.refinement is None
                                                else self.refinement.to_json())
        if self.alignment is not None:
            entry["alignment_score"] = round(self.alignment.score, 4)
            entry["alignment_method"] = self.alignment.method
        if self.crop is not None and self.status == "ok":
            measured = self.measurement
            entry["regions"] = _regions_json(self.crop, None if measured is None
                                             else measured.regions)
            entry["face"] = _face_json(self.crop)
            if measured is not None:
                entry["redness"] = (None if measured.redness is None
                                    else measured.redness.to_json())
                entry["lesions"] = measured.lesions_json(self.crop)
                entry["lesion_count"] = (None if entry["lesions"] is None
                                         else len(entry["lesions"]))
                entry["lesion_reading"] = measured.reading.to_json()
                entry["lesion_reading"]["area"] = _area_json(self.crop)
                entry["lesion_reading"]["separation_px"] = round(
                    _separation_px(self.crop, measured.reading.px_per_mm), 1)
                entry["faint_lesions"] = measured.lesions_json(self.crop, faint=True)
                entry["colour"] = measured.colour.to_json()
        return entry


def _separation_px(crop: FaceCrop, read_px_per_mm: float) -> float:
    """Two lesions closer than this (the photo's pixels) are read as one.

    :data:`monitor.lesions.FACE_SEPARATION_MM` where the reading has at least the networks'
    own scale; a face read at fewer pixels per millimetre than that is upsampled for them and
    its lesions blur together over proportionally more (a severe ACNE04 face read at 1.2 px/mm
    had lesions 7-10 mm apart read as one from one re-shoot to the next).
    """
    own_px_per_mm = crop.face.px_per_mm / crop.scale
    blur = max(1.0, FACE_READ_PX_PER_MM / read_px_per_mm)
    return FACE_SEPARATION_MM * blur * own_px_per_mm


def _area_json(crop: FaceCrop) -> list[list[float]]:
    """Corners of the working copy in the photo's pixels (clockwise from the top left)."""
    h, w = crop.pixels.shape[:2]
    corners = crop.to_photo(np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                                      [-0.5, h - 0.5]]))
    return [[round(float(x), 1), round(float(y), 1)] for x, y in corners]


def _regions_json(crop: FaceCrop, masks: dict[str, np.ndarray] | None) -> dict:
    """Area (photo pixels²) and bounding box (photo pixels) of each facial region."""
    masks = crop.face.region_masks() if masks is None else masks
    area_scale = crop.scale**2
    out = {}
    for name in REGIONS:
        ys, xs = np.nonzero(masks[name])
        if len(xs) == 0:
            out[name] = {"area_px": 0, "box": None}
            continue
        box = crop.to_photo(np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], float))
        out[name] = {"area_px": int(round(len(xs) / area_scale)),
                     "box": [round(float(v), 1) for v in box.ravel()]}
    return out


def _face_json(crop: FaceCrop) -> dict:
    face = crop.face
    box = crop.to_photo(np.array(face.box, float).reshape(2, 2))
    return {
        "box": [round(float(v), 1) for v in box.ravel()],
        "inter_ocular_px": round(face.inter_ocular_px / crop.scale, 2),
        "pupils": [[round(float(v), 2) for v in p]
                   for p in crop.to_photo(np.array([face.right_pupil, face.left_pupil]))],
    }


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named, and every file directly inside folders named (hidden files skipped)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file()
                              and not p.name.startswith(".")))
        else:
            out.append(path)
    return out


_INTERNAL = ("Something went wrong on our side while analysing this photo. Please try another "
             "photo; if it keeps happening, tell us.")


def _failure_reason(error: Exception, *, strict: bool) -> str:
    """The one rule for an exception in any step of a photo's analysis: a
    :class:`MonitorError` is the photo's fault and its message tells the patient what to do;
    anything else is a bug, re-raised under ``strict`` (tests), otherwise written to stderr
    and reported in plain words. Call it inside the ``except`` block."""
    if isinstance(error, MonitorError):
        return str(error)
    if strict:
        raise error
    traceback.print_exc(file=sys.stderr)
    return _INTERNAL


#: Said of a photo in which no face was found but whose skin matches the first photo's, so
#: that the first photo's face was laid on it (:func:`monitor.imaging.align.carry_face`).
FACE_CARRIED = (
    "We could not find the outline of your face in this photo, so it was lined up with your "
    "first photo by the skin itself. If you can, take the next photo with more of your face "
    "in the frame, as in your first photo.")


def _intake(source: Path | bytes, name: str, captured_at: datetime | None, *,
            strict: bool, colour_card: bool = False,
            reference: Reference | None = None) -> PhotoResult:
    """Decode, find the face, cut the working copy, run the quality gate (and, with
    ``colour_card``, look for a colour card in the photo).

    Where no face is found and a ``reference`` is given, the reference's face is laid on the
    photo when their skin features match (:func:`_carried_face`), with :data:`FACE_CARRIED`
    among the warnings.
    """
    result = PhotoResult(file=name, source=name if isinstance(source, bytes) else str(source))
    try:
        photo: Photo = load_photo(source, name=name, captured_at=captured_at)
        result = replace(result, captured_at=photo.captured_at,
                         captured_at_source=photo.captured_at_source,
                         image_size=(int(photo.pixels.shape[1]), int(photo.pixels.shape[0])))
        carried = False
        try:
            face = find_face(photo.pixels)
        except SeveralFaces:
            raise
        except NoFaceFound:
            carried_face = None if reference is None else _carried_face(photo, reference)
            if carried_face is None:
                raise
            face, carried = carried_face, True
        crop = face_crop(photo.pixels, face)
        if colour_card:
            result = replace(result, card=find_colour_card(photo.pixels), card_searched=True)
        del photo
        quality = assess(crop.pixels, crop.face)
        if carried:
            quality = replace(quality, warnings=quality.warnings + (FACE_CARRIED,))
        result = replace(result, quality=quality, crop=crop, warnings=quality.warnings)
        if quality.problems:
            raise PoorPhotoQuality(" ".join(quality.problems))
        return replace(result, status="ok")
    except Exception as error:
        missing = isinstance(error, NoFaceFound) and not isinstance(error, SeveralFaces)
        return replace(result, status="rejected", crop=None, face_missing=missing,
                       reason=_failure_reason(error, strict=strict))


def _carried_face(photo: Photo, reference: Reference) -> Face | None:
    """The reference's face laid on a photo in which none was found, or None.

    The photo's features are looked for as if it were framed as the reference photo was (its
    long side spanning the reference photo's), :func:`monitor.imaging.align.carry_face`.
    """
    ref = reference.result
    assert ref.crop is not None and ref.image_size is not None
    framing = max(ref.image_size) / max(photo.pixels.shape[:2])
    scale = reference.target.to_work[0, 0] * ref.crop.scale * framing
    return carry_face(photo.pixels, reference.target, np.diag([scale, scale, 1.0]))


def fit_as_reference(result: PhotoResult) -> bool:
    """Whether an accepted photo can be a course's reference: its redness can be measured."""
    return (result.status == "ok" and result.quality is not None
            and result.quality.redness_measurable)


def refuse_as_reference(result: PhotoResult) -> PhotoResult:
    """A result offered as a course's reference: rejected when it is accepted but cannot be
    the reference (:func:`fit_as_reference`), otherwise unchanged."""
    if result.status != "ok" or fit_as_reference(result):
        return result
    return replace(result, status="rejected", reason=WASHED_OUT_REFERENCE, crop=None)


def reference_order(captured_at: datetime | None) -> tuple[bool, float]:
    """Sort key of the photos a course may take as its reference: the earliest capture
    first, undated photos last (their day is unknown, and the course leaves them out).

    The one rule for the command line's courses and the clinic's; ties are broken by the
    caller (file name, photo id).
    """
    return captured_at is None, 0.0 if captured_at is None else captured_at.timestamp()


def _pick_reference(results: Sequence[PhotoResult], reference: str | None) -> PhotoResult | None:
    accepted = [r for r in results if fit_as_reference(r)]
    if reference is not None:
        wanted = Path(reference).name
        for r in accepted:
            if r.file == wanted or r.source == str(reference):
                return r
    if not accepted:
        return None
    return min(accepted, key=lambda r: (*reference_order(r.captured_at), r.file))


@dataclass(frozen=True, eq=False)
class Reference:
    """The reference photo's result, prepared for aligning and reading other photos onto it."""

    result: PhotoResult  # aligned (identity) and measured
    target: AlignmentTarget
    baseline: RednessBaseline
    colour: ColourReference
    skin: np.ndarray  # where lesions are read, in the reference working copy (see _lesion_skin)
    srgb: np.ndarray  # the working copy its lesions were read on (8-bit sRGB)


def make_reference(result: PhotoResult) -> Reference:
    """Prepare an accepted photo as the reference of a course, and measure it.

    Parameters
    ----------
    result : PhotoResult
        An accepted photo, from :func:`analyse_photo` without a reference.
    """
    if result.status != "ok" or result.crop is None:
        raise ValueError(f"the reference photo must be accepted, got status {result.status!r}")
    if not fit_as_reference(result):
        raise ValueError("the reference photo's redness must be measurable "
                         "(see fit_as_reference)")
    crop = result.crop
    identity = np.eye(3)
    skin = _lesion_skin(crop)
    srgb = IDENTITY.apply_srgb8(crop.pixels)
    reading = LesionReading(measured=True, reason=None, skin_seen=1.0,
                            px_per_mm=crop.face.px_per_mm)
    measurement = _measure(crop, IDENTITY, baseline=None, read_lesions=lambda srgb: (
        read_lesions(srgb, skin_mask=skin, px_per_mm=reading.px_per_mm), reading))
    assert measurement.redness is not None
    result = replace(result, to_reference=identity, measurement=measurement,
                     alignment=Alignment(to_reference=identity, score=1.0, method="reference",
                                         landmark_residual_iod=0.0))
    return Reference(result=result, target=prepare_reference(crop.pixels, crop.face),
                     baseline=measurement.redness.baseline(),
                     colour=prepare_colour_reference(crop.pixels, crop.face, card=result.card),
                     skin=skin, srgb=srgb)


def _lesion_skin(crop: FaceCrop) -> np.ndarray:
    """Where lesions are read on a working copy: the face's skin and the skin just around it.

    The landmarks' skin mask (the face oval) misses skin that lesions are often on: the jaw
    line, the temples and the sides of a turned face, where the mesh's oval falls short. Skin
    found by colour (:func:`monitor.lesions.skin_mask_by_colour`, with the cheeks, nose and
    chin as the colour to match) within :data:`_LESION_SKIN_REACH` pupil distances of the oval
    is added. Eyes, brows and lips are not cut out of it: the networks learnt from whole
    close-ups not to count them (cutting them out raised the count error 3.86 -> 4.16).
    Measured on the 50 ACNE04 dev photos in which a face is found, before the redness check
    and the rule spots of :func:`monitor.lesions.detect_lesions` were added (count error per
    photo): the oval alone 5.8, with all skin-coloured pixels of the working copy 3.9 (but
    hair read as lesions on the synthetic courses), with those within half a pupil distance
    3.7; leaving out the neck below the chin (where the Hopper phantom's false lesions are)
    4.6 with the final reader, against 4.04.
    """
    face = crop.face
    skin = face.skin_mask()
    regions = face.region_masks()
    lower = regions["left_cheek"] | regions["right_cheek"] | regions["nose"] | regions["chin"]
    side = 2 * max(1, int(round(_LESION_SKIN_REACH * face.pupil_distance_3d_px))) + 1
    near = cv2.dilate(skin.astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))) > 0
    return skin | (skin_mask_by_colour(crop.pixels, like=lower) & near)


#: How far beyond the face oval skin found by colour is read, in pupil distances.
_LESION_SKIN_REACH = 0.5


def _measure(crop: FaceCrop, colour: ColourCorrection, *, baseline: RednessBaseline | None,
             read_lesions: Callable[[np.ndarray], tuple[LesionRead | None, LesionReading]],
             redness: bool = True) -> Measurement:
    """Colour-correct the working copy, read its lesions, measure redness around them.

    ``read_lesions`` reads the colour-corrected working copy (sRGB) and returns its lesions
    and faint spots in the working copy's pixels (None when they cannot be read) and how
    they were read. ``redness=False`` leaves the redness unmeasured (None).
    """
    linear = colour.apply(crop.pixels)
    face = crop.face
    regions = face.region_masks()
    read, reading = read_lesions(colour.apply_srgb8(crop.pixels))
    lesions = None if read is None else read.lesions
    spots = None
    if lesions:
        spots = disc_mask(linear.shape[:2], np.array([(les.x, les.y) for les in lesions]),
                           np.array([1.5 * les.radius_px + 1 for les in lesions]))
    figures = None if not redness else measure_redness(
        linear, face.skin_mask(), regions, baseline=baseline, exclude=spots)
    return Measurement(colour=colour, redness=figures, lesions=lesions, regions=regions,
                       reading=reading, faint=None if read is None else read.faint)


def _lesions_in_reference_frame(
    srgb: np.ndarray, reference: Reference, crop_to_ref: np.ndarray,
    refinement: Refinement | None = None,
) -> tuple[LesionRead | None, LesionReading]:
    """Lesions (and faint spots) of a working copy read on the reference's, mapped back.

    Every photo of a course is warped onto the reference's working copy and read there on
    the reference's lesion skin (:func:`_lesion_skin`), so that each is read at the same
    physical scale, in the same frame and on the same skin: the same skin gives the same
    reading whatever the day's framing. ``refinement`` (the alignment's non-rigid
    correction, in the working copies' pixels) follows an expression.
    """
    ref_crop = reference.result.crop
    assert ref_crop is not None
    h, w = reference.skin.shape
    if refinement is None:
        warped = cv2.warpPerspective(srgb, crop_to_ref, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.warpPerspective(np.ones(srgb.shape[:2], np.uint8), crop_to_ref, (w, h),
                                   flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
    else:
        map_x, map_y = _refined_maps(crop_to_ref, refinement, (w, h))
        warped = cv2.remap(srgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.remap(np.ones(srgb.shape[:2], np.uint8), map_x, map_y, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT) > 0
    skin = reference.skin & seen
    share = float(skin.sum()) / max(float(reference.skin.sum()), 1.0)
    px_per_mm = ref_crop.face.px_per_mm
    if share < _MIN_SKIN_SEEN:
        return None, LesionReading(
            measured=False, skin_seen=share, px_per_mm=px_per_mm,
            reason="Part of your face is outside this photo, so its spots could not be "
                   "counted. Next time, fit your whole face in the frame as in your first photo.")
    read = read_lesions(warped, skin_mask=skin, px_per_mm=px_per_mm)
    reference_read = reference.result.measurement
    assert reference_read is not None
    read, held = _hold_reference_lesions(read, reference_read.lesions or (), px_per_mm)
    read, kept, held_back = _keep_unchanged_places(
        read, reference_read.lesions or (), warped, reference.srgb, skin, px_per_mm)
    reading = LesionReading(measured=True, reason=None, skin_seen=share, px_per_mm=px_per_mm,
                            held=held + kept, held_back=held_back)
    back = np.linalg.inv(crop_to_ref)
    return LesionRead(_map_lesions(_refined(read.lesions, refinement), back, srgb.shape[:2]),
                      _map_lesions(_refined(read.faint, refinement), back, srgb.shape[:2])), \
        reading


def _refined_maps(to_reference: np.ndarray, refinement: Refinement,
                  size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps laying a working copy onto the reference's (``size``, width and
    height) through ``to_reference`` and its refinement. Both are smooth: the maps are worked
    out on every fourth pixel and interpolated."""
    w, h = size
    step = 4
    gx, gy = np.meshgrid(np.arange(0, w + step, step, dtype=np.float64),
                         np.arange(0, h + step, step, dtype=np.float64))
    source = refinement.from_reference(to_reference, np.c_[gx.ravel(), gy.ravel()])
    coarse = source.reshape(gx.shape + (2,)).astype(np.float32)
    # Coarse node (i, j) is pixel (step * j, step * i): pixel (x, y) reads it at (x, y) / step.
    fine = cv2.warpAffine(coarse, np.float32([[1 / step, 0, 0], [0, 1 / step, 0]]), (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(fine[..., 0]), np.ascontiguousarray(fine[..., 1])


def _refined(lesions: Sequence[Lesion], refinement: Refinement | None) -> tuple[Lesion, ...]:
    """Lesions read on the reference's working copy, moved by the refinement onto the skin
    that the homography lays there (so that the inverse homography finds them in the photo)."""
    if refinement is None or not lesions:
        return tuple(lesions)
    shift = refinement.displacement(np.array([(les.x, les.y) for les in lesions]))
    return tuple(replace(les, x=les.x + float(dx), y=les.y + float(dy))
                 for les, (dx, dy) in zip(lesions, shift, strict=True))


#: A faint spot where the reference photo has a lesion is counted if its density mass is at
#: least this (a new lesion needs lesions._FACE_MIN_MASS, 0.15) ...
_HOLD_MIN_MASS = 0.075
#: ... and it lies within this of the reference's lesion (half the separation of two lesions).
_HOLD_REACH_MM = 0.5 * FACE_SEPARATION_MM


def _within(spot: Lesion, others: Iterable[Lesion], reach: float) -> bool:
    """Whether any of ``others`` is centred less than ``reach`` pixels from ``spot``'s centre."""
    return any(math.hypot(spot.x - o.x, spot.y - o.y) < reach for o in others)


def _hold_reference_lesions(read: LesionRead, reference: Sequence[Lesion],
                            px_per_mm: float) -> tuple[LesionRead, int]:
    """Count the faint spots that sit where the reference photo counted a lesion.

    Hysteresis, as in edge tracking: a lesion must clear the reader's thresholds to be
    counted first, but once counted on the reference it stays counted while it reads above a
    lower one. A lesion at the threshold otherwise flickers from one photo of the same skin
    to the next (read in the reference's frame, the same skin re-shot moved peaks of 0.17-0.20
    to 0.14-0.15 and back). Returns the read and how many faint spots were counted.
    """
    lesions, faint = list(read.lesions), list(read.faint)
    reach = _HOLD_REACH_MM * px_per_mm
    held = 0
    for ref in reference:
        def distance(spot: Lesion, ref: Lesion = ref) -> float:
            return math.hypot(spot.x - ref.x, spot.y - ref.y)
        if _within(ref, lesions, reach):
            continue
        near = [f for f in faint if f.confidence >= _HOLD_MIN_MASS and distance(f) < reach]
        if near:
            spot = min(near, key=distance)
            faint.remove(spot)
            lesions.append(spot)
            held += 1
    if not held:
        return read, 0
    return LesionRead(tuple(sorted(lesions, key=lambda les: -les.confidence)),
                      tuple(faint)), held


#: A spot whose redness over its surroundings (lesions.redness_excess) reads within this
#: (CIELAB a*) of the reference photo's has not changed since (see _keep_unchanged_places).
#: Measured with it (benchmarks/repeatability.py, re-shoots of unchanged skin): on 8 dev faces
#: per grade, count spread mean / worst 0.141 / 0.538 -> 0.055 / 0.238 and false tracks per
#: course 0.53 / 3 -> 0.19 / 2; on 3 held-out faces per grade 0.104 / 0.250 -> 0.062 / 0.143
#: and 0.33 / 1 -> 0.08 / 1. On courses whose skin does change (benchmarks/course_accuracy.py)
#: lesion F1 0.947 -> 0.957, count error 0.38 -> 0.31. Holding places that were clear on
#: either photo as well (no redness floor) gave steadier re-shoots (0.042 / 0.200, 0.12 / 1)
#: but held back lesions coming on the phantoms' skin (real-looking lesions' recall 62 -> 59
#: of 195).
_UNCHANGED_A = 1.0


def _keep_unchanged_places(read: LesionRead, reference: Sequence[Lesion], srgb: np.ndarray,
                           reference_srgb: np.ndarray, skin: np.ndarray, px_per_mm: float
                           ) -> tuple[LesionRead, int, int]:
    """Where the skin looks as it did on the reference photo, keep the reference's decision.

    ``srgb`` is the photo read on the reference's working copy (``reference_srgb``), so one
    place is the same pixels in both; ``skin`` is the skin read, in view on both. The reader's
    own decision at a place can flip between two photos of unchanged skin (a rule spot's
    scale or a density peak's mass crosses its threshold), and every flip is a lesion
    reported new or resolved. A place is unchanged when it is a spot by its redness in both
    photos (:func:`monitor.lesions.redness_excess` at least
    :data:`monitor.lesions.FACE_MIN_A_EXCESS`, as a lesion on a face must be) and that
    redness differs by at most :data:`_UNCHANGED_A`. There:

    - a lesion of the reference on ``skin`` that this photo does not count is still counted
      (as the reference read it, in place of a faint spot there);
    - a lesion of this photo where the reference had none is not counted (it is kept as a
      faint spot, which the course's tracking follows).

    A lesion that comes on clear skin or goes from it is not held either way. Returns the
    read, how many reference lesions were kept, and how many of this photo's lesions were
    held back.
    """
    lesions, faint = list(read.lesions), list(read.faint)
    reach = _HOLD_REACH_MM * px_per_mm

    def near(spot: Lesion, others: Iterable[Lesion]) -> bool:
        return _within(spot, others, reach)

    # The rings round crowded lesions leave out the discs of every lesion either photo counts,
    # as the reader's own redness check does (8 dev faces per grade: count spread 0.055 /
    # 0.238 -> 0.051 / 0.200; synthetic courses F1 0.957 -> 0.960).
    listed = lesions + list(reference)
    occupied = disc_mask((skin.shape[0], skin.shape[1]), [(les.x, les.y) for les in listed],
                         [les.radius_px for les in listed])

    def unchanged(place: Lesion) -> bool:
        now = redness_excess(srgb, place, px_per_mm, occupied=occupied)
        then = redness_excess(reference_srgb, place, px_per_mm, occupied=occupied)
        return min(now, then) >= FACE_MIN_A_EXCESS and abs(now - then) <= _UNCHANGED_A

    held_back = [les for les in lesions if not near(les, reference) and unchanged(les)]
    h, w = skin.shape
    kept = [ref for ref in reference
            if skin[min(h - 1, max(0, round(ref.y))), min(w - 1, max(0, round(ref.x)))]
            and not near(ref, lesions) and unchanged(ref)]
    if not held_back and not kept:
        return read, 0, 0
    lesions = [les for les in lesions if les not in held_back] + kept
    faint = [f for f in faint if not near(f, kept)]
    return (LesionRead(tuple(sorted(lesions, key=lambda les: -les.confidence)),
                       tuple(sorted(faint + held_back, key=lambda les: -les.confidence))),
            len(kept), len(held_back))


def _map_lesions(found: tuple[Lesion, ...], matrix: np.ndarray,
                 shape: tuple[int, int]) -> tuple[Lesion, ...]:
    """Lesions moved through a homography (radii scaled by its local change of size)."""
    if not found:
        return ()
    centres = apply_homography(matrix, np.array([(les.x, les.y) for les in found]))
    sy, sx = shape
    out = []
    for les, (x, y) in zip(found, centres, strict=True):
        # The local scale of the map at the lesion (its Jacobian's area factor).
        step = apply_homography(matrix, np.array([[les.x + 1.0, les.y], [les.x, les.y + 1.0]]))
        jac = step - (x, y)
        factor = math.sqrt(abs(jac[0, 0] * jac[1, 1] - jac[0, 1] * jac[1, 0]))
        out.append(replace(les, x=float(np.clip(x, 0, sx - 1)), y=float(np.clip(y, 0, sy - 1)),
                           radius_px=max(les.radius_px * factor, 0.5)))
    return tuple(out)


def _measure_aligned(result: PhotoResult, reference: Reference) -> PhotoResult:
    """Measure an aligned photo against the reference: light, redness, lesions."""
    crop = result.crop
    assert crop is not None and result.alignment is not None
    # The alignment itself maps this working copy to the reference working copy.
    crop_to_ref = result.alignment.to_reference
    colour = estimate_correction(crop.pixels, reference.colour, to_reference=crop_to_ref,
                                 card=result.card)
    assert result.quality is not None
    measurement = _measure(crop, colour, baseline=reference.baseline,
                           read_lesions=lambda srgb: _lesions_in_reference_frame(
                               srgb, reference, crop_to_ref, result.alignment.refinement),
                           redness=result.quality.redness_measurable and colour.trusted)
    if not colour.trusted:
        result = replace(result, warnings=result.warnings + (COLOUR_UNTRUSTED,))
    return replace(result, measurement=measurement)


#: The warning of a photo whose light could not be told from a change of its surroundings
#: (:attr:`monitor.imaging.colour.ColourCorrection.trusted`); its redness is not measured.
COLOUR_UNTRUSTED = (
    "The light or the things around your face look different from your first photo in a way "
    "we could not correct, so this photo's redness was not measured (its spots were). Take "
    "the next photo in the same place and light as your first one.")


def analyse_photo(source: str | os.PathLike | bytes, *, name: str | None = None,
                  captured_at: datetime | None = None, reference: Reference | None = None,
                  strict: bool = False, colour_card: bool = False) -> PhotoResult:
    """Analyse one photo: intake, quality gate and, given a reference, pose check and alignment.

    Parameters
    ----------
    source : path or bytes
        The photo file, or its bytes (then ``name`` names it).
    reference : Reference, optional
        From :func:`make_reference`; without it the photo is not aligned. With it, a photo
        in which no face is found is still analysed when its skin matches the reference's
        (:data:`FACE_CARRIED`).
    strict : bool
        Re-raise unexpected (non-:class:`MonitorError`) exceptions.
    colour_card : bool
        Look for a colour card (ColorChecker Classic) in the photo: where both this photo and
        the reference show one, it sets the colour correction. Costs about 0.1-0.2 s a photo.
    """
    if isinstance(source, bytes):
        result = _intake(source, name or "photo", captured_at, strict=strict,
                         colour_card=colour_card, reference=reference)
    else:
        path = Path(source)
        result = _intake(path, name or path.name, captured_at, strict=strict,
                         colour_card=colour_card, reference=reference)
    if reference is not None and result.status == "ok":
        result = _align_to(result, reference, strict=strict)
    return result


#: A photo whose head the face meshes read as turned too far from the first photo's is still
#: measured when its skin lays onto the first photo's by the content alignment (ECC) with at
#: least this correlation: then what is measured is the same skin, seen the same way. On a
#: close-up of a cheek the mesh guesses the face's hidden half, and its pose jumps: re-shoots
#: of the held-out ACNE04 training faces with no turn at all (benchmarks/repeatability.py,
#: levle3_108 and levle3_110) were read as turned by 22-30 degrees and align at 0.980 and
#: 0.999; two real photos of one patient in another pose (ACNE04 levle0_149 and 187) reach
#: 0.72-0.78 at best.
_POSE_OVERRULE_SCORE = 0.97


_NOT_THE_SAME_FACE = (
    "This photo does not seem to show the same face as your first photo, so it was not added "
    "to your course. If someone else's photo was picked by mistake, choose one of yours; if "
    "it is you, take it again facing the camera, in good light, as in your first photo.")


def _align_to(result: PhotoResult, reference: Reference, *, strict: bool) -> PhotoResult:
    ref, target = reference.result, reference.target
    assert result.crop is not None and ref.crop is not None and result.quality is not None
    change, problems, warnings = check_pose(result.crop.face, ref.crop.face)
    quality = replace(result.quality, pose_change_deg=change,
                      problems=result.quality.problems + tuple(problems),
                      warnings=result.quality.warnings + tuple(warnings))
    result = replace(result, quality=quality, warnings=quality.warnings)
    # A turn read by the meshes alone is checked on the skin itself (see _POSE_OVERRULE_SCORE).
    turned = bool(problems) and all(problem == TURNED_AWAY for problem in problems)
    try:
        if problems and not turned:
            raise PoorPhotoQuality(" ".join(problems))
        alignment = align(result.crop.pixels, result.crop.face, target)
        result = replace(result, face_match=alignment.face_match)
        if not alignment.same_face:
            raise NotTheSameFace(_NOT_THE_SAME_FACE)
        if turned:
            if alignment.method != "ecc" or alignment.score < _POSE_OVERRULE_SCORE:
                raise PoorPhotoQuality(" ".join(problems))
            quality = replace(quality, problems=tuple(p for p in quality.problems
                                                      if p != TURNED_AWAY),
                              warnings=quality.warnings + (TURNED_A_LITTLE,))
            result = replace(result, quality=quality, warnings=quality.warnings)
        to_reference = np.linalg.inv(ref.crop.to_crop) @ alignment.to_reference @ \
            result.crop.to_crop
        to_reference /= to_reference[2, 2]
        refinement = (None if alignment.refinement is None
                      else alignment.refinement.in_frame(np.linalg.inv(ref.crop.to_crop)))
        result = replace(result, alignment=alignment, to_reference=to_reference,
                         refinement=refinement)
        return _measure_aligned(result, reference)
    except (cv2.error, np.linalg.LinAlgError):
        # The warps and solvers of alignment failing on this photo's content.
        if strict:
            raise
        return replace(result, status="rejected", reason=str(AlignmentFailed(
            "We could not line this photo up with your first photo. Please take it from the "
            "same distance and angle, facing the camera.")))
    except Exception as error:
        return replace(result, status="rejected", reason=_failure_reason(error, strict=strict))


def analyse_series(
    paths: Sequence[str | os.PathLike],
    *,
    treatment_date: date | None = None,
    reference: str | None = None,
    captured_at: Mapping[str, datetime] | None = None,
    progress: ProgressCallback | None = None,
    symptoms: Sequence[Symptoms] = (),
    strict: bool = False,
    colour_card: bool = False,
) -> dict:
    """Analyse a course of photos into the ``monitor.analysis/1`` contract.

    Parameters
    ----------
    paths : sequence of path
        Photo files, or folders whose files are all considered.
    treatment_date : date, optional
        Day 0; each photo's ``day`` is the number of calendar days since it.
    reference : str, optional
        File name (or path) of the reference photo; by default the earliest accepted photo
        whose redness can be measured (:func:`fit_as_reference`).
    captured_at : mapping of str to datetime, optional
        Capture times by file name, overriding EXIF and file times.
    progress : callable, optional
        Called as ``progress(done, total, file_name, status)`` after each step of each photo.
    symptoms : sequence of Symptoms
        What the patient reported (fever, pain, ...); any of them raises the flag.
    strict : bool
        Re-raise unexpected (non-:class:`MonitorError`) exceptions instead of rejecting the
        photo, and check the analysis against its typed contract
        (:class:`monitor.contract.Analysis`); for tests, where a bug must stay visible.
    colour_card : bool
        Look for a colour card in every photo (see :func:`analyse_photo`).

    Returns
    -------
    dict
        The analysis, ready for ``json.dump``: the ``monitor.analysis/1`` document of
        :class:`monitor.contract.Analysis` (field by field in docs/contract.md).
    """
    files = expand_paths(paths)
    overrides = dict(captured_at or {})
    total = 2 * len(files)
    results = []
    for i, path in enumerate(files):
        result = analyse_photo(path, captured_at=overrides.get(path.name), strict=strict,
                               colour_card=colour_card)
        results.append(result)
        if progress:
            progress(i + 1, total, path.name, result.status)

    ref, prepared = _pick_reference(results, reference), None
    while ref is not None and prepared is None:
        try:
            prepared = make_reference(ref)
        except Exception as error:  # this photo cannot be measured: the next one is tried
            reason = _failure_reason(error, strict=strict)
            results = [replace(r, status="rejected", reason=reason, crop=None) if r is ref
                       else r for r in results]
            ref = _pick_reference(results, reference)
    if ref is not None and prepared is not None:
        for i, result in enumerate(results):
            if result is ref:
                results[i] = prepared.result
            elif result.status == "ok":
                results[i] = _align_to(result, prepared, strict=strict)
            elif result.face_missing:
                results[i] = analyse_photo(files[i], captured_at=overrides.get(files[i].name),
                                           reference=prepared, strict=strict,
                                           colour_card=colour_card)
            if progress:
                progress(len(files) + i + 1, total, result.file, results[i].status)
    else:
        # Every accepted photo (if any) is too washed out to be the reference.
        results = [refuse_as_reference(r) for r in results]

    order = sorted(range(len(results)),
                   key=lambda i: (*reference_order(results[i].captured_at), results[i].file))
    photos = [results[i].to_json(treatment_date=treatment_date) for i in order]
    analysis = {
        "schema": SCHEMA,
        "treatment_date": None if treatment_date is None else treatment_date.isoformat(),
        "reference": None if ref is None else ref.file,
        "photos": photos,
        "trend": assess_course(photos, symptoms=symptoms).to_json(),
    }
    if strict:
        # Tests run strict: a field of the wrong type fails there. Imported here, not at the
        # top: pydantic adds about 0.13 s to every start of the command line and the app.
        from monitor.contract import Analysis

        Analysis.from_json(analysis)
    return analysis


CLOSEUP_SCHEMA = "monitor.lesions/1"


def analyse_closeup(source: str | os.PathLike | bytes, *, name: str | None = None,
                    strict: bool = False) -> dict:
    """Lesions and redness of a close-up photo (one cheek, no whole face): one JSON entry.

    Skin is found by colour instead of landmarks, and lesions are read by the close-up density
    network (:mod:`monitor.lesions.density`), which, like
    :func:`monitor.lesions.closeup_px_per_mm`, takes the photo's short side to span a cheek or
    half a face. The redness figures are the photo's own (there is no reference photo):
    ``index`` is null, ``mean_a_star`` and ``erythema_index`` are given.
    """
    file = name or (Path(source).name if not isinstance(source, bytes) else "photo")
    entry: dict = {"file": file, "status": "rejected", "reason": None, "lesion_count": None,
                   "lesions": None, "redness": None}
    try:
        photo = load_photo(source, name=file)
        skin = skin_mask_by_colour(photo.pixels)
        if skin.sum() < 0.02 * skin.size:
            raise NoSkinFound("We could not find skin in this photo. Take the close-up in good "
                              "light, filling the frame with the area of skin to follow.")
        lesions = detect_lesions(photo.pixels, skin_mask=skin)
        redness = measure_redness(IDENTITY.apply(photo.pixels), skin, {})
        figures = redness.to_json()
        figures.update(index=None, red_fraction=None,
                       units="CIELAB a* of this photo's skin (no reference photo)")
        entry.update(status="ok", lesions=[les.to_json() for les in lesions],
                     lesion_count=len(lesions), redness=figures)
    except Exception as error:
        entry["reason"] = _failure_reason(error, strict=strict)
    return entry
