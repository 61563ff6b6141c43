"""Inflammatory acne lesions (papules and pustules) found in a photo of skin.

How it works
------------
1. **Working scale.** The caller gives the scale in pixels per millimetre; the image is
   resampled so that it is at most ``4 px/mm`` (larger photos are reduced, so a 12 MP photo
   costs what a 1 MP one does) and at least ``2.5 px/mm``. Every length below is in
   millimetres, which is why the same detector works at any resolution.
2. **Candidates.** In CIELAB, a red spot is a local excess of ``a*``. The image is blurred at
   nine scales (sigma 0.35 to 5.6 mm, steps of sqrt 2); the centre-surround contrast
   ``G(sigma) - G(2.83 sigma)`` of ``a*`` is a scale-normalised blob response whose value is in
   ``a*`` units. Its local maxima (over position, best over scale) above a low floor are the
   candidates; pixels outside the skin mask are first filled with the surrounding skin colour
   so that the edges of the face, hair or lips do not look like spots.
3. **Score.** Each candidate is described by seventy numbers that mean the same thing on any
   photo: the ``a*``, ``L*`` and ``b*`` contrasts at six scales, the colour profile on rings
   around it, paleness of the centre, elongation (Hessian eigenvalues), texture, local and
   image-wide skin colour, how it ranks within its photo and against its neighbours. A small
   gradient-boosted tree ensemble (trained by ``benchmarks/train_lesion_model.py`` on the
   ACNE04 training photos only, stored as plain arrays in ``monitor/models/lesion_gbt.npz``
   and evaluated here with numpy: no scikit-learn, no pickle at run time) turns them into a
   probability of being a lesion. A second, rule-based score accepts a round, lesion-sized
   red spot that stands far above the photo's typical redness variation (a clear papule on
   even skin, such as a painted test lesion, is a lesion whatever a model trained on one data
   set thinks); the confidence is the larger of the two. The rule is gated by that z-score so
   that on troubled real skin, where red marks abound, the learned score decides (the rule
   costs about 0.01 of cross-validated count Spearman on the training photos).
4. **Clean-up.** Candidates are kept best-first, dropping any whose centre lies inside a
   lesion already kept, then those below the confidence threshold, outside the skin mask or
   inside ``exclude_mask``.
5. **Kind.** At the photo's own resolution, a pustule's centre is paler (higher ``L*``) and less
   red than its rim; a papule is reddest in its centre.

Close-ups
---------
A close-up (``px_per_mm`` not given) is read differently: a small convolutional network
(:mod:`monitor.lesions.density`, trained on the ACNE04 training close-ups) turns the photo into a
lesion density map whose sum, calibrated to annotators' counts, is the number of lesions and
whose strongest peaks are their positions; steps 1-4 are skipped, step 5 still names the kind.
On real close-ups the candidates above could not count severe acne, where dozens of lesions
crowd together (count error about 8 per photo on the ACNE04 dev split against 3.9 for the
networks).

Faces
-----
A face (``px_per_mm`` given) is read by the same networks at their own physical scale
(:data:`FACE_READ_PX_PER_MM`), so that a face photo looks to them like the close-ups they
learnt from; lesions must be redder than the skin around them (:func:`_face_lesions`). On
the ACNE04 dev photos read through the whole-face path this took the count error from 9.8 to
4.0 per photo and the count Spearman from 0.82 to 0.93. The peaks just below the count, or
not red enough, are reported as faint spots (:class:`LesionRead`): a course uses them to
follow a lesion through a day it reads faintly. Steps 1-4 with the trees are used only when
the networks' files are missing.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from monitor.imaging import INTER_OCULAR_MM
from monitor.lesions.density import (
    RUN_SHORT_SIDE,
    STRIDE,
    CloseupNet,
    DensityPeaks,
    PreparedInput,
    density_peaks,
    load_closeup_net,
    residual_peaks,
)

__all__ = [
    "FACE_MIN_A_EXCESS", "FACE_READ_PX_PER_MM", "FACE_SEPARATION_MM", "Lesion", "LesionRead",
    "closeup_px_per_mm", "detect_lesions", "disc_mask", "read_lesions", "redness_excess",
    "skin_mask_by_colour",
]

_KINDS = ("papule", "pustule")

_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "lesion_gbt.npz"

# The ACNE04 close-ups show a cheek or half a face; the short side of such a frame spans
# about 200 mm (eye widths of ~30 mm measure ~90-110 px in the 640 px photos).
_CLOSEUP_FRAME_MM = 200.0

# Resolution at which the search runs: enough to resolve a 0.5 mm radius spot.
_MAX_WORK_PX_PER_MM = 4.0
_MIN_WORK_PX_PER_MM = 2.5

# Blur scales (mm): sigma_k = 0.35 * sqrt(2)**k, k = 0..8. Centre-surround pairs k, k+3.
_SIGMAS_MM = tuple(0.35 * math.sqrt(2.0) ** k for k in range(9))
_N_CS = 6  # centre scales with a surround three steps up
_SURROUND_STEP = 3

# A flat disc of radius R gives its strongest centre-surround response near sigma = R / 1.8;
# Gaussian spots "of radius R" (visible extent) peak near the same place.
_RADIUS_PER_SIGMA = 1.8

_HEAD_RADIUS_MM = 1.3  # pustule heads filled up to about this radius before the blob search
_CANDIDATE_FLOOR_ASTAR = 1.0  # a* units; below this a spot is not even a candidate
_MAX_CANDIDATES = 600

# Rule path: a round, clearly red spot. Thresholds in a* units and ratios.
_RULE_ASTAR_CONTRAST = 3.0
# The z-score (contrast over the photo's typical a* response) is what tells a spot on clean,
# even skin from one of many red marks on troubled skin, where the learned score decides.
_RULE_ASTAR_Z = 15.0
_RULE_MIN_ROUNDNESS = 0.5

# Kind: pustule when the centre is this much lighter (L*) than the rim and not redder.
_PUSTULE_L_EXCESS = 2.5
# Pustule rule: how much lighter (L*) a head must be than its rim.
_PUSTULE_RULE_PALE = 5.0

# Views the networks average on a face: the photo and its left-right mirror (not the
# upside-down ones). Measured on the ACNE04 dev photos through the face path, count error
# 4.04 with all four views, 4.08 with two, 4.24 with one; a 12 MP photo costs 8.4x, 6.3x and
# 6.4x its decode time.
_FACE_MIRRORS = 2

# A rule score at least this high makes a spot a lesion on a face (see _rule_spots); at least
# _RULE_FAINT, a faint spot. Measured on the ACNE04 dev photos through the face path: without
# rule spots count error 4.02, lesion F1 0.679; accepting at 0.5, 4.08 / 0.668; at 0.8 (and
# the spots from 0.25 faint), 3.96 / 0.673; at 0.95, 3.96 / 0.674. Without them a clear red
# disc on even skin is missed (tests/lesions/test_reader.py).
_RULE_ACCEPT = 0.8
_RULE_FAINT = 0.25


#: A lesion read on a face is at least this much redder (a*) than its surroundings. Measured
# on the ACNE04 dev photos through the face path and on painted courses (four views, before
# the rule spots were added): at 0, count error 3.70 / lesion F1 0.682 and 0.69 on the
# courses (hair read as lesions); at 1.5, 3.94 / 0.681 and 0.87; at 2, 4.36 / 0.681 and 0.89
# (real lesions annotated without redness lost).
FACE_MIN_A_EXCESS = 1.5

#: Scale (network-input pixels per millimetre of skin) at which the density networks read a
#: face. The faces in the 640 px ACNE04 training photos have a median pupil distance of about
#: 209 px (MediaPipe, in 3-D); the networks read those photos best at RUN_SHORT_SIDE (380 px)
#: on the short side, where that pupil distance, 63 mm on an average adult, spans 124 px.
FACE_READ_PX_PER_MM = 209.0 * RUN_SHORT_SIDE / 640.0 / INTER_OCULAR_MM

#: Two lesions on a face closer than this (mm) may be read as one. The density map's peaks are
#: local maxima over 3 x 3 of its cells, so none are closer than two cells (2 * STRIDE network
#: pixels, 4.1 mm); measured on pairs of painted lesions (radius 1.2-2 mm) on even skin, 4 mm
#: apart they are always read as one, 5 mm apart once in six, 6 mm apart never
#: (tests/lesions/test_reader.py).
FACE_SEPARATION_MM = 1.5 * 2 * STRIDE / FACE_READ_PX_PER_MM

# Faint spots on a face (kept to follow a lesion through a day it reads faintly, never counted):
# density peaks of at least this mass, at least this much redder (a*) than their surroundings.
_FAINT_MIN_MASS = 0.03
_FAINT_MIN_A_EXCESS = 0.5
#: A listed peak of the whole-face read with less density mass than this is a faint spot, not a
#: lesion: on wrinkled or coarse skin the networks spread mass thinly over the texture, and the
#: calibrated count lists those thin peaks. Tuned on the ACNE04 dev faces (count error 3.96 ->
#: 3.84 per photo; 0.2 raised it to 4.36); on the held-out training faces 3.48 -> 3.45.
#: Synthetic courses of the astronaut (8): count error 1.06 -> 0.39, F1 0.90 -> 0.955; phantoms
#: on four faces, painted: count error 5.4 -> 3.1.
_FACE_MIN_MASS = 0.15

# Tuned by cross-validation on the ACNE04 training photos (benchmarks/train_lesion_model.py);
# the model file carries its own value, this is used when it does not.
_DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Lesion:
    """One inflammatory acne lesion found in a photo.

    Parameters
    ----------
    x, y : float
        Centre in the image's own pixel coordinates (x to the right, y down; the centre of
        the top-left pixel is (0, 0)).
    radius_px : float
        Approximate radius of the red area, in pixels of the same image.
    kind : {"papule", "pustule"}
        A pustule has a pale (white-yellow) centre; a papule does not.
    confidence : float
        0..1, how sure the detector is that this is an inflammatory lesion.
    """

    x: float
    y: float
    radius_px: float
    kind: str
    confidence: float

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.x) and math.isfinite(self.y)):
            raise ValueError(f"centre must be finite, got ({self.x}, {self.y})")
        if not (math.isfinite(self.radius_px) and self.radius_px > 0):
            raise ValueError(f"radius_px must be a positive number, got {self.radius_px}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")

    def to_json(self) -> dict[str, float | str]:
        """Return a JSON-ready dict: ``{"x", "y", "radius", "kind", "confidence"}``.

        Positions and radius are rounded to 0.1 px, confidence to 0.001.
        """
        return {
            "x": round(self.x, 1),
            "y": round(self.y, 1),
            "radius": round(self.radius_px, 1),
            "kind": self.kind,
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True)
class LesionRead:
    """What :func:`read_lesions` found: the lesions counted and the faint spots.

    ``faint`` are spots the reader is unsure of (on a face: weaker than the counted ones, or
    less red than a lesion must be). They are not lesions and never counted; a course uses
    them to keep a lesion it follows through a day on which it reads faintly. Close-ups and
    the candidate path report none.
    """

    lesions: tuple[Lesion, ...]
    faint: tuple[Lesion, ...] = ()


def closeup_px_per_mm(shape: tuple[int, ...]) -> float:
    """Return a default scale for a close-up photo of a cheek or half a face.

    Without anything of known size in the frame, the best guess is that the short side of a
    close-up spans about 200 mm of face (half a face with some margin, as in the ACNE04
    photos: a 640 x 640 ACNE04 photo gives 3.2 px/mm, and palpebral fissures, about 30 mm
    long, measure roughly 90-110 px there). The guess can be off by a factor of 1.5 either
    way; the candidate detector's scale range and the training on photos of varied framing
    absorb that. Close-ups are read by the density network (:mod:`monitor.lesions.density`), which
    assumes the same framing and does not use this scale; the candidate detector uses it only
    if the network's files are missing.

    Parameters
    ----------
    shape : tuple of int
        ``image.shape``; only the first two entries (height, width) are used.

    Returns
    -------
    float
        Pixels per millimetre.
    """
    if len(shape) < 2 or min(shape[:2]) <= 0:
        raise ValueError(f"shape must start with a positive height and width, got {shape}")
    return float(min(shape[0], shape[1])) / _CLOSEUP_FRAME_MM


# --------------------------------------------------------------------------------------------
# Colour and blurring helpers


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"rgb must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 sRGB, got dtype {rgb.dtype}")
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"rgb must be at least 16 x 16 pixels, got {rgb.shape[:2]}")


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{name} must have the image's shape {shape}, got {mask.shape}")
    return mask.astype(bool, copy=False)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of uint8 sRGB as float32: L* 0..100, a* and b* roughly -128..127."""
    return cv2.cvtColor(rgb.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; large sigmas are done on a reduced copy (same result within ~1 %)."""
    h, w = image.shape[:2]
    factor = 1
    while sigma_px / factor > 2.5 and min(h, w) // (2 * factor) >= 16:
        factor *= 2
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(
        image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    # Area averaging already blurred by about factor / 2 pixels.
    rest = math.sqrt(max(sigma_px**2 - (0.5 * factor) ** 2, 0.25)) / factor
    small = cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _fill_outside(lab: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Replace pixels outside ``mask`` with the nearby masked colour (normalised convolution)."""
    if mask.all():
        return lab
    m8 = mask.astype(np.uint8)
    num = _blur(cv2.copyTo(lab, m8, np.zeros_like(lab)), sigma_px)
    den = _blur(m8.astype(np.float32), sigma_px)
    fill = cv2.divide(num, cv2.merge([np.maximum(den, np.float32(1e-3))] * 3))
    far = den < 1e-3
    if far.any():
        mean = np.empty_like(fill)
        mean[:] = np.asarray(cv2.mean(lab, mask=m8)[:3], dtype=np.float32)
        cv2.copyTo(mean, far.view(np.uint8), fill)
    cv2.copyTo(lab, m8, fill)
    return fill


# --------------------------------------------------------------------------------------------
# Skin by colour


def skin_mask_by_colour(rgb: np.ndarray, *, like: np.ndarray | None = None) -> np.ndarray:
    """Find skin by colour in a close-up photo (no face landmarks needed).

    A broad CIELAB rule (light enough, warm hue, some chroma) picks seed pixels; the photo's
    own skin colour (median and spread of the seeds in ``a*``/``b*``/``L*``) then decides every
    pixel, so the mask follows pale and dark skin and warm or cold light alike. Flat blocky
    areas (privacy mosaics, overlaid text boxes) are removed, the mask is opened and closed,
    holes (spots, pores, highlights) are filled and only large connected parts are kept.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        sRGB photo.
    like : ndarray of shape (H, W), bool, optional
        Pixels known to be skin (e.g. a face's cheeks, placed by landmarks): the seeds are
        taken among them (when at least 100 are), so the skin colour is that skin's. The mask
        may then cover less than 2 % of the photo.

    Returns
    -------
    ndarray of shape (H, W), bool
        True on skin. All False when nothing skin-coloured covers at least 2 % of the photo.
    """
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    # Work near 320 px on the short side: the mask needs no more detail, and it keeps this fast.
    factor = max(1, int(min(h, w) // 320))
    small = (
        rgb
        if factor == 1
        else cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    )
    lab = _lab(small)
    big_l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    hue = np.degrees(np.arctan2(b, a))
    chroma = np.hypot(a, b)
    flat = _flat_blocks(rgb[::factor, ::factor][: small.shape[0], : small.shape[1]])
    seed = (big_l > 25) & (big_l < 97) & (chroma > 5) & (hue > 10) & (hue < 80) & (a > 2) & ~flat
    if like is not None:
        like_small = _resize_mask(np.asarray(like, bool), seed.shape)
        if (seed & like_small).sum() >= 100:
            seed &= like_small
    if seed.mean() < 0.02 and like is None:
        return np.zeros((h, w), dtype=bool)
    # The photo's own skin chromaticity, robustly. Lightness is left out on purpose: shading
    # across a face changes L* far more than it changes a* and b*.
    ca, cb = np.median(a[seed]), np.median(b[seed])
    sa = float(np.clip(1.4826 * np.median(np.abs(a[seed] - ca)), 3.5, 7.0))
    sb = float(np.clip(1.4826 * np.median(np.abs(b[seed] - cb)), 3.5, 7.0))
    dist = np.hypot((a - ca) / (3.0 * sa), (b - cb) / (3.0 * sb))
    # Red spots are skin too: a* above the skin's is not held against a pixel, within reason
    # (a red sticker or lipstick-red garment is far redder still).
    da = a - ca
    redder = (da > 0) & (da < 25) & (np.abs(b - cb) < 2.0 * sb)
    mask = (dist < 1.0) | redder
    mask &= (big_l > 20) & (big_l < 99) & (chroma > 3) & ~flat
    mask = _clean_mask(mask)
    if factor != 1:
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def _flat_blocks(rgb: np.ndarray) -> np.ndarray:
    """Pixels in piecewise-flat areas: mosaics, text boxes, flat graphics (not real skin).

    Real skin always has some grain; a privacy mosaic is made of perfectly flat blocks
    separated by sharp edges. ``rgb`` must be subsampled, not averaged, so the grain survives.
    """
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.int16)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:] = np.abs(np.diff(g, axis=1))
    gy[1:, :] = np.abs(np.diff(g, axis=0))
    flat = ((gx <= 1) & (gy <= 1)).astype(np.float32)
    edge = (np.maximum(gx, gy) >= 6).astype(np.float32)
    flat_frac = cv2.blur(flat, (11, 11))
    edge_frac = cv2.blur(edge, (11, 11))
    blocky = (flat_frac > 0.75) & (edge_frac > 0.02)
    blocky = cv2.dilate(blocky.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return blocky


def _clean_mask(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    k = max(3, int(round(min(h, w) / 100)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, dtype=bool)
    keep[1:] = areas >= max(0.02 * h * w, 0.1 * areas.max())
    m = keep[labels]
    # Fill small holes (spots, pores, highlights), not large ones (eyes, open mouth, stickers).
    holes = ndimage.binary_fill_holes(m) & ~m
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    small = np.zeros(n, dtype=bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= (min(h, w) / 15.0) ** 2
    return m | small[labels]


# --------------------------------------------------------------------------------------------
# Candidates and their features

# Rings around a candidate, in multiples of its radius, where its surroundings are described.
_RING_FACTORS = (0.5, 1.0, 1.6, 2.4)

_FEATURE_NAMES: tuple[str, ...] = (
    *(f"cs_a_{k}" for k in range(_N_CS)),
    *(f"cs_l_{k}" for k in range(_N_CS)),
    *(f"cs_b_{k}" for k in range(_N_CS)),
    "sigma_mm",
    "cs_a_own",
    "cs_a_z",
    "cs_a_rank",
    "cs_l_own",
    "cs_b_own",
    "centre_l_excess",
    "centre_a_excess",
    "centre_b_excess",
    "ring_a_spread",
    "elongation",
    "hess_a_trace",
    "a_own",
    "l_own",
    "b_own",
    "a_bg",
    "l_bg",
    "b_bg",
    "skin_a_median",
    "skin_l_median",
    "skin_b_median",
    "skin_cs_a_mad",
    "texture_l_fine",
    "texture_l_coarse",
    "texture_a_coarse",
    "skin_nearby",
    "neighbours_3mm",
    "neighbours_8mm",
    "highlight_l",
    "px_per_mm_work",
    *(f"ring{i}_{q}" for i in range(len(_RING_FACTORS)) for q in ("a", "a_min", "a_max", "l", "b")),
    "dominance_2r",
    "dominance_5mm",
)


@dataclass(frozen=True)
class _Candidates:
    """Candidates at the working scale: positions, scale index, features (N, F)."""

    y: np.ndarray
    x: np.ndarray
    sigma_px: np.ndarray
    features: np.ndarray
    scale: float  # working pixels per original pixel
    work_px_per_mm: float


def _working_scale(px_per_mm: float) -> float:
    work = min(max(px_per_mm, _MIN_WORK_PX_PER_MM), _MAX_WORK_PX_PER_MM)
    return work / px_per_mm


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-6:
        return image
    h, w = image.shape[:2]
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    return (
        cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    )


def _sample(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear samples of a (H, W) or (H, W, C) image at float positions (clipped)."""
    h, w = image.shape[:2]
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    if image.ndim == 3:
        fx = fx[..., None]
        fy = fy[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _fill_heads(a_star: np.ndarray, ppm: float) -> np.ndarray:
    """Fill pale heads inside red rims (a grey closing of a*), so a pustule is one red blob.

    A pustule's white-yellow head is less red than its rim; without this its a* profile is a
    ring and the blob search finds the rim, not the lesion. Heads are under ~1.2 mm across.
    """
    head_px = max(1, int(round(_HEAD_RADIUS_MM * ppm)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * head_px + 1, 2 * head_px + 1))
    return cv2.morphologyEx(a_star, cv2.MORPH_CLOSE, kernel)


# How far beyond the skin the candidate measures look: three sigmas of the widest surround
# blur, plus a little for the ring samples. Pixels further out cannot change a candidate.
_CONTEXT_MM = 3.0 * _SIGMAS_MM[-1] + 2.0


def _skin_window(skin: np.ndarray, px_per_mm: float) -> tuple[int, int, int, int]:
    """Rows y0:y1 and columns x0:x1 holding all of ``skin`` (not empty) and its context."""
    h, w = skin.shape
    rows = np.flatnonzero(skin.any(axis=1))
    cols = np.flatnonzero(skin.any(axis=0))
    m = int(math.ceil(_CONTEXT_MM * px_per_mm))
    # Start on a multiple of 16: when the detector works at the photo's own scale, the
    # reduced copies of _blur then sample the same grid as on the whole photo.
    y0, x0 = max(int(rows[0]) - m, 0) // 16 * 16, max(int(cols[0]) - m, 0) // 16 * 16
    return y0, min(int(rows[-1]) + m + 1, h), x0, min(int(cols[-1]) + m + 1, w)


def _windowed_candidates(
    rgb: np.ndarray, skin: np.ndarray, px_per_mm: float
) -> tuple[_Candidates, tuple[int, int, int, int]]:
    """Candidates of the skin's window (see :func:`_skin_window`) and that window y0, y1, x0, x1.

    Only the skin and the context its blobs are measured in need processing: on a face crop
    that is about two thirds of the pixels. Candidate positions are relative to the window.
    """
    if skin.any():
        y0, y1, x0, x1 = _skin_window(skin, px_per_mm)
    else:
        (y0, x0), (y1, x1) = (0, 0), skin.shape
    return _find_candidates(rgb[y0:y1, x0:x1], skin[y0:y1, x0:x1], px_per_mm), (y0, y1, x0, x1)


def _find_candidates(rgb: np.ndarray, skin: np.ndarray, px_per_mm: float) -> _Candidates:
    """Candidates and their features at the working scale (skin is at the original scale)."""
    scale = _working_scale(px_per_mm)
    work = _resize(rgb, scale)
    h, w = work.shape[:2]
    skin_w = _resize_mask(skin, (h, w))
    ppm = px_per_mm * scale
    lab_raw = _lab(work)
    lab = _fill_outside(lab_raw, skin_w, 3.0 * ppm)
    lab[..., 1] = _fill_heads(lab[..., 1], ppm)

    sigmas = [s * ppm for s in _SIGMAS_MM]
    blurred = [_blur(lab, s) for s in sigmas]  # each (H, W, 3)
    # a* centre-surround, (K, H, W)
    resp = np.stack(
        [blurred[k][..., 1] - blurred[k + _SURROUND_STEP][..., 1] for k in range(_N_CS)]
    )
    best = resp[0].copy()
    for k in range(1, _N_CS):
        cv2.max(best, resp[k], dst=best)

    # Local maxima of the best-over-scale response, inside skin, above the floor.
    peak_win = max(3, int(round(0.8 * ppm)) | 1)
    dil = cv2.dilate(best, np.ones((peak_win, peak_win), np.uint8))
    peaks = (best >= dil) & (best > _CANDIDATE_FLOOR_ASTAR) & skin_w
    ys, xs = np.nonzero(peaks)
    if ys.size > _MAX_CANDIDATES:
        order = np.argsort(-best[ys, xs])[:_MAX_CANDIDATES]
        ys, xs = ys[order], xs[order]
    n = ys.size
    empty = np.zeros(0, dtype=np.float32)
    if n == 0:
        return _Candidates(
            empty, empty, empty, np.zeros((0, len(_FEATURE_NAMES)), np.float32), scale, ppm
        )

    ks = resp[:, ys, xs].argmax(axis=0)
    # Sub-scale refinement: parabola through the response at k-1, k, k+1 (in log sigma).
    kf = ks.astype(np.float32)
    inner = (ks > 0) & (ks < _N_CS - 1)
    r0 = resp[np.clip(ks - 1, 0, _N_CS - 1), ys, xs]
    r1 = resp[ks, ys, xs]
    r2 = resp[np.clip(ks + 1, 0, _N_CS - 1), ys, xs]
    denom = r0 - 2 * r1 + r2
    offset = np.where(
        inner & (denom < -1e-6), 0.5 * (r0 - r2) / np.where(denom < -1e-6, denom, -1), 0
    )
    kf = kf + np.clip(offset, -0.5, 0.5)
    sigma_mm = _SIGMAS_MM[0] * np.sqrt(2.0) ** kf
    sigma_px = sigma_mm * ppm

    fy = ys.astype(np.float32)
    fx = xs.astype(np.float32)
    cs_at = np.stack(
        [blurred[k][ys, xs] - blurred[k + _SURROUND_STEP][ys, xs] for k in range(_N_CS)]
    )  # (K, N, 3)
    cs_a = cs_at[..., 1].T  # (N, K)
    cs_l = cs_at[..., 0].T
    cs_b = cs_at[..., 2].T
    idx = np.arange(n)
    cs_a_own = cs_a[idx, ks]
    cs_l_own = cs_l[idx, ks]
    cs_b_own = cs_b[idx, ks]

    # Image-wide reference: spread of the a* response over skin at a mid scale.
    mid = resp[2][skin_w]
    skin_lab = lab_raw[skin_w] if skin_w.any() else lab_raw.reshape(-1, 3)
    skin_median = np.median(skin_lab[:: max(1, skin_lab.shape[0] // 20000)], axis=0)
    if mid.size:
        sub = mid[:: max(1, mid.size // 20000)]
        mad = float(1.4826 * np.median(np.abs(sub - np.median(sub))))
    else:
        mad = 1.0
    mad = max(mad, 0.1)
    cs_a_z = cs_a_own / mad
    rank = np.empty(n, dtype=np.float32)
    rank[np.argsort(-cs_a_own)] = np.arange(n, dtype=np.float32)

    # Own-scale blurred colour at the centre and in the background (largest blur).
    own = np.stack([blurred[k][ys, xs] for k in range(len(sigmas))])  # (S, N, 3)
    lab_own = own[ks, idx]  # (N, 3)
    lab_bg = own[-1]

    # Centre against a ring at ~0.9 radius, on the finest blur: pale/yellow heads of pustules.
    fine = blurred[0]
    radius = _RADIUS_PER_SIGMA * sigma_px
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.stack(
        [
            _sample(fine, fy + 0.9 * radius * np.sin(t), fx + 0.9 * radius * np.cos(t))
            for t in angles
        ]
    )  # (8, N, 3)
    centre = fine[ys, xs]
    ring_med = np.median(ring, axis=0)
    centre_excess = centre - ring_med
    ring_a_spread = ring[..., 1].max(axis=0) - ring[..., 1].min(axis=0)
    # Profile of the surroundings, relative to the candidate's background colour: a lesion is a
    # bump that falls off evenly; a pore, a fold or the edge of a red patch does not.
    ring_feats = []
    for factor in _RING_FACTORS:
        pts = (
            np.stack(
                [
                    _sample(
                        fine, fy + factor * radius * np.sin(t), fx + factor * radius * np.cos(t)
                    )
                    for t in angles
                ]
            )
            - lab_bg[None]
        )  # (8, N, 3)
        ring_feats += [
            pts[..., 1].mean(axis=0),
            pts[..., 1].min(axis=0),
            pts[..., 1].max(axis=0),
            pts[..., 0].mean(axis=0),
            pts[..., 2].mean(axis=0),
        ]

    # Hessian of the own-scale a* blur, by central differences one sigma apart.
    d = np.maximum(sigma_px, 1.0)
    own_a = np.stack([blurred[k][..., 1] for k in range(_N_CS)])

    def at(dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=np.float32)
        for k in np.unique(ks):
            sel = ks == k
            out[sel] = _sample(own_a[k], fy[sel] + dy[sel], fx[sel] + dx[sel])
        return out

    zero = np.zeros(n, dtype=np.float32)
    c0 = own_a[ks, ys, xs]
    hxx = (at(zero, d) + at(zero, -d) - 2 * c0) / d**2
    hyy = (at(d, zero) + at(-d, zero) - 2 * c0) / d**2
    hxy = (at(d, d) + at(-d, -d) - at(d, -d) - at(-d, d)) / (4 * d**2)
    tr = hxx + hyy
    disc = np.sqrt((hxx - hyy) ** 2 + 4 * hxy**2)
    lam1 = 0.5 * (tr - disc)  # most negative (strongest curvature of a peak)
    lam2 = 0.5 * (tr + disc)
    elongation = np.where(lam1 < -1e-6, np.clip(lam2 / np.where(lam1 < -1e-6, lam1, -1), -1, 1), 1)
    hess_trace = -tr * sigma_px**2

    # Texture: local standard deviation of L* (fine and coarse) and of a* (coarse).
    l_chan = lab[..., 0]
    a_chan = lab[..., 1]
    s_fine, s_coarse = 1.0 * ppm, 3.0 * ppm
    l_hp = l_chan - blurred[1][..., 0]
    a_hp = a_chan - blurred[1][..., 1]
    tex_fine = np.sqrt(np.maximum(_blur(l_hp * l_hp, s_fine), 0))[ys, xs]
    tex_coarse = np.sqrt(np.maximum(_blur(l_hp * l_hp, s_coarse), 0))[ys, xs]
    tex_a = np.sqrt(np.maximum(_blur(a_hp * a_hp, s_coarse), 0))[ys, xs]
    skin_near = _blur(skin_w.astype(np.float32), 2.0 * ppm)[ys, xs]

    # Crowding: candidates with at least half this one's a* contrast within 3 and 8 mm.
    pos = np.stack([fy, fx], axis=1) / ppm
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    strong = cs_a_own[None, :] >= 0.5 * cs_a_own[:, None]
    neigh3 = ((dist < 3.0) & strong).sum(1) - 1
    neigh8 = ((dist < 8.0) & strong).sum(1) - 1
    # How this candidate compares with the strongest other one nearby (1 = it is the strongest).
    others = np.where(np.eye(n, dtype=bool), -np.inf, cs_a_own[None, :])
    near_2r = dist < np.maximum(2.0 * radius / ppm, 1.0)[:, None]
    top_2r = np.where(near_2r, others, -np.inf).max(axis=1)
    top_5 = np.where(dist < 5.0, others, -np.inf).max(axis=1)
    dom_2r = np.clip(cs_a_own / np.maximum(top_2r, 0.1), 0, 5)
    dom_5 = np.clip(cs_a_own / np.maximum(top_5, 0.1), 0, 5)

    # Specular highlights nearby (glossy skin makes false colour edges).
    highlight = cv2.dilate(lab_raw[..., 0], np.ones((5, 5), np.uint8))[ys, xs] - lab_own[:, 0]

    feats = np.column_stack(
        [
            cs_a,
            cs_l,
            cs_b,
            sigma_mm,
            cs_a_own,
            cs_a_z,
            rank / max(n, 1) * min(n, 100),
            cs_l_own,
            cs_b_own,
            centre_excess[:, 0],
            centre_excess[:, 1],
            centre_excess[:, 2],
            ring_a_spread,
            elongation,
            hess_trace,
            lab_own[:, 1],
            lab_own[:, 0],
            lab_own[:, 2],
            lab_bg[:, 1],
            lab_bg[:, 0],
            lab_bg[:, 2],
            np.full(n, skin_median[1]),
            np.full(n, skin_median[0]),
            np.full(n, skin_median[2]),
            np.full(n, mad),
            tex_fine,
            tex_coarse,
            tex_a,
            skin_near,
            neigh3,
            neigh8,
            highlight,
            np.full(n, ppm),
            *ring_feats,
            dom_2r,
            dom_5,
        ]
    ).astype(np.float32)
    return _Candidates(fy, fx, sigma_px.astype(np.float32), feats, scale, ppm)


# --------------------------------------------------------------------------------------------
# Scores


@dataclass(frozen=True)
class _TreeModel:
    """Gradient-boosted trees as flat arrays (exported from scikit-learn, evaluated in numpy)."""

    feature: np.ndarray  # (T, M) int
    threshold: np.ndarray  # (T, M) float
    left: np.ndarray  # (T, M) int
    right: np.ndarray  # (T, M) int
    value: np.ndarray  # (T, M) float
    is_leaf: np.ndarray  # (T, M) bool
    baseline: float
    depth: int
    min_confidence: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of being a lesion for each row of ``features`` (N, F)."""
        return 1.0 / (1.0 + np.exp(-self.raw(features)))

    def raw(self, features: np.ndarray) -> np.ndarray:
        """Sum of the trees' values and the baseline for each row of ``features`` (N, F)."""
        n_trees, n_nodes = self.feature.shape
        n = features.shape[0]
        # Flat views: one gather per step over all trees and rows at once.
        feature = self.feature.ravel()
        threshold = self.threshold.ravel()
        left = (self.left + np.arange(n_trees)[:, None] * n_nodes).ravel()
        right = (self.right + np.arange(n_trees)[:, None] * n_nodes).ravel()
        is_leaf = self.is_leaf.ravel()
        flat_x = np.ascontiguousarray(features, dtype=np.float64).ravel()
        row_offset = (np.arange(n) * features.shape[1])[None, :]
        node = np.repeat(np.arange(n_trees)[:, None] * n_nodes, n, axis=1)
        for _ in range(self.depth):
            go_left = flat_x[feature[node] + row_offset] <= threshold[node]
            nxt = np.where(go_left, left[node], right[node])
            node = np.where(is_leaf[node], node, nxt)
        return self.baseline + self.value.ravel()[node].sum(axis=0)


@functools.lru_cache(maxsize=1)
def _load_model(path: Path = _MODEL_PATH) -> _TreeModel | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        names = tuple(str(s) for s in data["feature_names"])
        if names != _FEATURE_NAMES:
            raise RuntimeError(
                f"{path.name} was trained on other candidate features; "
                "retrain it with benchmarks/train_lesion_model.py"
            )
        return _TreeModel(
            feature=data["feature"].astype(np.intp),
            threshold=data["threshold"].astype(np.float64),
            left=data["left"].astype(np.intp),
            right=data["right"].astype(np.intp),
            value=data["value"].astype(np.float64),
            is_leaf=data["is_leaf"].astype(bool),
            baseline=float(data["baseline"]),
            depth=int(data["depth"]),
            min_confidence=float(data["min_confidence"]),
        )


def _feature(cands: _Candidates, name: str) -> np.ndarray:
    return cands.features[:, _FEATURE_NAMES.index(name)]


def _rule_score(cands: _Candidates) -> np.ndarray:
    """0..1 for a clearly red, round, lesion-sized spot standing alone on even skin.

    This path needs no model: a strong papule on clean skin (or a painted test lesion) is a
    lesion whatever a model trained on one data set thinks. Each condition is a soft step.
    """
    contrast = _feature(cands, "cs_a_own")
    z = _feature(cands, "cs_a_z")
    elong = _feature(cands, "elongation")
    darkening = -_feature(cands, "cs_l_own") / np.maximum(contrast, 1e-3)
    tex = _feature(cands, "texture_a_coarse")
    sigma_mm = _feature(cands, "sigma_mm")
    dominance = _feature(cands, "dominance_2r")
    centre_pale = _feature(cands, "centre_l_excess")  # a pustule's head

    def step(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.clip((v - lo) / (hi - lo), 0.0, 1.0)

    return (
        step(contrast, _RULE_ASTAR_CONTRAST - 1.0, _RULE_ASTAR_CONTRAST)
        * step(z, 0.75 * _RULE_ASTAR_Z, _RULE_ASTAR_Z)
        * step(elong, 0.3, _RULE_MIN_ROUNDNESS)
        # Blood darkens skin a little as it reddens it (a flat red patch or a lip does not;
        # a brown mole darkens it far more than it reddens it); or the centre is pale (pus).
        # Very small spots barely darken at their blob scale; a very strong red contrast
        # stands in for the darkening there.
        * np.maximum.reduce([step(darkening, 0.2, 0.45), step(centre_pale, 1.0, 3.0),
                             step(z, 18.0, 22.0)])
        * step(-darkening, -3.0, -2.0)
        # Lesion-sized: papules and pustules are under 5 mm across.
        * step(-sigma_mm, -1.7, -1.4)
        # The strongest spot around it, and its redness stands out of the skin's texture.
        * step(dominance, 1.0, 1.5)
        * step(contrast / np.maximum(tex, 1e-3), 2.0, 3.0)
    )


def _pustule_score(cands: _Candidates) -> np.ndarray:
    """0..1 for a pale head in a red rim: a pustule seen as a whole.

    The head is much lighter than the ring around it, the ring is redder than the skin all
    the way round, the spot as a whole stands out in redness, and it is lesion-sized and
    roughly round. Measured on painted pustules against every other candidate of the same
    faces: pale heads score a lightness excess of 8.6 (median; others under 3.4 in 99 %),
    rims an a* excess of 2.8 (minimum round the ring).
    """
    pale = _feature(cands, "centre_l_excess")
    rim = _feature(cands, "ring0_a_min")
    z = _feature(cands, "cs_a_z")
    elong = _feature(cands, "elongation")
    sigma_mm = _feature(cands, "sigma_mm")

    def step(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.clip((v - lo) / (hi - lo), 0.0, 1.0)

    return (step(pale, _PUSTULE_RULE_PALE - 1.5, _PUSTULE_RULE_PALE)
            * step(rim, 1.0, 2.0)
            * step(z, 3.5, 5.0)
            * step(elong, 0.2, 0.4)
            * step(-sigma_mm, -2.2, -1.9))


def _score(cands: _Candidates) -> tuple[np.ndarray, float]:
    model = _load_model()
    rule = np.maximum(_rule_score(cands), _pustule_score(cands))
    if model is None:
        return rule, _DEFAULT_MIN_CONFIDENCE
    learned = model.predict(cands.features)
    return np.maximum(learned, rule), model.min_confidence


def _suppress(
    y: np.ndarray, x: np.ndarray, r: np.ndarray, score: np.ndarray, ppm: float
) -> np.ndarray:
    """Indices kept best-first, dropping candidates centred inside a lesion already kept.

    A candidate is only ever dropped by a better one, so thresholding before or after this
    gives the same result.
    """
    order = np.argsort(-score, kind="stable")
    ky = np.empty(order.size)
    kx = np.empty(order.size)
    kr = np.empty(order.size)
    kept = np.empty(order.size, dtype=np.intp)
    n = 0
    floor = 0.75 * ppm
    for i in order:
        if n:
            reach = np.maximum(np.maximum(kr[:n], r[i]), floor)
            if np.any((ky[:n] - y[i]) ** 2 + (kx[:n] - x[i]) ** 2 < reach**2):
                continue
        ky[n], kx[n], kr[n], kept[n] = y[i], x[i], r[i], i
        n += 1
    return kept[:n]


def _kind(rgb: np.ndarray, x: float, y: float, radius: float) -> str:
    """Pustule when the centre is clearly lighter and not redder than the rim."""
    h, w = rgb.shape[:2]
    r = max(radius, 1.5)
    half = int(math.ceil(1.3 * r)) + 1
    x0, x1 = max(0, int(round(x)) - half), min(w, int(round(x)) + half + 1)
    y0, y1 = max(0, int(round(y)) - half), min(h, int(round(y)) + half + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return "papule"
    patch = _lab(rgb[y0:y1, x0:x1])
    patch = cv2.GaussianBlur(patch, (0, 0), max(0.6, 0.12 * r))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(yy - y, xx - x)
    centre = d <= max(0.45 * r, 1.0)
    ring = (d >= 0.6 * r) & (d <= 1.0 * r)
    if not centre.any() or not ring.any():
        return "papule"
    c_idx = np.argmax(np.where(centre, patch[..., 0], -np.inf))
    c = patch.reshape(-1, 3)[c_idx]
    ring_lab = np.median(patch[ring], axis=0)
    lighter = c[0] - ring_lab[0]
    redder = c[1] - ring_lab[1]
    return "pustule" if lighter > _PUSTULE_L_EXCESS and redder < 1.0 else "papule"


def _centred_inside(
    xs: np.ndarray, ys: np.ndarray, skin: np.ndarray, exclude: np.ndarray | None
) -> np.ndarray:
    """Which centres (pixel coordinates of the masks) lie on ``skin`` and off ``exclude``."""
    h, w = skin.shape
    xi = np.clip(np.round(xs).astype(np.intp), 0, w - 1)
    yi = np.clip(np.round(ys).astype(np.intp), 0, h - 1)
    inside = skin[yi, xi]
    if exclude is not None:
        inside &= ~exclude[yi, xi]
    return inside


def _select(
    cands: _Candidates,
    score: np.ndarray,
    threshold: float,
    skin: np.ndarray,
    exclude: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Suppress duplicates, apply the threshold and masks; x, y, radius (original px), score."""
    empty = np.zeros(0, dtype=np.float64)
    if cands.y.size == 0:
        return empty, empty, empty, empty
    radius = _RADIUS_PER_SIGMA * cands.sigma_px
    ppm = cands.work_px_per_mm
    above = np.nonzero(score >= threshold)[0]
    keep = above[_suppress(cands.y[above], cands.x[above], radius[above], score[above], ppm)]
    if keep.size == 0:
        return empty, empty, empty, empty
    inv = 1.0 / cands.scale
    xs = (cands.x[keep] + 0.5) * inv - 0.5
    ys = (cands.y[keep] + 0.5) * inv - 0.5
    inside = _centred_inside(xs, ys, skin, exclude)
    conf = np.clip(score[keep], 0.0, 1.0)
    return (
        xs[inside].astype(np.float64),
        ys[inside].astype(np.float64),
        (radius[keep] * inv)[inside].astype(np.float64),
        conf[inside].astype(np.float64),
    )


def _closeup_peaks(
    net: CloseupNet,
    output: np.ndarray,
    prepared: PreparedInput,
    skin: np.ndarray,
    exclude: np.ndarray | None,
    min_confidence: float | None,
) -> tuple[DensityPeaks, np.ndarray, np.ndarray]:
    """The peaks of ``net``'s map, which of them are listed as lesions, which lie on the skin.

    See :func:`_closeup_lesions` for which peaks are listed; both masks are over the peaks.
    """
    peaks = density_peaks(output, prepared, skin=skin)
    inside = _centred_inside(peaks.x, peaks.y, skin, exclude)
    if min_confidence is not None:
        counted = peaks.mass >= float(min_confidence)
        return peaks, inside & counted, inside
    count = max(round(net.count(peaks.expected_count)), 0)
    counted = np.zeros(peaks.x.shape, bool)
    counted[:count] = True
    listed = inside & counted
    short = count - int(counted.sum())
    if short > 0:
        # Crowded lesions merge into fewer peaks than the count: the rest are read off what
        # the peaks leave of the map (on a dev close-up of 52 lesions, 35 peaks for 54).
        more = residual_peaks(output, prepared, peaks, short, skin=skin)
        more_inside = _centred_inside(more.x, more.y, skin, exclude)
        peaks = _joined(peaks, more)
        inside = np.concatenate([inside, more_inside])
        listed = np.concatenate([listed, more_inside])
    return peaks, listed, inside


def _joined(first: DensityPeaks, then: DensityPeaks) -> DensityPeaks:
    """``first``'s peaks followed by ``then``'s (``first``'s total)."""
    return DensityPeaks(*(np.concatenate([getattr(first, f), getattr(then, f)])
                          for f in ("x", "y", "side", "mass")), first.expected_count)


def _peak_lesions(rgb: np.ndarray, peaks: DensityPeaks, which: np.ndarray) -> list[Lesion]:
    """Lesions at the peaks indexed by ``which``; confidence is the peak's mass (capped at 1)."""
    h, w = rgb.shape[:2]
    found = []
    for i in which:
        x = float(np.clip(peaks.x[i], 0.0, w - 1.0))
        y = float(np.clip(peaks.y[i], 0.0, h - 1.0))
        radius = max(0.5 * float(peaks.side[i]), 1.0)
        conf = float(np.clip(peaks.mass[i], 0.0, 1.0))
        found.append(Lesion(x=x, y=y, radius_px=radius, kind=_kind(rgb, x, y, radius),
                            confidence=conf))
    return found


def _closeup_lesions(
    net: CloseupNet,
    rgb: np.ndarray,
    skin: np.ndarray,
    exclude: np.ndarray | None,
    min_confidence: float | None,
    *,
    short_side: int | None = None,
    mirrors: int | None = None,
    faint_mass: float | None = None,
) -> tuple[tuple[Lesion, ...], tuple[Lesion, ...]]:
    """Lesions of a close-up read off the density network's map (:mod:`monitor.lesions.density`).

    Only the map's mass on ``skin`` counts. With the default threshold, that mass, calibrated
    to annotators' counts (:class:`monitor.lesions.density.CountCalibration`), is the number of
    lesions and that many of its strongest peaks are listed (less any inside ``exclude``;
    where crowded lesions left fewer peaks than that, the rest are placed where the peaks
    leave most of the map's mass, :func:`monitor.lesions.density.residual_peaks`); with
    ``min_confidence``, every peak whose mass is at least that. The confidence of a lesion
    is the density mass around its peak (capped at 1).

    Returns (lesions, faint): with ``faint_mass``, the other peaks on the skin whose mass is
    at least that, strongest first; otherwise no faint ones.
    """
    output, prepared = net.run(rgb, short_side=short_side, mirrors=mirrors)
    peaks, listed, inside = _closeup_peaks(net, output, prepared, skin, exclude, min_confidence)
    lesions = _peak_lesions(rgb, peaks, np.nonzero(listed)[0])
    faint = []
    if faint_mass is not None:
        faint = _peak_lesions(rgb, peaks,
                              np.nonzero(inside & ~listed & (peaks.mass >= faint_mass))[0])
    return tuple(lesions), tuple(faint)


_rule_pool: tuple[int, ThreadPoolExecutor] | None = None


def _rule_worker() -> ThreadPoolExecutor:
    """This process's worker threads for the rule scores of :func:`_face_lesions`.

    Kept, not made per call: a fresh thread allocates its arrays in fresh memory and pays the
    page faults (a per-call thread saved nothing). Made again in a forked child, which
    inherits the parent's pool without its threads.
    """
    global _rule_pool
    if _rule_pool is None or _rule_pool[0] != os.getpid():
        _rule_pool = (os.getpid(), ThreadPoolExecutor(max_workers=2,
                                                      thread_name_prefix="rule-spots"))
    return _rule_pool[1]


def _face_lesions(
    net: CloseupNet,
    rgb: np.ndarray,
    skin: np.ndarray,
    exclude: np.ndarray | None,
    px_per_mm: float,
    min_confidence: float | None,
) -> LesionRead:
    """Lesions of a face read by the density networks at their own physical scale.

    The photo is read so that a millimetre of skin spans :data:`FACE_READ_PX_PER_MM` network
    pixels, as on the close-ups they learnt from; then as :func:`_closeup_lesions`. A lesion
    must be redder than the skin around it (:func:`redness_excess` at least
    :data:`FACE_MIN_A_EXCESS`, the other listed lesions left out of "around"): on a whole
    face the networks also read a blond fringe of hair or the edge of an eyebrow, which is
    seldom that much redder than its surroundings.

    Clear, isolated spots that the rule scores of the candidate path rate at least
    :data:`_RULE_ACCEPT` (round, clearly red, far above the skin's own variation) and that no
    network lesion covers are added: read at 2 px/mm the networks miss a lone painted disc.
    Those rated from :data:`_RULE_FAINT` are faint spots: a rule spot near its threshold comes
    and goes from one photo of the same skin to the next.

    A listed peak must also hold a density mass of at least :data:`_FACE_MIN_MASS`: on
    wrinkled or coarse skin the networks spread thin mass over the texture.

    The calibrated count says how many lesions the skin holds; the two tests say which peaks
    they are. The place of a listed peak turned down goes to the strongest of the next peaks
    that pass both tests, so the count does not lose a lesion for every fringe of hair or
    crease among the strongest peaks where real lesions are just below them (crowded skin).
    On clear skin no peak below the count passes both tests, and the place stays empty.
    Measured through the whole-face path: ACNE04 dev count error 4.04 -> 3.98 per photo
    (bias -1.50 -> -1.12, F1 0.661 -> 0.660), the held-out training faces 3.73 -> 3.56
    (bias -0.06 -> +0.24, F1 0.663 -> 0.664); painted courses of the astronaut F1 0.940 ->
    0.941, the phantoms on four faces unchanged; re-shoots count spread 0.043 / 0.190 and
    held-out 0.053 / 0.143 (0.044 / 0.190 and 0.057 / 0.143 before).

    The faint spots are the other peaks of mass at least :data:`_FAINT_MIN_MASS` and the
    listed ones not red enough or too thin, that are still :data:`_FAINT_MIN_A_EXCESS` redder
    than around.
    """
    short_side = max(16, round(min(rgb.shape[:2]) * FACE_READ_PX_PER_MM / px_per_mm))
    # The rule scores run beside the networks: both release the interpreter lock for most of
    # their work. On two cores a 12 MP photo's whole analysis takes 280 ms instead of 370.
    rule_job = _rule_worker().submit(_rule_spots, rgb, skin, exclude, px_per_mm)
    listed, faint = _closeup_lesions(net, rgb, skin, exclude, min_confidence,
                                     short_side=short_side, mirrors=_FACE_MIRRORS,
                                     faint_mass=_FAINT_MIN_MASS)
    rule = rule_job.result()
    # In crowded skin the ring around a lesion is full of its neighbours, and the filter
    # dropped 5-7 of ~55 lesions of a crowded face. With their discs left out, the count
    # error went 4.27 -> 4.04 on the 56 dev faces and 3.80 -> 3.69 on the 121 held-out
    # training faces (bias -0.43 -> +0.06; F1 0.660 -> 0.661 and 0.659 -> 0.660).
    occupied = None if not listed else disc_mask(
        rgb.shape[:2], [(f.x, f.y) for f in listed], [f.radius_px for f in listed])
    found, weak = [], []
    vacant = 0  # listed peaks turned down, whose places the next peaks may take
    ordered = [(f, True) for f in listed] + [
        (f, False) for f in sorted(faint, key=lambda les: -les.confidence)]
    for lesion, is_listed in ordered:
        excess = redness_excess(rgb, lesion, px_per_mm, occupied=occupied)
        lesion_like = excess >= FACE_MIN_A_EXCESS and lesion.confidence >= _FACE_MIN_MASS
        if lesion_like and (is_listed or vacant > 0):
            found.append(lesion)
            if not is_listed:
                vacant -= 1
        else:
            if is_listed:
                vacant += 1
            if excess >= _FAINT_MIN_A_EXCESS:
                weak.append(lesion)
    for spot in rule:
        covered = any(math.hypot(spot.x - f.x, spot.y - f.y) < max(spot.radius_px, f.radius_px)
                      for f in found)
        if not covered:
            (found if spot.confidence >= _RULE_ACCEPT else weak).append(spot)
    weak = [w for w in weak
            if not any(math.hypot(w.x - f.x, w.y - f.y) < max(w.radius_px, f.radius_px)
                       for f in found)]
    return LesionRead(tuple(sorted(found, key=lambda les: -les.confidence)),
                      tuple(sorted(weak, key=lambda les: -les.confidence)))


def _rule_spots(
    rgb: np.ndarray, skin: np.ndarray, exclude: np.ndarray | None, px_per_mm: float
) -> list[Lesion]:
    """Candidates that the rule scores rate at least :data:`_RULE_FAINT`: round, clearly red
    spots on even skin (those of at least :data:`_RULE_ACCEPT` are lesions)."""
    cands, (y0, y1, x0, x1) = _windowed_candidates(rgb, skin, px_per_mm)
    score = np.maximum(_rule_score(cands), _pustule_score(cands))
    xs, ys, rs, conf = _select(cands, score, _RULE_FAINT, skin[y0:y1, x0:x1],
                               None if exclude is None else exclude[y0:y1, x0:x1])
    xs, ys = xs + x0, ys + y0
    return [Lesion(x=float(x), y=float(y), radius_px=float(r),
                   kind=_kind(rgb, float(x), float(y), float(r)), confidence=float(c))
            for x, y, r, c in zip(xs, ys, rs, conf, strict=True)]


def disc_mask(shape: tuple[int, int], centres: Sequence[tuple[float, float]] | np.ndarray,
              radii: Sequence[float] | np.ndarray) -> np.ndarray:
    """Filled discs (centres x, y and radii in pixels, at least 1) as a boolean mask."""
    mask = np.zeros(shape, np.uint8)
    for (x, y), r in zip(centres, radii, strict=True):
        cv2.circle(mask, (int(round(x)), int(round(y))), max(1, int(round(r))), 1, -1)
    return mask.astype(bool)


def redness_excess(rgb: np.ndarray, lesion: Lesion, px_per_mm: float, *,
                    occupied: np.ndarray | None = None) -> float:
    """How much redder a lesion is than the skin around it, in CIELAB a* units.

    The upper quartile of a* on the lesion's disc (radius at least 0.75 mm) minus the median
    a* on the ring from 1.5 to 2.5 radii, leaving out the ring's pixels in ``occupied`` (the
    discs of the other lesions) while at least a quarter of it is left.
    """
    h, w = rgb.shape[:2]
    r = max(lesion.radius_px, 0.75 * px_per_mm, 1.5)
    half = int(math.ceil(2.5 * r)) + 1
    x, y = lesion.x, lesion.y
    x0, x1 = max(0, int(round(x)) - half), min(w, int(round(x)) + half + 1)
    y0, y1 = max(0, int(round(y)) - half), min(h, int(round(y)) + half + 1)
    patch = _lab(rgb[y0:y1, x0:x1])[..., 1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(yy - y, xx - x)
    around = (d > 1.5 * r) & (d <= 2.5 * r)
    if occupied is not None:
        clear = around & ~occupied[y0:y1, x0:x1]
        if clear.sum() >= 0.25 * around.sum():
            around = clear
    disc, ring = patch[d <= r], patch[around]
    if disc.size == 0 or ring.size == 0:
        return 0.0
    return float(np.percentile(disc, 75) - np.median(ring))


# --------------------------------------------------------------------------------------------
# Public entry point


def detect_lesions(
    rgb: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    px_per_mm: float | None = None,
    exclude_mask: np.ndarray | None = None,
    min_confidence: float | None = None,
) -> tuple[Lesion, ...]:
    """Find inflammatory acne lesions (papules, pustules) in a photo of skin.

    The lesions of :func:`read_lesions` (see there for the parameters).

    Returns
    -------
    tuple of Lesion
        Most confident first, in the photo's own pixel coordinates; empty if none.
    """
    return read_lesions(rgb, skin_mask=skin_mask, px_per_mm=px_per_mm,
                        exclude_mask=exclude_mask, min_confidence=min_confidence).lesions


def read_lesions(
    rgb: np.ndarray,
    *,
    skin_mask: np.ndarray | None = None,
    px_per_mm: float | None = None,
    exclude_mask: np.ndarray | None = None,
    min_confidence: float | None = None,
) -> LesionRead:
    """Find inflammatory acne lesions (papules, pustules) in a photo of skin, and faint spots.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        sRGB photo (or face crop).
    skin_mask : ndarray of shape (H, W), bool, optional
        Where to look: only lesions centred inside it are returned. ``None`` finds skin by
        colour with :func:`skin_mask_by_colour`.
    px_per_mm : float, optional
        Scale of the photo in pixels per millimetre (for a face crop, from the inter-ocular
        distance). ``None`` assumes a close-up, see :func:`closeup_px_per_mm`.
    exclude_mask : ndarray of shape (H, W), bool, optional
        Features that were already there (moles, freckles, old marks): lesions centred inside
        it are dropped.
    min_confidence : float, optional
        Report lesions at least this confident (0..1). ``None`` uses the threshold tuned by
        cross-validation when the model was trained; on a close-up (``px_per_mm`` not given)
        it reports as many of the density map's strongest peaks as the map's calibrated total
        mass.

    Returns
    -------
    LesionRead
        ``lesions`` most confident first, in the photo's own pixel coordinates (empty if
        none), and the ``faint`` spots, strongest first.
    """
    _check_rgb(rgb)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    skin = _check_mask(skin_mask, shape, "skin_mask")
    exclude = _check_mask(exclude_mask, shape, "exclude_mask")
    closeup = px_per_mm is None
    if px_per_mm is None:
        px_per_mm = closeup_px_per_mm(rgb.shape)
    try:
        scale_ok = math.isfinite(float(px_per_mm)) and float(px_per_mm) > 0
    except (TypeError, ValueError):
        scale_ok = False
    if not scale_ok:
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be within 0..1, got {min_confidence}")
    if skin is None:
        skin = skin_mask_by_colour(rgb)
    if not skin.any():
        return LesionRead(())
    net = load_closeup_net()
    if net is not None:
        if closeup:
            return LesionRead(_closeup_lesions(net, rgb, skin, exclude, min_confidence)[0])
        return _face_lesions(net, rgb, skin, exclude, float(px_per_mm), min_confidence)

    cands, (y0, y1, x0, x1) = _windowed_candidates(rgb, skin, float(px_per_mm))
    skin = skin[y0:y1, x0:x1]
    exclude = None if exclude is None else exclude[y0:y1, x0:x1]
    score, tuned = _score(cands)
    threshold = tuned if min_confidence is None else float(min_confidence)
    xs, ys, rs, conf = _select(cands, score, threshold, skin, exclude)
    xs, ys = xs + x0, ys + y0
    return LesionRead(tuple(
        Lesion(
            x=float(x),
            y=float(y),
            radius_px=float(r),
            kind=_kind(rgb, float(x), float(y), float(r)),
            confidence=float(c),
        )
        for x, y, r, c in zip(xs, ys, rs, conf, strict=True)
    ))
