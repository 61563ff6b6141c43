"""Train the lesion candidate classifier shipped as ``monitor/models/lesion_gbt.npz``.

Reads the ACNE04 *training* photos only (``../shared/data/acne04-train`` beside the
repository, Pascal VOC boxes); the dev split stays for evaluation
(``benchmarks/closeup_accuracy.py``).

1. For every photo, :func:`monitor.lesions.reader._find_candidates` (the detector's own code) lists
   red-spot candidates and their features; a candidate is a positive when its centre falls
   inside an annotated box.
2. A scikit-learn ``HistGradientBoostingClassifier`` is cross-validated with folds grouped by
   photo; the out-of-fold scores go through the detector's own duplicate suppression, and the
   confidence threshold that gives the best count agreement and F1 over the training photos is
   chosen.
3. The model is refitted on all photos and exported as plain arrays (``np.savez_compressed``,
   no pickle), which ``monitor.lesions`` evaluates with numpy alone: scikit-learn is needed to
   train, not to run.

The detector uses this model on faces; close-ups are counted by a density network instead
(``benchmarks/train_closeup_net.py``).

    .venv/bin/python benchmarks/train_lesion_model.py [--data DIR] [--jobs 2]

Needs scikit-learn (training only). Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from closeup_accuracy import count_matches, load_voc_boxes, photo_pairs  # noqa: E402

from monitor.lesions import reader as lesions  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "acne04-train"
MODEL_PATH = ROOT / "monitor" / "models" / "lesion_gbt.npz"
SEED = 20240611

PARAMS = dict(
    learning_rate=0.08,
    max_iter=250,
    max_leaf_nodes=24,
    min_samples_leaf=60,
    l2_regularization=1.0,
    max_features=0.7,
    early_stopping=False,
    random_state=SEED,
)


def _photo_candidates(pair: tuple[Path, Path]) -> dict[str, np.ndarray]:
    img_path, xml_path = pair
    rgb = np.asarray(Image.open(img_path).convert("RGB"))
    boxes = load_voc_boxes(xml_path)
    skin = lesions.skin_mask_by_colour(rgb)
    ppm = lesions.closeup_px_per_mm(rgb.shape)
    # Exactly as the detector does: candidates of the skin's window, positions within it.
    cands, (y0, y1, x0, x1) = lesions._windowed_candidates(rgb, skin, ppm)
    inv = 1.0 / cands.scale
    x = (cands.x + 0.5) * inv - 0.5 + x0
    y = (cands.y + 0.5) * inv - 0.5 + y0
    if boxes.shape[0] and x.size:
        inside = (x[:, None] >= boxes[None, :, 0]) & (x[:, None] <= boxes[None, :, 2])
        inside &= (y[:, None] >= boxes[None, :, 1]) & (y[:, None] <= boxes[None, :, 3])
        label = inside.any(axis=1)
    else:
        label = np.zeros(x.size, dtype=bool)
    return {
        "features": cands.features,
        "y": cands.y,
        "x": cands.x,
        "sigma_px": cands.sigma_px,
        "scale": np.float64(cands.scale),
        "ppm": np.float64(cands.work_px_per_mm),
        "label": label,
        "boxes": boxes,
        "shape": np.array([y1 - y0, x1 - x0]),
        "offset": np.array([x0, y0], dtype=np.float64),
    }


def _candidates(ph: dict[str, np.ndarray]) -> lesions._Candidates:
    """A photo's cached candidates, as the detector's own structure."""
    return lesions._Candidates(
        ph["y"], ph["x"], ph["sigma_px"], ph["features"], float(ph["scale"]), float(ph["ppm"])
    )


def extract(pairs: list[tuple[Path, Path]], jobs: int) -> list[dict[str, np.ndarray]]:
    """Candidates of every photo, cached by the detector's source code and the file list."""
    # Only the candidate code matters (everything above the scoring section of the module).
    source = Path(lesions.__file__).read_text().split("\n# Scores\n")[0]
    digest = hashlib.sha1(source.encode())
    digest.update("\n".join(str(p) for p, _ in pairs).encode())
    cache = Path(tempfile.gettempdir()) / f"lesion_candidates_{digest.hexdigest()[:12]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            n = int(data["n"])
            keys = [k.split("/", 1)[1] for k in data.files if k.startswith("0/")]
            return [{k: data[f"{i}/{k}"] for k in keys} for i in range(n)]
    t0 = time.perf_counter()
    with Pool(jobs) as pool:
        photos = pool.map(_photo_candidates, pairs, chunksize=8)
    print(f"candidates of {len(pairs)} photos in {time.perf_counter() - t0:.0f} s")
    flat = {f"{i}/{k}": v for i, ph in enumerate(photos) for k, v in ph.items()}
    np.savez(cache, n=len(photos), **flat)
    return photos


def _selections(photos, scores, floor: float) -> list[np.ndarray]:
    """Per photo, the detector's selection at ``floor`` as rows of x, y, confidence.

    Suppression only lets better candidates drop worse ones, so the selection at any higher
    threshold is these rows with confidence at or above it.
    """
    out = []
    for ph, sc in zip(photos, scores, strict=True):
        cands = _candidates(ph)
        skin = np.ones(tuple(ph["shape"]), dtype=bool)
        xs, ys, _, conf = lesions._select(cands, sc, floor, skin, None)
        out.append(np.column_stack([xs + ph["offset"][0], ys + ph["offset"][1], conf]))
    return out


