"""Redness: CIELAB a* and the erythema index over the skin, per facial region.

Definitions (all on colour-normalised linear RGB, see :mod:`monitor.imaging.colour`):

- ``mean_a_star``: mean CIELAB (D65) a* of the skin. a* is the red–green axis of CIELAB; skin
  redness from blood raises it (Takiwaki 1998, "Measurement of skin color: practical application
  and theoretical considerations", J Med Invest 44:121–126).
- ``erythema_index``: mean of ``100 * log10(R / G)`` over the skin, in linear light: the
  reflectance-based erythema index of Dawson et al. (1980, Phys Med Biol 25:695–709),
  ``EI = 100 [log10(1/G) - log10(1/R)]``, applied to camera RGB as in Yamamoto et al. (2008,
  "Derivation of erythema index from RGB images", Skin Res Technol 14:26–34).
- ``index`` (the headline number): how much redder the skin is than in the reference photo,
  ``mean_a_star - reference mean_a_star``, in CIELAB a* units (0 = as in the reference photo;
  +1 is a just-noticeable difference of colour; diffuse post-procedure erythema reaches +5..+15).
  Spots found by lesion detection are left out of it: they are counted separately, and the
  index follows the diffuse redness.
- ``red_fraction``: the share of skin redder than the reference photo's 90th percentile of a*
  (about 0.10 for the reference photo itself).

Skin pixels far from the skin's typical lightness (hair strands, deep shadow, shine) are left
out before averaging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from monitor.errors import NoSkinFound
from monitor.imaging.colour import to_lab

__all__ = ["Redness", "RednessBaseline", "measure_redness", "redness_map"]

_LIGHTNESS_BAND = 22.0  # L* units around the skin's median lightness that count as skin
_MIN_PIXELS = 30
_TOO_LITTLE_SKIN = ("We could not see enough evenly lit skin in this photo to measure its "
                    "redness. Take it in soft, even light, with the skin filling the frame.")


@dataclass(frozen=True)
class RednessBaseline:
    """The reference photo's skin, that every photo's redness is compared with."""

    mean_a_star: float
    by_region: Mapping[str, float]
    threshold_a_star: float  # 90th percentile of the reference skin's a*


@dataclass(frozen=True)
class Redness:
    """Redness of one photo (see the module docstring for each figure's definition)."""

    index: float | None
    mean_a_star: float
    erythema_index: float
    red_fraction: float | None
    pixels: int
    threshold_a_star: float
    by_region: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)

    def baseline(self) -> RednessBaseline:
        """This photo as the reference that others are compared with."""
        return RednessBaseline(
            mean_a_star=self.mean_a_star,
            by_region={k: v["mean_a_star"] for k, v in self.by_region.items()
                       if v["mean_a_star"] is not None},
            threshold_a_star=self.threshold_a_star,
        )

    def to_json(self) -> dict:
        def r(v):
            return None if v is None else round(float(v), 3)
        return {
            "index": r(self.index),
            "units": "CIELAB a* above the reference photo's skin",
            "mean_a_star": r(self.mean_a_star),
            "erythema_index": r(self.erythema_index),
            "red_fraction": r(self.red_fraction),
            "pixels": self.pixels,
            "by_region": {name: {k: (r(v) if isinstance(v, float) else v)
                                 for k, v in figures.items()}
                          for name, figures in self.by_region.items()},
        }


def _figures(lab: np.ndarray, ei: np.ndarray, mask: np.ndarray, threshold: float,
             reference_a: float | None) -> dict:
    count = int(mask.sum())
    if count < _MIN_PIXELS:
        return {"index": None, "mean_a_star": None, "erythema_index": None,
                "red_fraction": None, "pixels": count}
    a = lab[..., 1][mask]
    mean_a = float(a.mean())
    return {
        "index": None if reference_a is None else mean_a - reference_a,
        "mean_a_star": mean_a,
        "erythema_index": float(ei[mask].mean()),
        "red_fraction": float((a > threshold).mean()),
        "pixels": count,
    }


