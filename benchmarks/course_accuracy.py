"""Accuracy on seeded synthetic courses: alignment, lesions, redness (the issues' targets).

    .venv/bin/python benchmarks/course_accuracy.py [--seeds 101 102 ...]

Each course is written as JPEG files with EXIF capture times and analysed through the same
path as `python -m monitor analyze`; figures are computed by monitor.testing.evaluation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.pipeline import analyse_series  # noqa: E402
from monitor.testing import (  # noqa: E402  # noqa: E402
    LesionScore,
    course_accuracy,
    make_course,
    write_course,
)


def evaluate(seeds, **course_options) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            course = make_course(seed, **course_options)
            folder = Path(tmp) / str(seed)
            write_course(course, folder)
            analysis = analyse_series([folder], treatment_date=course.treatment_date,
                                      strict=True)
            rows.append({"seed": seed, **course_accuracy(course, analysis)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(101, 109)))
    args = parser.parse_args()
    rows = evaluate(args.seeds)
    total = sum((r["lesions"] for r in rows), LesionScore(0, 0, 0))
    for r in rows:
        s = r["lesions"]
        print(f"seed {r['seed']}: accepted {r['accepted']}/{r['photos']}, alignment median "
              f"{100 * r['alignment_median_iod']:.2f}% worst {100 * r['alignment_worst_iod']:.2f}%"
              f" IOD, lesion P {s.precision:.2f} R {s.recall:.2f} F1 {s.f1:.3f}, count error "
              f"{r['count_error_mean']:.2f}, redness Spearman {r['redness_spearman']:.3f}")
    print(f"ALL: alignment worst {100 * max(r['alignment_worst_iod'] for r in rows):.2f}% IOD, "
          f"lesion F1 {total.f1:.3f} (P {total.precision:.3f}, R {total.recall:.3f}), "
          f"count error {np.mean([r['count_error_mean'] for r in rows]):.2f}, "
          f"redness Spearman min {min(r['redness_spearman'] for r in rows):.3f} "
          f"mean {np.mean([r['redness_spearman'] for r in rows]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
