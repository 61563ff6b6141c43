"""Lesion detection accuracy on annotated close-ups (ACNE04 dev split by default).

Prints three figures: the Spearman rank correlation between detected and annotated lesion
counts per photo, the mean absolute count error per photo, and F1 where a detection matches a
box when its centre falls inside it (one detection per box, optimal assignment).

    .venv/bin/python benchmarks/closeup_accuracy.py [DATA_DIR]

DATA_DIR defaults to ``../shared/data/acne04-dev`` beside the repository.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "acne04-dev"


@dataclass(frozen=True)
class CloseupAccuracy:
    """Accuracy figures over a set of annotated photos."""

    count_spearman: float
    count_mae: float
    f1: float
    precision: float
    recall: float
    n_photos: int
    seconds_per_photo: float
    counts_found: tuple[int, ...]
    counts_annotated: tuple[int, ...]

    def summary(self) -> str:
        return (
            f"photos {self.n_photos}  count Spearman {self.count_spearman:.3f}  "
            f"count MAE {self.count_mae:.2f}  F1 {self.f1:.3f} "
            f"(precision {self.precision:.3f}, recall {self.recall:.3f})  "
            f"{1000 * self.seconds_per_photo:.0f} ms/photo"
        )


def load_voc_boxes(xml_path: Path) -> np.ndarray:
    """Boxes of a Pascal VOC file as an (N, 4) float array of x0, y0, x1, y1 (pixels)."""
    from monitor.testing import voc_objects

    boxes = [box for _, *box in voc_objects(xml_path)]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def box_sides(boxes: np.ndarray) -> np.ndarray:
    """Side of the square of the same area as each (x0, y0, x1, y1) box, in pixels."""
    return np.sqrt(np.abs((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


def count_matches(points: np.ndarray, boxes: np.ndarray) -> int:
    """Largest number of (detection, box) pairs with the detection's centre inside the box.

    Parameters
    ----------
    points : ndarray of shape (N, 2)
        Detection centres as x, y.
    boxes : ndarray of shape (M, 4)
        x0, y0, x1, y1.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] == 0 or boxes.shape[0] == 0:
        return 0
    x, y = points[:, 0:1], points[:, 1:2]
    inside = (x >= boxes[None, :, 0]) & (x <= boxes[None, :, 2])
    inside &= (y >= boxes[None, :, 1]) & (y <= boxes[None, :, 3])
    if not inside.any():
        return 0
    # Among maximal matchings prefer detections near box centres (ties only).
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    half = np.maximum(0.5 * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1)
    d = np.hypot(x - cx[None, :], y - cy[None, :]) / half[None, :]
    cost = np.where(inside, d / (d.max() + 1.0), 10.0)
    rows, cols = linear_sum_assignment(cost)
    return int(inside[rows, cols].sum())


def photo_pairs(data_dir: Path) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of a folder, sorted by name."""
    pairs = []
    for img in sorted(Path(data_dir).glob("*.jpg")):
        xml = img.with_suffix(".xml")
        if xml.exists():
            pairs.append((img, xml))
    return pairs


def severity_grade(path: Path) -> int:
    """The ACNE04 severity grade a file name begins with (``levle0`` ... ``levle3``); -1 if none."""
    name = Path(path).name
    return int(name[5]) if name.startswith("levle") and name[5:6].isdigit() else -1


def held_out_split(
    pairs: Sequence[tuple[Path, Path]], seed: int
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """A seeded (training, held-out) split of annotated photos: one in seven is held out."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_held = len(pairs) // 7
    return [pairs[i] for i in order[n_held:]], [pairs[i] for i in order[:n_held]]


def evaluate(
    detect: Callable[[np.ndarray], np.ndarray],
    pairs: Sequence[tuple[Path, Path]],
) -> CloseupAccuracy:
    """Run ``detect`` (RGB uint8 image -> (N, 2) centres x, y) on each photo and score it."""
    detections, annotations = [], []
    elapsed = 0.0
    for img_path, xml_path in pairs:
        rgb = np.asarray(Image.open(img_path).convert("RGB"))
        t0 = time.perf_counter()
        detections.append(detect(rgb))
        elapsed += time.perf_counter() - t0
        annotations.append(load_voc_boxes(xml_path))
    return score(detections, annotations, elapsed)


def score(
    detections: Sequence[np.ndarray], annotations: Sequence[np.ndarray], elapsed: float = 0.0
) -> CloseupAccuracy:
    """Score detection centres (N, 2) against boxes (M, 4), photo by photo."""
    found, annotated = [], []
    tp = n_det = n_box = 0
    for det, boxes in zip(detections, annotations, strict=True):
        points = np.asarray(det, dtype=np.float64).reshape(-1, 2)
        tp += count_matches(points, boxes)
        n_det += points.shape[0]
        n_box += boxes.shape[0]
        found.append(points.shape[0])
        annotated.append(boxes.shape[0])
    precision = tp / n_det if n_det else 0.0
    recall = tp / n_box if n_box else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rho = spearmanr(found, annotated).statistic if len(found) > 2 else float("nan")
    mae = float(np.mean(np.abs(np.subtract(found, annotated)))) if found else float("nan")
    return CloseupAccuracy(
        count_spearman=float(rho),
        count_mae=mae,
        f1=f1,
        precision=precision,
        recall=recall,
        n_photos=len(found),
        seconds_per_photo=elapsed / max(len(found), 1),
        counts_found=tuple(found),
        counts_annotated=tuple(annotated),
    )


def detect_centres(rgb: np.ndarray) -> np.ndarray:
    """The project's detector with its defaults, as centres x, y."""
    from monitor.lesions import detect_lesions

    return np.array([(les.x, les.y) for les in detect_lesions(rgb)]).reshape(-1, 2)


def closeup_accuracy(data_dir: Path = DEFAULT_DATA_DIR) -> CloseupAccuracy:
    """Accuracy of :func:`monitor.lesions.detect_lesions` on the photos in ``data_dir``."""
    pairs = photo_pairs(data_dir)
    if not pairs:
        raise FileNotFoundError(f"no .jpg with a .xml beside it in {data_dir}")
    return evaluate(detect_centres, pairs)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    data_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA_DIR
    acc = closeup_accuracy(data_dir)
    print(f"count Spearman      {acc.count_spearman:.3f}")
    print(f"count MAE per photo {acc.count_mae:.2f}")
    print(
        f"F1                  {acc.f1:.3f}  "
        f"(precision {acc.precision:.3f}, recall {acc.recall:.3f})"
    )
    print(f"photos {acc.n_photos}, {1000 * acc.seconds_per_photo:.0f} ms per photo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