def measure_redness(linear_rgb: np.ndarray, skin: np.ndarray,
                    regions: Mapping[str, np.ndarray], *,
                    baseline: RednessBaseline | None = None,
                    exclude: np.ndarray | None = None) -> Redness:
    """Measure redness over the skin and each region.

    Parameters
    ----------
    linear_rgb : ndarray of shape (H, W, 3), float32
        The photo in colour-normalised linear RGB (:meth:`ColourCorrection.apply`).
    skin : ndarray of shape (H, W), bool
        Skin of the face.
    regions : mapping of str to ndarray of shape (H, W), bool
        Skin of each facial region.
    baseline : RednessBaseline, optional
        The reference photo's figures; without it (the reference photo itself) the index is 0
        and the red fraction uses this photo's own 90th percentile.
    exclude : ndarray of shape (H, W), bool, optional
        Pixels to leave out (spots found by lesion detection).

    Returns
    -------
    Redness

    Raises
    ------
    NoSkinFound
        The skin mask is empty, or fewer than :data:`_MIN_PIXELS` of its pixels are left once
        the spots and the pixels far lighter or darker than the skin's median (glare, shadow)
        are left out.
    """
    if linear_rgb.shape[:2] != skin.shape:
        raise ValueError(f"skin mask shape {skin.shape} does not match image "
                         f"{linear_rgb.shape[:2]}")
    x0, y0, box_w, box_h = cv2.boundingRect(skin.astype(np.uint8))
    if box_w == 0:
        raise NoSkinFound(_TOO_LITTLE_SKIN)
    y1, x1 = y0 + box_h, x0 + box_w
    window = (slice(y0, y1), slice(x0, x1))
    lin = linear_rgb[window]
    lab = to_lab(lin)
    ei = 100.0 * np.log10(np.maximum(lin[..., 0], 1e-4) / np.maximum(lin[..., 1], 1e-4))
    mask = skin[window].copy()
    if exclude is not None:
        mask &= ~exclude[window]
    lightness = lab[..., 0]
    median_l = float(np.median(lightness[mask])) if mask.any() else 50.0
    mask &= np.abs(lightness - median_l) < _LIGHTNESS_BAND
    if mask.sum() < _MIN_PIXELS:
        raise NoSkinFound(_TOO_LITTLE_SKIN)

    a_skin = lab[..., 1][mask]
    if baseline is None:
        threshold = float(np.percentile(a_skin, 90))
        reference_a = float(a_skin.mean())
        region_ref: Mapping[str, float] = {}
    else:
        threshold, reference_a = baseline.threshold_a_star, baseline.mean_a_star
        region_ref = baseline.by_region
    whole = _figures(lab, ei, mask, threshold, reference_a)
    by_region = {}
    for name, region in regions.items():
        region_mask = region[window] & mask
        own = None if baseline is None else region_ref.get(name)
        figures = _figures(lab, ei, region_mask, threshold, own)
        if baseline is None and figures["mean_a_star"] is not None:
            figures["index"] = 0.0
        by_region[name] = figures
    return Redness(
        index=whole["index"], mean_a_star=whole["mean_a_star"],
        erythema_index=whole["erythema_index"], red_fraction=whole["red_fraction"],
        pixels=whole["pixels"], threshold_a_star=threshold, by_region=by_region,
    )


def redness_map(linear_rgb: np.ndarray, skin: np.ndarray, *,
                baseline: RednessBaseline | None = None) -> np.ndarray:
    """Per-pixel a* above the reference skin's mean, for overlays.

    Returns
    -------
    ndarray of shape (H, W), float32
        Δa* on the skin, NaN elsewhere.
    """
    lab = to_lab(linear_rgb)
    reference = (baseline.mean_a_star if baseline is not None
                 else float(lab[..., 1][skin].mean()))
    out = np.full(skin.shape, np.nan, np.float32)
    out[skin] = lab[..., 1][skin] - reference
    return out
