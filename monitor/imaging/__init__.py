"""From a photo to its measured skin: intake, face, quality, alignment, colour, redness.

The steps in the order a photo meets them (:mod:`monitor.pipeline` composes them):

- :mod:`~monitor.imaging.photo`: intake, the only place that decodes (formats, EXIF orientation
  and time, colour profiles, the decompression-bomb guard).
- :mod:`~monitor.imaging.face`: MediaPipe Face Mesh landmarks, facial regions, the skin mask.
- :mod:`~monitor.imaging.quality`: the quality gate and its retake hints.
- :mod:`~monitor.imaging.align`: the landmark homography refined by ECC, then by optical flow.
- :mod:`~monitor.imaging.colour`: colour normalisation from references that do not change
  (never the skin).
- :mod:`~monitor.imaging.redness`: CIELAB a*, the erythema index, per region; the redness index.

Lesions are read by :mod:`monitor.lesions` (issue #13's reader).
"""

from __future__ import annotations

from monitor.imaging.align import (
    MIN_FACE_MATCH,
    WORK_IOD_PX,
    Alignment,
    AlignmentTarget,
    Refinement,
    align,
    carry_face,
    photo_to_reference,
    prepare_reference,
)
from monitor.imaging.colour import (
    AGREE_LOG_GAIN,
    COLORCHECKER_SRGB,
    IDENTITY,
    SOURCES,
    ColourCorrection,
    ColourReference,
    estimate_correction,
    eye_white_mask,
    find_colour_card,
    linear_to_srgb,
    neutral_mask,
    prepare_colour_reference,
    srgb_to_linear,
    surrounding_parts,
    to_lab,
)
from monitor.imaging.face import (
    INTER_OCULAR_MM,
    LEFT_IRIS,
    REGIONS,
    RIGHT_IRIS,
    Face,
    apply_homography,
    crop_resize_transform,
    find_face,
    mesh_parts,
    shrink,
)
from monitor.imaging.photo import (
    MAX_PIXELS,
    MIN_SIDE_PX,
    Photo,
    load_photo,
)
from monitor.imaging.quality import (
    TURNED_A_LITTLE,
    TURNED_AWAY,
    WASHED_OUT_REDNESS,
    WASHED_OUT_REFERENCE,
    Quality,
    QualityLimits,
    assess,
    capture_difference,
    check_pose,
    pose_change_deg,
)
from monitor.imaging.redness import (
    Redness,
    RednessBaseline,
    measure_redness,
    redness_map,
)

__all__ = [
    "AGREE_LOG_GAIN",
    "COLORCHECKER_SRGB",
    "IDENTITY",
    "INTER_OCULAR_MM",
    "LEFT_IRIS",
    "MAX_PIXELS",
    "MIN_FACE_MATCH",
    "MIN_SIDE_PX",
    "REGIONS",
    "RIGHT_IRIS",
    "SOURCES",
    "TURNED_AWAY",
    "TURNED_A_LITTLE",
    "WASHED_OUT_REDNESS",
    "WASHED_OUT_REFERENCE",
    "WORK_IOD_PX",
    "Alignment",
    "AlignmentTarget",
    "ColourCorrection",
    "ColourReference",
    "Face",
    "Photo",
    "Quality",
    "QualityLimits",
    "Redness",
    "RednessBaseline",
    "Refinement",
    "align",
    "apply_homography",
    "assess",
    "capture_difference",
    "carry_face",
    "check_pose",
    "crop_resize_transform",
    "estimate_correction",
    "eye_white_mask",
    "find_colour_card",
    "find_face",
    "linear_to_srgb",
    "load_photo",
    "measure_redness",
    "mesh_parts",
    "neutral_mask",
    "photo_to_reference",
    "pose_change_deg",
    "prepare_colour_reference",
    "prepare_reference",
    "redness_map",
    "shrink",
    "srgb_to_linear",
    "surrounding_parts",
    "to_lab",
]
