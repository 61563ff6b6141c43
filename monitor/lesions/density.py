"""A small convolutional network that maps a skin close-up to a lesion density map.

Why a network for close-ups: on real close-ups (ACNE04) the hand-made candidates plus tree
models reach a count error of about 8 per photo, and almost all of it comes from the most
severe photos, where lesions crowd together: by its candidates, that detector could not tell a
photo of 25 lesions from one of 55. Counting by density-map regression (Lempitsky and
Zisserman, "Learning To Count Objects in Images", NIPS 2010; with a CNN as in Zhang et al.,
"Single-Image Crowd Counting via Multi-Column Convolutional Neural Network", CVPR 2016) is the
standard answer to counting crowded objects: each annotated lesion is a small Gaussian of
mass 1 in the target map, the network learns the map, the photo's count is the map's sum and
the lesions are its peaks. The networks count crowded photos low, so the sum goes through a
monotone calibration fitted on the training photos (:class:`CountCalibration`).

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

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CALIBRATION_FILE",
    "PreparedInput",
    "DENSITY_SCALE",
    "INPUT_SHORT_SIDE",
    "RUN_SHORT_SIDE",
    "RUN_ZOOM",
    "STRIDE",
    "CloseupNet",
    "CountCalibration",
    "DensityPeaks",
    "density_peaks",
    "load_closeup_net",
    "model_paths",
    "prepare_input",
    "residual_peaks",
    "resize_for_network",
]

#: The networks were trained on photos resized so that their short side is this many pixels
#: (a 640 x 640 ACNE04 training photo is halved).
INPUT_SHORT_SIDE = 320
#: Photos as taken are read this much larger than the training versions. In the training
#: versions (the export's augmented copies: crop, rotation and shear up to about 15 degrees)
#: lesions are annotated larger: median box side 31.5 px on the 991 training photos against
#: 26.5 px on the 60 unaugmented dev photos (widths and heights alike, 1.18 and 1.19), although
#: the faces MediaPipe finds in them are as large (median 3-D pupil distance 209 and 205 px). Part
#: of it is the rotation widening upright boxes (visibly rotated training photos have boxes
#: 8-13 % larger than the others); why the rest differs is not settled. The networks' counts
#: shift by about this ratio: the held-out training versions are counted best read at 320-356
#: px, the dev photos at 380-400 px; on both, severe photos are counted low when read smaller.
RUN_ZOOM = 1.1875
#: Photos are read at this short side (380 px). The count calibration, fitted on the training
#: versions read at :data:`INPUT_SHORT_SIDE`, applies to them.
RUN_SHORT_SIDE = round(INPUT_SHORT_SIDE * RUN_ZOOM)
#: Output cells are this many network-input pixels apart.
STRIDE = 4
#: The network input's sides are padded up to a multiple of this (four stride-2 stages).
_MULTIPLE = 16
#: Density is learnt multiplied by this, so that the regression targets are of order 1.
DENSITY_SCALE = 100.0

_MODEL_DIR = Path(__file__).resolve().parents[1] / "models"  # monitor/models
#: The shipped networks: ``closeup_density_1.onnx``, ``closeup_density_2.onnx``, ...
_MODEL_GLOB = "closeup_density_*.onnx"
#: How the shipped networks' density total maps to a lesion count (see :class:`CountCalibration`).
CALIBRATION_FILE = "closeup_count_calibration.json"


@dataclass(frozen=True)
class PreparedInput:
    """A photo resized and padded for the network, with the way back to photo pixels."""

    blob: np.ndarray  # (1, 3, H, W) float32
    scale: float  # network-input pixels per photo pixel
    height: int  # resized photo's height in network-input pixels (before padding)
    width: int


def resize_for_network(
    rgb: np.ndarray, short_side: int = INPUT_SHORT_SIDE
) -> tuple[np.ndarray, float]:
    """The photo resized so its short side is ``short_side`` pixels, and the scale used."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    scale = short_side / min(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp), scale