def _figures(photos, selections, threshold: float) -> dict[str, float]:
    """Count Spearman, count MAE and F1 of the detector's selection at ``threshold``."""
    found, annotated = [], []
    tp = n_det = n_box = 0
    for ph, sel in zip(photos, selections, strict=True):
        pts = sel[sel[:, 2] >= threshold, :2]
        tp += count_matches(pts, ph["boxes"])
        n_det += len(pts)
        n_box += ph["boxes"].shape[0]
        found.append(len(pts))
        annotated.append(ph["boxes"].shape[0])
    p = tp / max(n_det, 1)
    r = tp / max(n_box, 1)
    return {
        "spearman": float(spearmanr(found, annotated).statistic),
        "mae": float(np.mean(np.abs(np.subtract(found, annotated)))),
        "f1": 2 * p * r / max(p + r, 1e-9),
        "precision": p,
        "recall": r,
    }


def export(clf, path: Path, min_confidence: float) -> None:
    """Write the fitted trees as flat arrays that ``monitor.lesions`` can evaluate."""
    trees = [pred[0].nodes for pred in clf._predictors]
    size = max(len(t) for t in trees)
    n = len(trees)
    feature = np.zeros((n, size), np.int16)
    threshold = np.zeros((n, size), np.float64)
    left = np.zeros((n, size), np.int16)
    right = np.zeros((n, size), np.int16)
    value = np.zeros((n, size), np.float32)
    is_leaf = np.ones((n, size), bool)
    for i, t in enumerate(trees):
        m = len(t)
        if np.any(t["is_categorical"]):
            raise ValueError("categorical splits are not supported by the exporter")
        feature[i, :m] = t["feature_idx"]
        threshold[i, :m] = t["num_threshold"]
        left[i, :m] = t["left"]
        right[i, :m] = t["right"]
        value[i, :m] = t["value"]
        is_leaf[i, :m] = t["is_leaf"].astype(bool)
    depth = int(max(t["depth"].max() for t in trees))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        feature_names=np.array(lesions._FEATURE_NAMES),
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        value=value,
        is_leaf=is_leaf,
        baseline=np.float64(np.ravel(clf._baseline_prediction)[0]),
        depth=np.int64(depth),
        min_confidence=np.float64(min_confidence),
    )


def main() -> int:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args()

    pairs = photo_pairs(args.data)
    if "acne04-dev" in str(args.data):
        raise SystemExit("refusing to train on the dev split; it is for evaluation only")
    if not pairs:
        raise SystemExit(f"no annotated photos in {args.data}")
    photos = extract(pairs, args.jobs)
    x = np.concatenate([p["features"] for p in photos])
    y = np.concatenate([p["label"] for p in photos]).astype(int)
    groups = np.concatenate([np.full(len(p["label"]), i) for i, p in enumerate(photos)])
    print(f"{len(photos)} photos, {len(y)} candidates, {y.mean():.1%} inside a box")

    # Out-of-fold scores, combined with the rule path exactly as the detector does.
    oof = np.zeros(len(y))
    t0 = time.perf_counter()
    for fold, (tr, te) in enumerate(GroupKFold(n_splits=5).split(x, y, groups)):
        clf = HistGradientBoostingClassifier(**PARAMS).fit(x[tr], y[tr])
        oof[te] = clf.predict_proba(x[te])[:, 1]
        print(f"fold {fold}: {time.perf_counter() - t0:.0f} s")
    bounds = np.cumsum([0] + [len(p["label"]) for p in photos])
    scores = []
    for i, ph in enumerate(photos):
        cands = _candidates(ph)
        rule = np.maximum(lesions._rule_score(cands), lesions._pustule_score(cands))
        scores.append(np.maximum(oof[bounds[i] : bounds[i + 1]], rule))

    grid = np.arange(0.15, 0.81, 0.025)
    selections = _selections(photos, scores, float(grid[0]))
    best, best_t = -np.inf, 0.5
    for t in grid:
        f = _figures(photos, selections, float(t))
        # Rank agreement and F1 matter most; the count error breaks ties.
        objective = f["spearman"] + f["f1"] - f["mae"] / 40.0
        print(
            f"threshold {t:.3f}: Spearman {f['spearman']:.3f}  MAE {f['mae']:.2f}  "
            f"F1 {f['f1']:.3f} (P {f['precision']:.3f} R {f['recall']:.3f})"
        )
        if objective > best:
            best, best_t = objective, float(t)
    print(f"chosen threshold {best_t:.3f}")

    clf = HistGradientBoostingClassifier(**PARAMS).fit(x, y)
    export(clf, args.out, best_t)
    # The numpy evaluation must agree with scikit-learn's.
    lesions._load_model.cache_clear()
    model = lesions._load_model(args.out)
    assert model is not None
    sample = x[:: max(1, len(x) // 5000)]
    diff = np.abs(model.predict(sample) - clf.predict_proba(sample)[:, 1]).max()
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), "
        f"max |numpy - sklearn| {diff:.2e}"
    )
    if diff > 1e-4:
        raise SystemExit("exported model disagrees with scikit-learn")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
