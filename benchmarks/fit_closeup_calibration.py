"""Fit the close-up count calibration, shipped as ``monitor/models/closeup_count_calibration.json``.

The density networks count photos with many crowded lesions low: on the ACNE04 training photos
a density mass on the skin between 35 and 50 goes with a median of 54 annotated lesions, and
on photos with 50 or more lesions that mass is 18 % short of the count (10 % for the whole
map's total, which the detector used to take).
This script runs the shipped networks over the training photos as the detector does (all four
mirror images, the density mass on the skin mask only), but at the short side the networks
were trained at, not at the detector's larger one for photos as taken
(``monitor.lesions.density.RUN_ZOOM``), and fits a monotone regression of the annotated count on
that mass (:func:`fit`: the median count, each severity grade weighing the same; built on
scikit-learn's ``IsotonicRegression``). The detector then lists that many of the map's
strongest peaks on the skin (:class:`monitor.lesions.density.CountCalibration`).

It reads the training photos only (``../shared/data/acne04-train``) and fits on the same
training part the networks were trained on; the held-out seventh (``held_out_split``) is kept
to judge the calibration, and the dev split (``benchmarks/closeup_accuracy.py``) is not read.

Measured for the first two networks (seeds 2 and 3; count error per photo, held-out / dev):

=============================================================  =============
the mass on the skin, uncalibrated                             4.26 / --
mean count on the whole map's total, photos weighing the same  3.89 / 4.60
... each severity grade weighing the same                      3.80 / 4.33
median count, each grade weighing the same                     3.63 / 4.28
median count on the mass on the skin                           3.55 / 4.18
=============================================================  =============

With the third network (seed 4), the last fit is shipped: 3.40 / 3.90 (4.24 held-out
uncalibrated).

(the middle rows' dev figures come from the networks' outputs stored at half precision, within
0.04 of a full run of the detector.)

    .venv/bin/python benchmarks/fit_closeup_calibration.py [--data DIR] [--out FILE]

Takes about two minutes on two cores. Refit whenever the shipped networks change: the
detector refuses a calibration fitted for other network files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.isotonic import IsotonicRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from closeup_accuracy import (  # noqa: E402
    held_out_split,
    load_voc_boxes,
    photo_pairs,
    score,
    severity_grade,
)

from monitor.lesions import density as cn  # noqa: E402
from monitor.lesions.reader import _closeup_peaks, skin_mask_by_colour  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "acne04-train"
SPLIT_SEED = 20261124  # the same held-out photos as benchmarks/train_closeup_net.py


#: Above the density total of the this-many-th highest photo, the photos are too few to fit
#: a curve and the calibration rises one for one (on the training photos a total of 60 or more
#: is neither under- nor over-counted; left to itself the isotonic fit would go flat there and
#: cap every count near the largest annotated ones).
SPARSE_TAIL = 20


def fit(
    totals: np.ndarray,
    counts: np.ndarray,
    networks: tuple[str, ...],
    grades: np.ndarray | None = None,
) -> cn.CountCalibration:
    """Isotonic median regression of ``counts`` on ``totals``, as knots of a CountCalibration.

    The median, not the mean, because the calibration is judged by the absolute count error:
    the median of the annotated counts that go with a density total minimises it (the mean
    is pulled by the long tails, up for mild photos, down for the capped severe ones). It is
    found level by level: the count at a total is at least ``c`` where the isotonic
    regression of "annotated count >= c" on the total is at least one half (Robertson, Wright
    and Dykstra, *Order Restricted Statistical Inference*, 1988, on isotonic quantile
    regression), which is a non-decreasing step function.

    ``grades`` (optional, one per photo) weighs every grade the same in total, whatever its
    share of the photos: the calibration should not lean towards the severity the training
    collection holds most of (a third grade 0, a tenth grade 3).
    """
    totals = np.maximum(np.asarray(totals, float), 1e-3)
    counts = np.asarray(counts, float)
    if grades is None:
        weights = np.ones_like(totals)
    else:
        grades = np.asarray(grades)
        share = {g: np.mean(grades == g) for g in np.unique(grades)}
        weights = np.array([1.0 / share[g] for g in grades])
    order = np.argsort(totals, kind="stable")
    x, c, wt = totals[order], counts[order], weights[order]
    levels = np.unique(c)
    y = np.full(x.shape, levels[0])
    for below, level in zip(levels[:-1], levels[1:], strict=True):
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip")
        share_at_least = iso.fit_transform(x, (c >= level).astype(float), sample_weight=wt)
        y += (level - below) * (share_at_least >= 0.5)
    top = np.sort(totals)[-min(SPARSE_TAIL, totals.size)]
    inside = x < top
    y_top = float(y[np.searchsorted(x, top)])
    x = np.append(x[inside], top)
    y = np.append(y[inside], y_top)
    # Knots closer than the JSON rounding, and the inner points of flat steps, add nothing.
    keep = np.concatenate([np.diff(x) > 1e-3, [True]])
    x, y = x[keep], y[keep]
    flat = np.zeros(x.shape, bool)
    flat[1:-1] = (y[1:-1] == y[:-2]) & (y[1:-1] == y[2:])
    return cn.CountCalibration(tuple(x[~flat]), tuple(y[~flat]), networks)


def _read(net: cn.CloseupNet, pairs):
    """The network's output, the prepared input, the boxes and the skin mask, photo by photo."""
    rows = []
    for i, (img_path, xml_path) in enumerate(pairs):
        rgb = np.asarray(Image.open(img_path).convert("RGB"))
        out, prep = net.run(rgb)
        rows.append((out, prep, load_voc_boxes(xml_path), skin_mask_by_colour(rgb)))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} / {len(pairs)} photos", flush=True)
    return rows