def prepare_input(rgb: np.ndarray, short_side: int = INPUT_SHORT_SIDE) -> PreparedInput:
    """Resize an RGB uint8 photo so its short side is ``short_side``, pad, normalise.

    Padding repeats the border pixels (a black margin would look like a dark feature); the
    values are mapped to [-0.5, 0.5].
    """
    small, scale = resize_for_network(rgb, short_side)
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
    skin: np.ndarray | None = None,
) -> DensityPeaks:
    """Local maxima of the density map, mapped back to the photo's pixels, strongest first.

    The strongest ``round(CloseupNet.count(expected_count))`` peaks are the photo's lesions;
    a caller that wants a confidence threshold instead filters on ``mass``.

    Parameters
    ----------
    output : ndarray of shape (2, h, w)
        The network's raw output for ``prepared``.
    prepared : PreparedInput
        What :func:`prepare_input` made of the photo.
    min_mass : float
        Drop peaks whose mass (the density summed over their 3 x 3 neighbourhood) is below
        this.
    skin : ndarray of shape (H, W), bool, optional
        The photo's skin: density in cells whose centre lies off it is dropped before the
        total and the peaks are taken (a lesion is on skin; the mass the networks put on a
        wall, hair or clothes is not a lesion the annotators counted).
    """
    density, log_side = _density(output, prepared, skin)
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


def residual_peaks(
    output: np.ndarray,
    prepared: PreparedInput,
    taken: DensityPeaks,
    n: int,
    *,
    skin: np.ndarray | None = None,
) -> DensityPeaks:
    """``n`` more lesions where the density map holds more lesions than it has peaks.

    A local maximum of the map stands for one lesion, but where lesions crowd, two or three
    merge into one peak of mass well above one, and a photo's calibrated count can exceed its
    peaks. Each lesion in ``taken`` (peaks of :func:`density_peaks` on the same map) is given
    its unit of mass back, as the Gaussian it was learnt as (sigma a quarter of its side,
    0.7-2.5 cells); then, ``n`` times, the cell with the most density left is a lesion, and it
    gives its unit back in turn. ``mass`` is what was left in its 3 x 3 neighbourhood (capped
    at 1); positions are cell centres, on ``skin`` when it is given.
    """
    density, log_side = _density(output, prepared, skin)
    residual = density.astype(np.float64)
    to_cells = prepared.scale / STRIDE
    to_photo = 1.0 / prepared.scale
    for x, y, side in zip(taken.x, taken.y, taken.side, strict=True):
        _take_unit(residual, (y + 0.5) * to_cells - 0.5, (x + 0.5) * to_cells - 0.5,
                   side * to_cells)
    found: list[tuple[float, float, float, float]] = []
    for _ in range(max(int(n), 0)):
        i, j = np.unravel_index(int(np.argmax(residual)), residual.shape)
        mass = float(residual[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].sum())
        if mass <= 1e-6:
            break
        side_cells = float(np.exp(np.clip(log_side[i, j], 0.0, 5.0))) / STRIDE
        found.append(((j + 0.5) * STRIDE * to_photo - 0.5, (i + 0.5) * STRIDE * to_photo - 0.5,
                      side_cells * STRIDE * to_photo, min(mass, 1.0)))
        _take_unit(residual, float(i), float(j), side_cells)
    columns = np.array(found, np.float64).reshape(-1, 4).T
    return DensityPeaks(*columns, taken.expected_count)


def _take_unit(residual: np.ndarray, cy: float, cx: float, side_cells: float) -> None:
    """Take one lesion's unit of mass (its training Gaussian) off ``residual``, not below 0."""
    sigma = float(np.clip(side_cells / 4.0, 0.7, 2.5))
    ys = np.arange(residual.shape[0], dtype=np.float64)[:, None]
    xs = np.arange(residual.shape[1], dtype=np.float64)[None, :]
    kernel = np.exp(-0.5 * (((ys - cy) / sigma) ** 2 + ((xs - cx) / sigma) ** 2))
    kernel /= max(float(kernel.sum()), 1e-12)
    np.maximum(residual - kernel, 0.0, out=residual)


