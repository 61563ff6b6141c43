"""Quality gate: is this photo good enough to measure, and if not, how to retake it.

Every check has a hard limit (the photo is rejected, with a retake hint) and a softer one (the
photo is measured, with a warning). Thresholds live in :class:`QualityLimits`, with their reasons.
Sharpness and exposure are measured on the face's skin at a fixed working scale (pupils 120 px
apart), so the same limits hold for a 1 MP and a 12 MP selfie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from monitor.imaging.face import Face, crop_resize_transform

__all__ = ["Quality", "QualityLimits", "WASHED_OUT_REDNESS", "WASHED_OUT_REFERENCE", "assess",
           "check_pose", "pose_change_deg", "capture_difference", "TURNED_AWAY",
           "TURNED_A_LITTLE"]

_WORK_IOD_PX = 120.0


@dataclass(frozen=True)
class QualityLimits:
    """Where each check rejects (``min_``/``max_``) and where it only warns (``warn_``).

    Sharpness is the variance of the Laplacian of the grey skin at the working scale, per squared
    percent of mean brightness (so exposure does not change it). A sharp phone selfie scores
    well above 1; a Gaussian blur of about 1 mm at the face brings it to ~0.3, where small spots
    start to wash out; 2 mm brings it under 0.15.
    Exposure is the median CIELAB L* of the skin (0 black .. 100 white); clipping is the share of
    skin pixels with a channel at 250 or more. Blown highlights hide redness but not spots: on
    the 60 photos of ACNE04's dev split taken again brighter (gains of 1.12 to 1.6 in linear
    light, so that up to 70 % of the skin clipped), the redness index moved by 0.14 a* on
    average with under 5 % of the skin clipped, 0.23 at 5-10 %, 0.5-0.8 at 10-25 % and 1-5
    beyond, while the lesion count moved by 0.5-1.6 spots at every share. Past
    ``max_clipped_redness`` a photo is accepted without its redness (``redness_measurable`` is
    false) and cannot be a course's reference; past ``max_clipped`` it is rejected.
    Pose limits are changes against the reference photo: alignment handles roll well, turning
    the head (yaw) or nodding (pitch) changes what the camera sees of each cheek.
    """

    min_sharpness: float = 0.15
    warn_sharpness: float = 0.3
    min_inter_ocular_px: float = 32.0  # below this a 1 mm spot is about half a pixel
    warn_inter_ocular_px: float = 90.0
    min_skin_l: float = 22.0
    warn_skin_l_low: float = 35.0
    max_skin_l: float = 94.0
    warn_skin_l_high: float = 85.0
    max_clipped: float = 0.6
    max_clipped_redness: float = 0.25
    warn_clipped: float = 0.08
    max_roll_change: float = 30.0
    warn_roll_change: float = 15.0
    max_yaw_change: float = 22.0
    warn_yaw_change: float = 10.0
    max_pitch_change: float = 22.0
    warn_pitch_change: float = 12.0


DEFAULT_LIMITS = QualityLimits()

#: The warning of a photo accepted without its redness (``Quality.redness_measurable``).
WASHED_OUT_REDNESS = ("Parts of your face are washed out by bright light, so the redness of "
                      "this photo could not be measured; its spots were counted. Next time "
                      "avoid direct sun or flash.")
#: Why a photo too washed out for its redness cannot be the first photo of a course.
WASHED_OUT_REFERENCE = ("This photo is too bright to be the first photo of your course: parts "
                        "of your face are washed out, so its redness cannot be measured. Move "
                        "out of direct sunlight or turn the flash off and try again.")


@dataclass(frozen=True)
class Quality:
    """The quality gate's figures and verdict for one photo."""

    sharpness: float
    exposure: float  # median L* of the skin, 0..100
    clipped_fraction: float
    face_width_px: float
    inter_ocular_px: float
    faces_found: int
    pose_deg: dict[str, float]
    pose_change_deg: dict[str, float] | None
    problems: tuple[str, ...] = field(default=())  # reasons to reject, each with a retake hint
    warnings: tuple[str, ...] = field(default=())
    #: False when too much of the skin is washed out for its redness to be measured (the
    #: spots still are): the photo's redness is then null and it cannot be a reference.
    redness_measurable: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "sharpness": round(self.sharpness, 4),
            "exposure": round(self.exposure, 2),
            "face_width_px": round(self.face_width_px, 1),
            "inter_ocular_px": round(self.inter_ocular_px, 1),
            "clipped_fraction": round(self.clipped_fraction, 4),
            "redness_measurable": self.redness_measurable,
            "faces_found": self.faces_found,
            "pose_deg": {k: round(v, 2) for k, v in self.pose_deg.items()},
            "pose_change_deg": (None if self.pose_change_deg is None else
                                {k: round(v, 2) for k, v in self.pose_change_deg.items()}),
        }


