"""Lesion accuracy of the whole-face path on annotated photos (ACNE04 dev split by default).

Each photo is analysed as a one-photo course (:func:`monitor.pipeline.analyse_series`), so it
goes through intake, the quality gate, face finding and the lesion detector on the face's skin,
as a patient's selfie does. The ACNE04 photos are close-ups of a face, often of one side only,
so a photo without a face found is a figure of its own (faces found out of all, and the
reasons the others were turned away), not a zero count.

On the photos with a face found, the found lesions (photo pixels) are scored against the Pascal
VOC boxes as in ``benchmarks/closeup_accuracy.py``: the Spearman rank correlation of found and
annotated counts per photo, the mean absolute count error per photo and its bias (found minus
annotated), and F1 where a detection matches a box when its centre falls inside it (one
detection per box, optimal assignment), overall and by severity grade. Photos with 40 or more
annotated lesions are listed with their found counts; one read below 20 misses a target.

    .venv/bin/python benchmarks/face_accuracy.py [DATA_DIR] [--limit N] [--grades 2 3] [--held-out]

DATA_DIR defaults to ``../shared/data/acne04-dev`` beside the repository. Progress goes to
stderr; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from closeup_accuracy import (  # noqa: E402
    count_matches,
    held_out_split,
    load_voc_boxes,
    photo_pairs,
    severity_grade,
)

from monitor.progress import print_progress  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "acne04-dev"

HELD_OUT_HELP = ("only the seventh of DATA_DIR that the close-up networks and their count "
                 "calibration were not fitted on (with ../shared/data/acne04-train)")


def held_out(pairs: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The held-out seventh of ACNE04's training photos, as the networks' training split it."""
    from fit_closeup_calibration import SPLIT_SEED

    return sorted(held_out_split(pairs, SPLIT_SEED)[1])  # in file order, as photo_pairs

TARGET_SPEARMAN = 0.80
TARGET_COUNT_MAE = 4.0
TARGET_F1 = 0.60
#: A photo with at least this many annotated lesions ...
CROWDED_ANNOTATED = 40
#: ... must not be read as fewer than this many.
CROWDED_FLOOR = 20

#: ``progress(done, total, file_name, status)``, as :func:`monitor.pipeline.analyse_series`.
Progress = Callable[[int, int, str, str], None]


@dataclass(frozen=True)
class PhotoRow:
    """One annotated photo as the whole-face path read it.

    ``found`` and ``matched`` are None when no face was found (the photo was rejected);
    ``reason`` then says why.
    """

    file: str
    grade: int
    annotated: int
    face_found: bool
    reason: str | None
    found: int | None
    matched: int | None
    seconds: float

    def __post_init__(self) -> None:
        if self.face_found != (self.found is not None) or (self.found is None) != (
            self.matched is None
        ):
            raise ValueError(
                f"{self.file}: found and matched are given exactly when a face was found, got "
                f"face_found={self.face_found}, found={self.found}, matched={self.matched}"
            )

    @property
    def crowded(self) -> bool:
        """At least :data:`CROWDED_ANNOTATED` annotated lesions."""
        return self.annotated >= CROWDED_ANNOTATED

    @property
    def read_low(self) -> bool:
        """A crowded photo with a face found, read as fewer than :data:`CROWDED_FLOOR`."""
        return self.crowded and self.found is not None and self.found < CROWDED_FLOOR


@dataclass(frozen=True)
class CountScore:
    """Count and detection figures over the photos with a face found (of one grade, or all)."""

    n_photos: int
    count_spearman: float
    count_mae: float
    count_bias: float
    f1: float
    precision: float
    recall: float

    def line(self) -> str:
        return (
            f"photos {self.n_photos:3d}  count Spearman {self.count_spearman:6.3f}  "
            f"count error {self.count_mae:5.2f}  bias {self.count_bias:+6.2f}  "
            f"F1 {self.f1:.3f} (precision {self.precision:.3f}, recall {self.recall:.3f})"
        )


