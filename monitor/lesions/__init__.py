"""Lesions (papules and pustules): where they are, how large, which kind, how many.

Issue #13's reader, in two modules:

- :mod:`~monitor.lesions.density`: the density networks (ONNX, run by OpenCV) that turn skin
  into a lesion density map, its peaks and the calibrated count.
- :mod:`~monitor.lesions.reader`: the reader that :mod:`monitor.pipeline` calls, on a face at
  its physical scale or on a close-up; the redness of a spot against its surroundings; the
  candidate path with its trees and rule scores, used for clear isolated spots on a face and
  when the networks' files are missing.

The networks, their count calibration and the trees ship in ``monitor/models/``.
"""

from __future__ import annotations

from monitor.lesions.density import (
    CloseupNet,
    CountCalibration,
    DensityPeaks,
    density_peaks,
    load_closeup_net,
)
from monitor.lesions.reader import (
    FACE_MIN_A_EXCESS,
    FACE_READ_PX_PER_MM,
    FACE_SEPARATION_MM,
    Lesion,
    LesionRead,
    closeup_px_per_mm,
    detect_lesions,
    disc_mask,
    read_lesions,
    redness_excess,
    skin_mask_by_colour,
)

__all__ = [
    "FACE_MIN_A_EXCESS",
    "FACE_READ_PX_PER_MM",
    "FACE_SEPARATION_MM",
    "CloseupNet",
    "CountCalibration",
    "DensityPeaks",
    "Lesion",
    "LesionRead",
    "closeup_px_per_mm",
    "density_peaks",
    "detect_lesions",
    "disc_mask",
    "load_closeup_net",
    "read_lesions",
    "redness_excess",
    "skin_mask_by_colour",
]