def pose_change_deg(face: Face, reference: Face) -> dict[str, float]:
    """Absolute change of roll, yaw and pitch between a face and the reference face.

    The rotation that best maps the reference's 3-D face mesh (x, y and the mesh's depth, in
    x's scale) onto this face's (Kabsch, with scale; the 468 mesh points), as angles about the
    camera's axis (roll), the vertical (yaw) and the horizontal (pitch). Unlike differences of
    :attr:`monitor.imaging.face.Face.pose_deg`, it holds for a face seen from the side: there the
    pupil line is short and the nose tip reaches the face's edge, so that the absolute roll and
    yaw jump by 20-30 degrees between re-shoots of the same photo rolled by a few degrees (the
    ACNE04 side views of benchmarks/repeatability.py).
    """
    a = np.c_[face.landmarks[:468], face.depth[:468]].astype(np.float64)
    b = np.c_[reference.landmarks[:468], reference.depth[:468]].astype(np.float64)
    a -= a.mean(axis=0)
    b -= b.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T  # this face ~ rotation @ reference
    roll, yaw, pitch = Rotation.from_matrix(rotation).as_euler("zyx", degrees=True)
    return {"roll": abs(float(roll)), "yaw": abs(float(yaw)), "pitch": abs(float(pitch))}


_TURN_HINT = "Face the camera straight on, as in your first photo, with the phone at eye level."
#: The problem of a photo whose head the face meshes read as turned too far (yaw or pitch)
#: from the first photo's; the warning of one turned less far.
TURNED_AWAY = ("Your head is turned away from the camera compared with your first photo. "
               + _TURN_HINT)
TURNED_A_LITTLE = "Your head is turned a little compared with your first photo. " + _TURN_HINT


def check_pose(face: Face, reference: Face, *, limits: QualityLimits = DEFAULT_LIMITS
               ) -> tuple[dict[str, float], list[str], list[str]]:
    """Pose change against the reference photo, with problems (reject) and warnings."""
    change = pose_change_deg(face, reference)
    problems: list[str] = []
    warnings: list[str] = []
    if change["roll"] > limits.max_roll_change:
        problems.append("Your head is tilted much more than in your first photo. Hold the "
                        "phone upright and keep your head straight.")
    elif change["roll"] > limits.warn_roll_change:
        warnings.append("Your head is tilted compared with your first photo.")
    if change["yaw"] > limits.max_yaw_change or change["pitch"] > limits.max_pitch_change:
        problems.append(TURNED_AWAY)
    elif change["yaw"] > limits.warn_yaw_change or change["pitch"] > limits.warn_pitch_change:
        warnings.append(TURNED_A_LITTLE)
    return change, problems, warnings


def _skin_at_working_scale(rgb: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """The face's bounding region at the working scale, and its skin mask there."""
    scale = min(1.0, _WORK_IOD_PX / face.inter_ocular_px)
    x0, y0, x1, y1 = face.box
    height, width = rgb.shape[:2]
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(np.ceil(x1)) + 1, width), min(int(np.ceil(y1)) + 1, height)
    crop = rgb[y0:y1, x0:x1]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if scale < 1 else crop
    sx, sy = size[0] / max(crop.shape[1], 1), size[1] / max(crop.shape[0], 1)
    to_small = crop_resize_transform(x0, y0, sx, sy)
    mask = face.skin_mask(shape=small.shape[:2], transform=to_small)
    return small, mask