@dataclass(frozen=True)
class FaceAccuracy:
    """Figures of the whole-face lesion path over a set of annotated photos."""

    rows: tuple[PhotoRow, ...]
    overall: CountScore
    by_grade: Mapping[int, CountScore]
    seconds_per_photo: float

    @property
    def n_photos(self) -> int:
        return len(self.rows)

    @property
    def faces_found(self) -> int:
        return sum(row.face_found for row in self.rows)

    @property
    def rejections(self) -> Counter[str]:
        """Photos without a face found, counted by the reason given."""
        return Counter(row.reason or "(no reason given)" for row in self.rows
                       if not row.face_found)

    @property
    def crowded(self) -> tuple[PhotoRow, ...]:
        """Photos with at least :data:`CROWDED_ANNOTATED` annotated lesions, read or not."""
        return tuple(row for row in self.rows if row.crowded)

    def missed_targets(self) -> list[str]:
        """The targets missed, each as a short sentence; empty when all are met.

        A nan figure (too few photos with a face found to compute it) misses its target.
        """
        acc = self.overall
        missed = []
        if not acc.count_spearman >= TARGET_SPEARMAN:
            missed.append(f"count Spearman {acc.count_spearman:.3f} < {TARGET_SPEARMAN}")
        if not acc.count_mae <= TARGET_COUNT_MAE:
            missed.append(f"count error {acc.count_mae:.2f} > {TARGET_COUNT_MAE}")
        if not acc.f1 >= TARGET_F1:
            missed.append(f"F1 {acc.f1:.3f} < {TARGET_F1}")
        low = [row for row in self.rows if row.read_low]
        if low:
            missed.append(f"{len(low)} photo(s) with >= {CROWDED_ANNOTATED} annotated read "
                          f"below {CROWDED_FLOOR}")
        return missed

    def summary(self) -> str:
        return (
            f"faces found {self.faces_found}/{self.n_photos}  {self.overall.line()}  "
            f"{self.seconds_per_photo:.2f} s/photo"
        )


