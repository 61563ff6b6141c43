"""Accuracy on honest phantoms: several real faces, painted and real lesions (the issue's targets).

    .venv/bin/python benchmarks/phantom_accuracy.py [--faces astronaut hopper ...]
        [--styles painted real] [--seed 301] [--days 8] [--radius-mm 1 3] [--jobs 1]

Each course (one per face and lesion style, all from one seed and with lesion radii drawn in
the same millimetre range, so that the two styles of a face share lesion places, sizes, kinds,
days, poses and light, and differ only in how the lesions look) is made by
monitor.testing.synthetic.make_course, written as JPEG files with EXIF capture times and
analysed through the same path as ``python -m monitor analyze``; figures are computed by
monitor.testing.evaluation.course_accuracy (a detection matches a true lesion within 1.5 radii
+ 3 px).
Real lesions are cut from the ACNE04 training photos (../shared/data/acne04-train, read in
place); without them the real style is skipped. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.pipeline import analyse_series  # noqa: E402
from monitor.testing import (  # noqa: E402  # noqa: E402
    ACNE04_TRAIN,
    FACES,
    LESION_STYLES,
    LesionScore,
    course_accuracy,
    make_course,
    write_course,
)

TARGET_F1 = 0.90
TARGET_COUNT_ERROR = 1.0  # mean absolute error of the lesion count, per photo
TARGET_SPEARMAN = 0.95  # redness index against the painted erythema, every course
TARGET_FACES = 3


RADIUS_MM = (1.0, 3.0)


def evaluate(face: str, style: str, seed: int, days: int,
             radius_mm: tuple[float, float] = RADIUS_MM) -> dict:
    """Make, write and analyse one course; its figures from course_accuracy, and timings."""
    start = time.perf_counter()
    course = make_course(seed, days=tuple(range(days)), face=face, lesion_style=style,
                         radius_mm=radius_mm)
    made = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"{face}-{style}"
        write_course(course, folder)
        analysis = analyse_series([folder], treatment_date=course.treatment_date, strict=True)
    return {"face": face, "style": style, "seed": seed, **course_accuracy(course, analysis),
            "make_s": made - start, "analyse_s": time.perf_counter() - made}


def _line(label: str, rows: list[dict]) -> str:
    score = sum((r["lesions"] for r in rows), LesionScore(0, 0, 0))
    return (f"{label}: accepted {sum(r['accepted'] for r in rows)}/"
            f"{sum(r['photos'] for r in rows)}, lesion F1 {score.f1:.3f} (P {score.precision:.2f}"
            f" R {score.recall:.2f}; TP {score.true_positives} FP {score.false_positives} FN "
            f"{score.false_negatives}), count error {_mean(rows, 'count_error_mean'):.2f}/photo,"
            f" redness Spearman min {min(r['redness_spearman'] for r in rows):.3f}, alignment "
            f"median {100 * np.median([r['alignment_median_iod'] for r in rows]):.2f}% worst "
            f"{100 * max(r['alignment_worst_iod'] for r in rows):.2f}% IOD")


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", nargs="+", choices=FACES, default=list(FACES))
    parser.add_argument("--styles", nargs="+", choices=LESION_STYLES, default=list(LESION_STYLES))
    parser.add_argument("--seed", type=int, default=301)
    parser.add_argument("--days", type=int, default=8, help="photos per course, days 0..N-1")
    parser.add_argument("--radius-mm", type=float, nargs=2, default=list(RADIUS_MM),
                        help="range of lesion radii, both styles")
    parser.add_argument("--jobs", type=int, default=1, help="courses analysed at once")
    args = parser.parse_args(argv)
    styles = list(args.styles)
    if "real" in styles and not any(ACNE04_TRAIN.glob("*.xml")):
        print(f"real lesions skipped: no annotated photos in {ACNE04_TRAIN}")
        styles.remove("real")
    radius_mm = (args.radius_mm[0], args.radius_mm[1])
    jobs = [(face, style, args.seed, args.days, radius_mm) for style in styles
            for face in args.faces]
    started = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(evaluate, *zip(*jobs, strict=True)))
    else:
        rows = [evaluate(*job) for job in jobs]
    for r in rows:
        label = f"{r['face']:>14} {r['style']:<7}"
        print(f"{_line(label, [r])} [make {r['make_s']:.0f} s, analyse {r['analyse_s']:.0f} s]")
    missed = []
    for style in styles:
        subset = [r for r in rows if r["style"] == style]
        print(_line(f"{'ALL':>14} {style:<7}", subset))
        score = sum((r["lesions"] for r in subset), LesionScore(0, 0, 0))
        checks = [
            ("all photos accepted", all(r["accepted"] == r["photos"] for r in subset)),
            (f"lesion F1 >= {TARGET_F1}", score.f1 >= TARGET_F1),
            (f"count error <= {TARGET_COUNT_ERROR}/photo",
             _mean(subset, "count_error_mean") <= TARGET_COUNT_ERROR),
            (f"redness Spearman >= {TARGET_SPEARMAN} on every course",
             min(r["redness_spearman"] for r in subset) >= TARGET_SPEARMAN),
            (f"at least {TARGET_FACES} faces", len({r["face"] for r in subset}) >= TARGET_FACES),
        ]
        for name, ok in checks:
            print(f"  {style} target {name}: {'met' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"{style}: {name}")
    print(f"{len(rows)} courses of {args.days} photos in {time.perf_counter() - started:.0f} s")
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
