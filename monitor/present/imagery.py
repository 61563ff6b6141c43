"""Pictures for the course pages: aligned photos, lesion and redness overlays, wipe, time-lapse.

Every picture is drawn in the *reference frame*: the reference photo's working copy (its face
and a margin, see :func:`monitor.pipeline.face_crop`), into which each photo is warped with its
stored ``to_reference`` homography. So day 0 and today line up pixel for pixel.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from monitor.imaging import apply_homography, load_photo, redness_map, srgb_to_linear
from monitor.pipeline import Reference

__all__ = ["aligned_photo", "draw_lesions", "frame_to_photo", "framing_thumbnail",
           "lesions_in_frame", "redness_overlay", "timelapse_gif", "wipe"]


def _to_frame(reference: Reference, to_reference: Sequence[Sequence[float]]) -> np.ndarray:
    crop = reference.result.crop
    assert crop is not None
    return crop.to_crop @ np.asarray(to_reference, dtype=float)


def aligned_photo(data: bytes, to_reference: Sequence[Sequence[float]],
                  reference: Reference) -> np.ndarray:
    """The photo warped into the reference frame.

    Returns
    -------
    ndarray of shape (h, w, 3), uint8
        h, w: the reference working copy's size.
    """
    crop = reference.result.crop
    assert crop is not None
    pixels = np.asarray(load_photo(data, name="photo").pixels)
    h, w = crop.pixels.shape[:2]
    return cv2.warpPerspective(pixels, _to_frame(reference, to_reference), (w, h),
                               flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)


def framing_thumbnail(data: bytes, entry: dict, *, width: int = 320) -> np.ndarray:
    """The whole photo, ``width`` pixels wide, with its face box drawn: how it was framed.

    ``entry`` is the photo's ``monitor.analysis/1`` entry (its ``face.box``, photo pixels).
    """
    pixels = np.asarray(load_photo(data, name="photo").pixels)
    scale = width / pixels.shape[1]
    small = cv2.resize(pixels, (width, max(1, round(pixels.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    box = (entry.get("face") or {}).get("box")
    if box:
        image = Image.fromarray(small)
        ImageDraw.Draw(image).rectangle([v * scale for v in box], outline=(255, 230, 0),
                                        width=max(2, width // 160))
        small = np.asarray(image)
    return small


def lesions_in_frame(entry: dict, reference: Reference) -> list[dict]:
    """The photo's lesions (photo pixels) with ``fx, fy, fr`` in the reference frame."""
    lesions = entry.get("lesions") or []
    if not lesions or entry.get("to_reference") is None:
        return []
    matrix = _to_frame(reference, entry["to_reference"])
    centres = apply_homography(matrix, np.array([[le["x"], le["y"]] for le in lesions], float))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    return [dict(le, fx=float(cx), fy=float(cy), fr=max(2.0, float(le.get("radius") or 2) * scale))
            for le, (cx, cy) in zip(lesions, centres, strict=True)]


def frame_to_photo(entry: dict, reference: Reference, x: float, y: float) -> tuple[float, float]:
    """A point of the reference frame in the photo's own pixels (for added lesions)."""
    matrix = np.linalg.inv(_to_frame(reference, entry["to_reference"]))
    (px, py), = apply_homography(matrix, np.array([[x, y]], float))
    return float(px), float(py)


def draw_lesions(image: np.ndarray, lesions: Sequence[dict], *,
                 numbered: bool = True) -> np.ndarray:
    """Circles (and numbers) on a copy of ``image`` at ``fx, fy, fr`` of each lesion."""
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    for i, le in enumerate(lesions, start=1):
        colour = (60, 200, 255) if le.get("added_by_clinician") else (255, 230, 0)
        r = le["fr"] + 3
        draw.ellipse((le["fx"] - r, le["fy"] - r, le["fx"] + r, le["fy"] + r), outline=colour,
                     width=2)
        if numbered:
            draw.text((le["fx"] + r + 1, le["fy"] - r - 2), str(i), fill=colour)
    return np.asarray(out)


def redness_overlay(image: np.ndarray, reference: Reference, *, max_delta: float = 10.0,
                    opacity: float = 0.55) -> np.ndarray:
    """The aligned photo with skin redder than the reference photo tinted (Δa* 0..max_delta)."""
    crop = reference.result.crop
    assert crop is not None
    skin = crop.face.skin_mask()
    delta = redness_map(srgb_to_linear(image), skin, baseline=reference.baseline)
    level = np.clip(np.nan_to_num(delta, nan=0.0) / max_delta, 0.0, 1.0)[..., None]
    tint = np.array([255.0, 0.0, 40.0])
    out = image.astype(float) * (1 - opacity * level) + tint * (opacity * level)
    return np.clip(out, 0, 255).astype(np.uint8)


def wipe(before: np.ndarray, after: np.ndarray, fraction: float) -> np.ndarray:
    """``before`` left of ``fraction`` of the width, ``after`` right of it, a line between."""
    if before.shape != after.shape:
        raise ValueError(f"the two pictures must have the same shape, got {before.shape} "
                         f"and {after.shape}")
    out = after.copy()
    x = int(round(np.clip(fraction, 0.0, 1.0) * before.shape[1]))
    out[:, :x] = before[:, :x]
    out[:, max(0, x - 1):x + 1] = 255
    return out


def timelapse_gif(frames: Sequence[np.ndarray], labels: Sequence[str], *,
                  ms_per_frame: int = 700) -> bytes:
    """An animated GIF of the aligned photos, each labelled (e.g. "day 3")."""
    if not frames:
        raise ValueError("a time-lapse needs at least one picture, got none")
    images = []
    for frame, label in zip(frames, labels, strict=True):
        im = Image.fromarray(frame)
        ImageDraw.Draw(im).text((8, 8), label, fill=(255, 255, 255))
        images.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                   duration=ms_per_frame, loop=0)
    return out.getvalue()