def score_photo(
    entry: Mapping, boxes: np.ndarray, *, file: str, grade: int = -1, seconds: float = 0.0
) -> PhotoRow:
    """Score one photo's entry of a ``monitor.analysis/1`` result against its boxes.

    Parameters
    ----------
    entry : mapping
        ``analysis["photos"][i]``: ``status``, ``reason``, ``face`` (when a face was found and
        the photo accepted) and ``lesions`` (dicts with ``x``, ``y`` in the photo's pixels).
    boxes : ndarray of shape (M, 4)
        Annotated boxes x0, y0, x1, y1 in the same pixels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    face_found = entry.get("status") == "ok" and entry.get("face") is not None
    found = matched = None
    if face_found:
        lesions = entry.get("lesions") or []
        points = np.array([(les["x"], les["y"]) for les in lesions], dtype=np.float64)
        found = len(lesions)
        matched = count_matches(points.reshape(-1, 2), boxes)
    return PhotoRow(
        file=file,
        grade=grade,
        annotated=int(boxes.shape[0]),
        face_found=face_found,
        reason=None if face_found else entry.get("reason"),
        found=found,
        matched=matched,
        seconds=seconds,
    )


def _spearman(found: Sequence[int], annotated: Sequence[int]) -> float:
    # Constant counts have no rank order: nan, without scipy's warning.
    if len(found) < 3 or len(set(found)) < 2 or len(set(annotated)) < 2:
        return float("nan")
    return float(spearmanr(found, annotated).statistic)


def count_score(rows: Sequence[PhotoRow]) -> CountScore:
    """Figures over the rows with a face found; nan where there are none (or too few)."""
    read = [row for row in rows if row.found is not None]
    found = [row.found for row in read]
    annotated = [row.annotated for row in read]
    tp = sum(row.matched or 0 for row in read)
    n_det, n_box = sum(found), sum(annotated)
    precision = tp / n_det if n_det else 0.0
    recall = tp / n_box if n_box else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    diff = np.subtract(found, annotated, dtype=np.float64)
    return CountScore(
        n_photos=len(read),
        count_spearman=_spearman(found, annotated),
        count_mae=float(np.mean(np.abs(diff))) if read else float("nan"),
        count_bias=float(np.mean(diff)) if read else float("nan"),
        f1=f1,
        precision=precision,
        recall=recall,
    )


def summarise(rows: Sequence[PhotoRow]) -> FaceAccuracy:
    """Overall and per-grade figures of scored photos (grades 0..3, those present)."""
    rows = tuple(rows)
    grades = sorted({row.grade for row in rows if row.grade >= 0})
    return FaceAccuracy(
        rows=rows,
        overall=count_score(rows),
        by_grade={g: count_score([row for row in rows if row.grade == g]) for g in grades},
        seconds_per_photo=sum(row.seconds for row in rows) / max(len(rows), 1),
    )


def face_accuracy(
    pairs: Sequence[tuple[Path, Path]], progress: Progress | None = None
) -> FaceAccuracy:
    """Analyse each (image, VOC annotation) pair as a one-photo course and score it.

    ``progress(done, total, file_name, status)`` is called after each photo.
    """
    from monitor.pipeline import analyse_series

    rows = []
    for i, (img_path, xml_path) in enumerate(pairs):
        t0 = time.perf_counter()
        entry = analyse_series([img_path])["photos"][0]
        seconds = time.perf_counter() - t0
        rows.append(score_photo(entry, load_voc_boxes(xml_path), file=Path(img_path).name,
                                grade=severity_grade(img_path), seconds=seconds))
        if progress:
            progress(i + 1, len(pairs), Path(img_path).name, entry["status"])
    return summarise(rows)


def select_pairs(
    pairs: Sequence[tuple[Path, Path]], *, grades: Sequence[int] | None = None,
    limit: int | None = None,
) -> list[tuple[Path, Path]]:
    """Pairs of the given severity grades, at most ``limit`` of them spread evenly by name."""
    chosen = [p for p in pairs if grades is None or severity_grade(p[0]) in grades]
    if limit is not None and 0 <= limit < len(chosen):
        picks = np.linspace(0, len(chosen) - 1, limit).round().astype(int) if limit else []
        chosen = [chosen[i] for i in picks]
    return chosen


def report(acc: FaceAccuracy) -> str:
    """The figures as printed by the script."""
    lines = [f"faces found         {acc.faces_found}/{acc.n_photos}"]
    rejected = acc.rejections
    if rejected:
        lines.append(f"rejected            {sum(rejected.values())}, by reason:")
        lines += [f"  {n:3d}  {reason}" for reason, n in rejected.most_common()]
    lines.append(f"all      {acc.overall.line()}")
    for g, s in acc.by_grade.items():
        n_all = sum(row.grade == g for row in acc.rows)
        lines.append(f"grade {g}  {s.line()}  (of {n_all})")
    lines.append(f"photos with >= {CROWDED_ANNOTATED} annotated lesions: {len(acc.crowded)}")
    for row in acc.crowded:
        read = "no face found" if row.found is None else f"found {row.found:3d}"
        flag = f"  << below {CROWDED_FLOOR}" if row.read_low else ""
        lines.append(f"  annotated {row.annotated:3d}  {read}  {row.file}{flag}")
    lines.append(f"time                {acc.seconds_per_photo:.2f} s per photo")
    missed = acc.missed_targets()
    lines.append(
        f"targets (Spearman >= {TARGET_SPEARMAN}, count error <= {TARGET_COUNT_MAE}, "
        f"F1 >= {TARGET_F1}, none of >= {CROWDED_ANNOTATED} below {CROWDED_FLOOR}): "
        + ("met" if not missed else "MISSED: " + "; ".join(missed))
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder of .jpg photos with Pascal VOC .xml beside them")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most N photos, spread evenly over the sorted names")
    parser.add_argument("--grades", type=int, nargs="+", choices=range(4), default=None,
                        help="only photos of these severity grades")
    parser.add_argument("--held-out", action="store_true", help=HELD_OUT_HELP)
    args = parser.parse_args(argv[1:])
    pairs = photo_pairs(args.data_dir)
    if args.held_out:
        pairs = held_out(pairs)
    pairs = select_pairs(pairs, grades=args.grades, limit=args.limit)
    if not pairs:
        print(f"no .jpg with a .xml beside it in {args.data_dir} (grades {args.grades})",
              file=sys.stderr)
        return 2
    acc = face_accuracy(pairs, progress=print_progress)
    print(report(acc))
    return 1 if acc.missed_targets() else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