def assess(rgb: np.ndarray, face: Face, *, limits: QualityLimits = DEFAULT_LIMITS) -> Quality:
    """Run the quality gate on one photo: its own sharpness, light and size.

    The pose against the course's reference photo is checked apart, once the photo's
    reference is known (:func:`check_pose`); ``pose_change_deg`` is left None here.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The photo.
    face : Face
        Its dominant face.
    limits : QualityLimits
        Where to reject and where to warn.

    Returns
    -------
    Quality
        ``problems`` (reject) and ``warnings`` (accept, but tell) in plain words.
    """
    problems: list[str] = []
    warnings: list[str] = []
    iod = face.inter_ocular_px
    if iod < limits.min_inter_ocular_px:
        problems.append("Your face is too small in the photo. Hold the phone at arm's length "
                        "so that your face fills most of the picture.")
    elif iod < limits.warn_inter_ocular_px:
        warnings.append("Your face is rather small in the photo; small spots may be missed. "
                        "Next time hold the phone a little closer.")

    small, mask = _skin_at_working_scale(rgb, face)
    if mask.sum() < 50:
        return Quality(0.0, 0.0, 0.0, face.width_px, iod, face.faces_found, face.pose_deg,
                       None, ("We could not see enough of the skin of your face. Face the "
                              "camera with your whole face in the picture.",), ())
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    laplacian = cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 0.8), cv2.CV_32F)
    brightness = max(float(grey[mask].mean()), 1.0)
    sharpness = float(laplacian[mask].var() / (brightness / 100.0) ** 2)
    lightness = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 0][mask].astype(np.float32) * (
        100.0 / 255.0)
    exposure = float(np.median(lightness))
    clipped = float((small[mask].max(axis=1) >= 250).mean())

    if sharpness < limits.min_sharpness:
        problems.append("The photo is blurred. Hold the phone steady (rest your elbows) and "
                        "tap your face on the screen to focus before you take it.")
    elif sharpness < limits.warn_sharpness:
        warnings.append("The photo is a little soft; hold the phone steady next time.")
    if exposure < limits.min_skin_l:
        problems.append("The photo is too dark. Face a window or a bright lamp and try again.")
    elif exposure > limits.max_skin_l or clipped > limits.max_clipped:
        problems.append("The photo is too bright: parts of your face are washed out. Move out "
                        "of direct sunlight or turn the flash off and try again.")
    else:
        if exposure < limits.warn_skin_l_low:
            warnings.append("The photo is rather dark; more light on your face helps.")
        if clipped > limits.max_clipped_redness:
            warnings.append(WASHED_OUT_REDNESS)
        elif exposure > limits.warn_skin_l_high or clipped > limits.warn_clipped:
            warnings.append("Some of your face is very bright; avoid direct sun or flash.")

    return Quality(
        sharpness=sharpness, exposure=exposure, clipped_fraction=clipped,
        face_width_px=face.width_px, inter_ocular_px=iod, faces_found=face.faces_found,
        pose_deg=face.pose_deg, pose_change_deg=None, problems=tuple(problems),
        warnings=tuple(warnings), redness_measurable=clipped <= limits.max_clipped_redness,
    )


#: How far today's capture may differ from the first photo's before the patient is told
#: (:func:`capture_difference`): the face's share of the frame by this factor either way ...
FRAMING_FACTOR = 1.2
#: ... the head's roll, turn (yaw) or nod (pitch) against the first photo by this many degrees
#: (well inside the pose check's limits of 30, 22 and 22, so the advice comes long before a
#: photo is turned away) ...
POSE_HINT_DEG = {"roll": 10.0, "yaw": 8.0, "pitch": 8.0}
#: ... and the skin's median lightness (L*) by this much: a change of exposure of about 20 %.
LIGHTNESS_HINT = 8.0


def capture_difference(entry: Mapping, reference: Mapping) -> str | None:
    """One plain sentence on how a photo's capture differed from the course's first photo.

    Both are photo entries of the ``monitor.analysis/1`` contract (``image_size``, ``face``
    and ``quality``). Says what differed (farther or nearer, tilted, turned, darker or
    brighter) and what to do next time; None when nothing differed noticeably (see
    :data:`FRAMING_FACTOR`, :data:`POSE_HINT_DEG`, :data:`LIGHTNESS_HINT`) or the figures are
    missing.
    """
    seen, todo = [], []
    share, first = _face_share(entry), _face_share(reference)
    if share is not None and first is not None:
        if share < first / FRAMING_FACTOR:
            seen.append("taken from farther away")
            todo.append("hold the phone a little closer")
        elif share > first * FRAMING_FACTOR:
            seen.append("taken from closer")
            todo.append("hold the phone a little farther away")
    change = (entry.get("quality") or {}).get("pose_change_deg") or {}
    if change.get("roll", 0.0) >= POSE_HINT_DEG["roll"]:
        seen.append("tilted")
        todo.append("keep your head level")
    if change.get("yaw", 0.0) >= POSE_HINT_DEG["yaw"]:
        seen.append("turned to one side")
        todo.append("face the camera straight on")
    if change.get("pitch", 0.0) >= POSE_HINT_DEG["pitch"]:
        seen.append("taken from higher or lower")
        todo.append("hold the phone at eye level")
    light = (entry.get("quality") or {}).get("exposure")
    first_light = (reference.get("quality") or {}).get("exposure")
    if light is not None and first_light is not None:
        if light < first_light - LIGHTNESS_HINT:
            seen.append("darker")
            todo.append("find brighter light, as in your first photo")
        elif light > first_light + LIGHTNESS_HINT:
            seen.append("brighter")
            todo.append("avoid strong light on your face")
    if not seen:
        return None
    return (f"Compared with your first photo, this one was {_listed(seen)}: next time, "
            f"{_listed(todo)}.")


def _face_share(entry: Mapping) -> float | None:
    """The face box's width as a share of the photo's width."""
    size, face = entry.get("image_size"), entry.get("face")
    if not size or not face or not face.get("box"):
        return None
    x0, _, x1, _ = face["box"]
    return (x1 - x0) / max(float(size[0]), 1.0)


def _listed(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