def _density(
    output: np.ndarray, prepared: PreparedInput, skin: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The lesion density (lesions per cell) and log side of a network output, on the cells
    whose centre lies on the photo (not on its padding) and, with ``skin``, on the skin."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim != 3 or out.shape[0] < 2:
        raise ValueError(f"expected a (2, h, w) network output, got {out.shape}")
    hh = min(out.shape[1], -(-prepared.height // STRIDE))
    ww = min(out.shape[2], -(-prepared.width // STRIDE))
    density = np.maximum(out[0, :hh, :ww], 0.0) / np.float32(DENSITY_SCALE)
    if skin is not None:
        density = np.where(_cells_on(skin, prepared, density.shape), density, np.float32(0))
    return density, out[1, :hh, :ww]


def _cells_on(mask: np.ndarray, prepared: PreparedInput, cells: tuple[int, int]) -> np.ndarray:
    """Which output cells' centres lie on ``mask`` (photo pixels); shape ``cells``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    h, w = mask.shape
    to_photo = STRIDE / prepared.scale
    # Cell centres, (i + 0.5) * STRIDE - 0.5 network-input pixels, in photo pixels.
    ys = (np.arange(cells[0]) + 0.5) * to_photo - 0.5
    xs = (np.arange(cells[1]) + 0.5) * to_photo - 0.5
    yi = np.clip(np.round(ys).astype(np.intp), 0, h - 1)
    xi = np.clip(np.round(xs).astype(np.intp), 0, w - 1)
    return mask[np.ix_(yi, xi)]


@dataclass(frozen=True)
class CountCalibration:
    """A monotone map from the networks' density total to the number of lesions annotators count.

    Fitted by ``benchmarks/fit_closeup_calibration.py`` over the ACNE04 training photos: the
    median annotated count that goes with a density mass on the skin (isotonic median
    regression, each severity grade weighing the same). The networks count photos with many
    crowded lesions low: on those photos a density total of about 40 goes with about 50
    annotated lesions. Between the knots the map is linear; beyond the last knot it rises one
    for one (never capped), below the first it is proportional.
    """

    x: tuple[float, ...]  # density totals, strictly increasing, the first > 0
    y: tuple[float, ...]  # lesion counts, non-decreasing
    networks: tuple[str, ...]  # file names of the networks it was fitted for

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, float), np.asarray(self.y, float)
        if x.ndim != 1 or x.shape != y.shape or x.size < 2:
            raise ValueError("a count calibration needs two equally long lists of 2+ knots")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("count calibration knots must be finite")
        if x[0] <= 0 or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0) or y[0] < 0:
            raise ValueError("count calibration knots must be positive, increasing and monotone")

    def __call__(self, total: float) -> float:
        """The calibrated count for a density total (``total`` < 0 counts as 0)."""
        t = max(float(total), 0.0)
        if t >= self.x[-1]:
            return self.y[-1] + (t - self.x[-1])
        if t <= self.x[0]:
            return t * self.y[0] / self.x[0]
        return float(np.interp(t, self.x, self.y))

    @classmethod
    def read(cls, path: Path) -> CountCalibration:
        """Read a calibration written by :meth:`write`; ``ValueError`` if it is malformed."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                tuple(float(v) for v in data["total"]),
                tuple(float(v) for v in data["count"]),
                tuple(str(v) for v in data["networks"]),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a count calibration: {exc}") from exc

    def write(self, path: Path, **about: object) -> None:
        """Write as JSON (``about`` adds descriptive fields, e.g. how it was fitted)."""
        data = {
            **about,
            "networks": list(self.networks),
            "total": [round(v, 4) for v in self.x],
            "count": [round(v, 4) for v in self.y],
        }
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()]
        Path(path).write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


class CloseupNet:
    """The close-up density network(s), evaluated by OpenCV's dnn module.

    Each network runs on the photo and on its three mirror images and the density maps are
    averaged (test-time augmentation): on the held-out training photos this raised F1 from
    0.621 to 0.637 for the first network trained (count error 4.99 to 4.96). Several networks
    are averaged alike: three ship (seeds 2, 3 and 4). The average of the first two on those
    photos has a count error of 4.25 and F1 0.641 against 4.43 and 0.638 for the first alone.
    :meth:`count` turns the averaged map's mass on the skin into a lesion count with the
    shipped :class:`CountCalibration`: held-out count error 3.40 for the three networks, 3.55
    for the first two (3.89 for those with the mean count on the whole map's total, a fit in
    which grade 0 weighed three times as much as grade 3).

    Photos are read at :data:`RUN_SHORT_SIDE` (dev count error 3.90 for the three networks,
    3.65 when the lesions that crowded peaks hold beyond their number are read off the residual
    map, :func:`residual_peaks`; 4.18 for the first two, 4.60 with that earlier calibration,
    5.33 with it at 320 px);
    the training versions are read at :data:`INPUT_SHORT_SIDE` (``short_side``) when the
    networks are trained, checked or calibrated.
    """

    def __init__(
        self,
        onnx_paths: Sequence[Path],
        *,
        mirror: bool = True,
        short_side: int = RUN_SHORT_SIDE,
        calibration: CountCalibration | None = None,
    ) -> None:
        if not onnx_paths:
            raise ValueError("no network files given")
        names = tuple(Path(p).name for p in onnx_paths)
        if calibration is not None and calibration.networks != names:
            raise ValueError(
                f"the count calibration was fitted for {calibration.networks}, not {names}"
            )
        self.calibration = calibration
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
        self.short_side = int(short_side)

    def run(
        self, rgb: np.ndarray, *, short_side: int | None = None, mirrors: int | None = None
    ) -> tuple[np.ndarray, PreparedInput]:
        """Return the mean raw (2, h, w) output for an RGB uint8 photo and the prepared input.

        ``short_side`` reads the photo at that short side instead of :attr:`short_side` (the
        whole-face reader sets it from the face's physical scale); ``mirrors`` averages only
        the first that many of the views (the photo, then its left-right mirror, ...).
        """
        prepared = prepare_input(rgb, self.short_side if short_side is None else short_side)
        flips = self._flips if mirrors is None else self._flips[:max(1, mirrors)]
        # The views go through each network as one batch: on two cores, alone, 87 ms for the
        # three networks' two views of a face instead of 96 ms one view at a time (within the
        # noise of a whole 12 MP photo's analysis, benchmarks/photo_cost.py).
        views = []
        for flip_y, flip_x in flips:
            blob = prepared.blob[0]
            if flip_y:
                blob = blob[:, ::-1]
            if flip_x:
                blob = blob[:, :, ::-1]
            views.append(blob)
        batch = np.ascontiguousarray(np.stack(views))
        total: np.ndarray | None = None
        with self._lock:
            for net in self._nets:
                net.setInput(batch)
                out = np.asarray(net.forward(), dtype=np.float32)
                for (flip_y, flip_x), view in zip(flips, out, strict=True):
                    if flip_y:
                        view = view[:, ::-1]
                    if flip_x:
                        view = view[:, :, ::-1]
                    total = view.copy() if total is None else total + view
        assert total is not None
        return total / np.float32(len(self._nets) * len(flips)), prepared

    def count(self, total: float) -> float:
        """The number of lesions for a density total: calibrated when a calibration is loaded."""
        return self.calibration(total) if self.calibration is not None else max(float(total), 0.0)


_cache: dict[Path, CloseupNet | None] = {}
_cache_lock = threading.Lock()


def model_paths(folder: Path = _MODEL_DIR) -> list[Path]:
    """The network files shipped in ``folder``, in name order."""
    return sorted(folder.glob(_MODEL_GLOB))


def load_closeup_net(folder: Path = _MODEL_DIR) -> CloseupNet | None:
    """The shipped networks with their count calibration, loaded once; ``None`` when none."""
    with _cache_lock:
        if folder not in _cache:
            paths = model_paths(folder)
            cal_path = folder / CALIBRATION_FILE
            calibration = CountCalibration.read(cal_path) if cal_path.exists() else None
            _cache[folder] = CloseupNet(paths, calibration=calibration) if paths else None
        return _cache[folder]