def _listed(net: cn.CloseupNet, rows) -> list[np.ndarray]:
    """Detection centres as the detector lists them with ``net``'s count."""
    found = []
    for out, prep, _, mask in rows:
        peaks, listed, _ = _closeup_peaks(net, out, prep, mask, None, None)
        found.append(np.stack([peaks.x[listed], peaks.y[listed]], 1))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=cn._MODEL_DIR / cn.CALIBRATION_FILE)
    args = ap.parse_args()
    pairs = photo_pairs(args.data)
    if not pairs:
        print(f"no annotated photos in {args.data}", file=sys.stderr)
        return 1
    paths = cn.model_paths()
    if not paths:
        print("no close-up networks in monitor/models", file=sys.stderr)
        return 1
    # Uncalibrated, and at the side the networks were trained at (these are training versions,
    # not photos as taken: monitor.lesions.density.RUN_ZOOM).
    side = cn.INPUT_SHORT_SIDE
    net = cn.CloseupNet(paths, short_side=side)
    train_pairs, held_pairs = held_out_split(pairs, SPLIT_SEED)
    print(f"reading {len(train_pairs)} training photos")
    train = _read(net, train_pairs)
    # The density mass on the skin, as the detector takes it.
    totals = np.array([
        _closeup_peaks(net, out, prep, mask, None, None)[0].expected_count
        for out, prep, _, mask in train
    ])
    counts = np.array([boxes.shape[0] for _, _, boxes, _ in train], float)
    grades = np.array([severity_grade(img) for img, _ in train_pairs])
    calibration = fit(totals, counts, tuple(p.name for p in paths), grades)
    calibrated = cn.CloseupNet(paths, calibration=calibration, short_side=side)

    print(f"reading {len(held_pairs)} held-out photos")
    held = _read(net, held_pairs)
    boxes = [b for _, _, b, _ in held]
    before = score(_listed(net, held), boxes)
    after = score(_listed(calibrated, held), boxes)
    for label, acc in (("total as count", before), ("calibrated", after)):
        print(
            f"held-out, {label:14s}: count error {acc.count_mae:.2f}  "
            f"Spearman {acc.count_spearman:.3f}  F1 {acc.f1:.3f}"
        )
    calibration.write(
        args.out,
        about="Isotonic median regression of the annotated lesion count on the density "
        "networks' mass on the skin, every severity grade weighing the same, fitted by "
        "benchmarks/fit_closeup_calibration.py",
        photos=len(train_pairs),
        held_out_count_error={"uncalibrated": round(before.count_mae, 3),
                              "calibrated": round(after.count_mae, 3)},
    )
    print(f"wrote {args.out} ({len(calibration.x)} knots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
