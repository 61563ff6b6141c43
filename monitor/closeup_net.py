"""A small convolutional network that maps a skin close-up to a lesion density map.

Why a network for close-ups: on real close-ups (ACNE04) the hand-made candidates plus tree
models reach a count error of about 8 per photo, and almost all of it comes from the most
severe photos, where lesions crowd together: by its candidates, that detector could not tell a
photo of 25 lesions from one of 55. Counting by density-map regression (Lempitsky and
Zisserman, "Learning To Count Objects in Images", NIPS 2010; with a CNN as in Zhang et al.,
"Single-Image Crowd Counting via Multi-Column Convolutional Neural Network", CVPR 2016) is the
standard answer to counting crowded objects: each annotated lesion is a small Gaussian of
mass 1 in the target map, the network learns the map, the photo's count is the map's sum and
the lesions are its peaks.

The network is trained by ``benchmarks/train_closeup_net.py`` (PyTorch, from
``../shared/data/acne04-train``) and stored as ONNX (a protobuf graph of plain arrays: no code
is loaded with it). At run time OpenCV's ``dnn`` module evaluates it, so PyTorch is a training
dependency only. Everything here is numpy and OpenCV, and the training script imports the same
pre- and post-processing, so the two cannot drift apart.

Model output, at a quarter of the network's input resolution (:data:`STRIDE`):

* channel 0: lesion density times :data:`DENSITY_SCALE` (negative values mean zero);
* channel 1: the natural log of the lesion's box side, in network-input pixels, meaningful at
  the lesion's centre.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DENSITY_SCALE",
    "INPUT_SHORT_SIDE",
    "STRIDE",
    "CloseupNet",
    "DensityPeaks",
    "density_peaks",
    "load_closeup_net",
    "model_paths",
    "prepare_input",
    "resize_for_network",
]

#: The short side of the photo is resized to this many pixels before the network sees it
#: (a 640 x 640 ACNE04 photo is halved).
INPUT_SHORT_SIDE = 320
#: Output cells are this many network-input pixels apart.
STRIDE = 4
#: The network input's sides are padded up to a multiple of this (four stride-2 stages).
_MULTIPLE = 16
#: Density is learnt multiplied by this, so that the regression targets are of order 1.
DENSITY_SCALE = 100.0

_MODEL_DIR = Path(__file__).with_name("models")
#: The shipped networks: ``closeup_density_1.onnx``, ``closeup_density_2.onnx``, ...
_MODEL_GLOB = "closeup_density_*.onnx"


@dataclass(frozen=True)
class PreparedInput:
    """A photo resized and padded for the network, with the way back to photo pixels."""

    blob: np.ndarray  # (1, 3, H, W) float32
    scale: float  # network-input pixels per photo pixel
    height: int  # resized photo's height in network-input pixels (before padding)
    width: int


def resize_for_network(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo resized so its short side is :data:`INPUT_SHORT_SIDE`, and the scale used."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    scale = INPUT_SHORT_SIDE / min(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp), scale


def prepare_input(rgb: np.ndarray) -> PreparedInput:
    """Resize an RGB uint8 photo so its short side is :data:`INPUT_SHORT_SIDE`, pad, normalise.

    Padding repeats the border pixels (a black margin would look like a dark feature); the
    values are mapped to [-0.5, 0.5].
    """
    small, scale = resize_for_network(rgb)
    nh, nw = small.shape[:2]
    ph, pw = -nh % _MULTIPLE, -nw % _MULTIPLE
    if ph or pw:
        small = cv2.copyMakeBorder(small, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    blob = small.astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255.0)
    blob -= np.float32(0.5)
    return PreparedInput(np.ascontiguousarray(blob), scale, nh, nw)


@dataclass(frozen=True)
class DensityPeaks:
    """Lesions read off a density map, in photo pixels, strongest first."""

    x: np.ndarray
    y: np.ndarray
    side: np.ndarray  # estimated box side, photo pixels
    mass: np.ndarray  # density mass around the peak (about 1 for a clear lesion)
    expected_count: float  # the map's total mass

    def strongest(self, n: int) -> DensityPeaks:
        """The ``n`` strongest peaks."""
        n = max(int(n), 0)
        return DensityPeaks(self.x[:n], self.y[:n], self.side[:n], self.mass[:n],
                            self.expected_count)


def density_peaks(
    output: np.ndarray,
    prepared: PreparedInput,
    *,
    min_mass: float = 0.0,
) -> DensityPeaks:
    """Local maxima of the density map, mapped back to the photo's pixels, strongest first.

    The strongest ``round(expected_count)`` peaks are the photo's lesions; a caller that wants
    a confidence threshold instead filters on ``mass``.

    Parameters
    ----------
    output : ndarray of shape (2, h, w)
        The network's raw output for ``prepared``.
    prepared : PreparedInput
        What :func:`prepare_input` made of the photo.
    min_mass : float
        Drop peaks whose mass (the density summed over their 3 x 3 neighbourhood) is below
        this.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim != 3 or out.shape[0] < 2:
        raise ValueError(f"expected a (2, h, w) network output, got {out.shape}")
    # Only cells whose centre lies on the photo (not on its padding) count.
    hh = min(out.shape[1], -(-prepared.height // STRIDE))
    ww = min(out.shape[2], -(-prepared.width // STRIDE))
    density = np.maximum(out[0, :hh, :ww], 0.0) / np.float32(DENSITY_SCALE)
    log_side = out[1, :hh, :ww]
    total = float(density.sum())
    mass = cv2.boxFilter(density, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    local_max = cv2.dilate(density, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    peak = (density >= local_max) & (density > 1e-6) & (mass >= min_mass)
    ii, jj = np.nonzero(peak)
    order = np.argsort(-mass[ii, jj], kind="stable")
    ii, jj = ii[order], jj[order]
    # Sub-cell position: centre of mass of the 3 x 3 neighbourhood.
    pad = np.pad(density, 1)
    dy = np.zeros(ii.shape, np.float64)
    dx = np.zeros(ii.shape, np.float64)
    wsum = np.zeros(ii.shape, np.float64)
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            v = pad[ii + 1 + oy, jj + 1 + ox].astype(np.float64)
            dy += oy * v
            dx += ox * v
            wsum += v
    wsum = np.maximum(wsum, 1e-12)
    cy = ii + dy / wsum
    cx = jj + dx / wsum
    # Cell (i, j) covers network-input pixels [STRIDE*i, STRIDE*(i+1)).
    # Its centre, (i + 0.5) * STRIDE - 0.5 in pixel-centre coordinates, maps to the photo as
    # (p + 0.5) / scale - 0.5.
    to_photo = 1.0 / prepared.scale
    x = (cx + 0.5) * STRIDE * to_photo - 0.5
    y = (cy + 0.5) * STRIDE * to_photo - 0.5
    side = np.exp(np.clip(log_side[ii, jj].astype(np.float64), 0.0, 5.0)) * to_photo
    return DensityPeaks(x, y, side, mass[ii, jj].astype(np.float64), total)


class CloseupNet:
    """The close-up density network(s), evaluated by OpenCV's dnn module.

    Each network runs on the photo and on its three mirror images and the density maps are
    averaged (test-time augmentation): on the held-out training photos this raised F1 from
    0.621 to 0.637 for the first network trained (count error 4.99 to 4.96). Several networks
    are averaged alike: two ship (seeds 2 and 3), whose average on those photos has a count
    error of 4.25 and F1 0.641 against 4.43 and 0.638 for the first of them alone.
    """

    def __init__(self, onnx_paths: Sequence[Path], *, mirror: bool = True) -> None:
        if not onnx_paths:
            raise ValueError("no network files given")
        self._nets = []
        for path in onnx_paths:
            net = cv2.dnn.readNetFromONNX(str(path))
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            self._nets.append(net)
        # Mirror images of the padded input: the flipped grid of cells is the same grid, so
        # flipping the output back lines it up exactly.
        self._flips = ((False, False), (False, True), (True, False), (True, True))
        if not mirror:
            self._flips = self._flips[:1]
        # A cv2.dnn.Net keeps state between setInput and forward.
        self._lock = threading.Lock()

    def run(self, rgb: np.ndarray) -> tuple[np.ndarray, PreparedInput]:
        """Return the mean raw (2, h, w) output for an RGB uint8 photo and the prepared input."""
        prepared = prepare_input(rgb)
        total: np.ndarray | None = None
        with self._lock:
            for net in self._nets:
                for flip_y, flip_x in self._flips:
                    blob = prepared.blob
                    if flip_y:
                        blob = blob[:, :, ::-1]
                    if flip_x:
                        blob = blob[:, :, :, ::-1]
                    net.setInput(np.ascontiguousarray(blob))
                    out = np.asarray(net.forward()[0], dtype=np.float32)
                    if flip_y:
                        out = out[:, ::-1]
                    if flip_x:
                        out = out[:, :, ::-1]
                    total = out.copy() if total is None else total + out
        assert total is not None
        return total / np.float32(len(self._nets) * len(self._flips)), prepared


_cache: dict[Path, CloseupNet | None] = {}
_cache_lock = threading.Lock()


def model_paths(folder: Path = _MODEL_DIR) -> list[Path]:
    """The network files shipped in ``folder``, in name order."""
    return sorted(folder.glob(_MODEL_GLOB))


def load_closeup_net(folder: Path = _MODEL_DIR) -> CloseupNet | None:
    """The shipped networks, loaded once; ``None`` when there are none."""
    with _cache_lock:
        if folder not in _cache:
            paths = model_paths(folder)
            _cache[folder] = CloseupNet(paths) if paths else None
        return _cache[folder]
