"""Accuracy of an analysis against ground truth (synthetic courses, annotated photos).

Used by the tests, the benchmarks and the notebook, so that every figure we quote is computed
the same way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

from monitor.imaging import photo_to_reference

__all__ = ["LesionScore", "match_lesions", "course_accuracy", "voc_objects"]


def voc_objects(xml_path: Path) -> list[tuple[str, float, float, float, float]]:
    """The annotated objects of a Pascal VOC file: (class name, x0, y0, x1, y1) in pixels."""
    objects = []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        x0, y0, x1, y1 = (float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((obj.findtext("name") or "", x0, y0, x1, y1))
    return objects


@dataclass(frozen=True)
class LesionScore:
    """Detection counts and the figures made from them."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 1.0

    def __add__(self, other: LesionScore) -> LesionScore:
        return LesionScore(self.true_positives + other.true_positives,
                           self.false_positives + other.false_positives,
                           self.false_negatives + other.false_negatives)


def match_lesions(detected: Sequence[Mapping], truth: Sequence[Mapping], *,
                  radius_factor: float = 1.5, slack_px: float = 3.0) -> LesionScore:
    """One-to-one matching of detections to true lesions (Hungarian, by distance).

    A detection may match a true lesion whose centre is within ``radius_factor`` times the
    true radius plus ``slack_px`` pixels. Both sequences hold dicts with ``x``, ``y`` and
    (for the truth) ``radius``, in the same pixels.
    """
    if not detected or not truth:
        return LesionScore(0, len(detected), len(truth))
    d = np.array([(p["x"], p["y"]) for p in detected], float)
    t = np.array([(p["x"], p["y"]) for p in truth], float)
    reach = np.array([radius_factor * p["radius"] + slack_px for p in truth], float)
    distance = np.linalg.norm(d[:, None, :] - t[None, :, :], axis=2)
    allowed = distance <= reach[None, :]
    cost = np.where(allowed, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    matched = int(allowed[rows, cols].sum())
    return LesionScore(matched, len(detected) - matched, len(truth) - matched)


def course_accuracy(course, analysis: Mapping) -> dict:
    """Alignment, lesion and redness accuracy of an analysis of a synthetic course.

    Parameters
    ----------
    course : monitor.testing.synthetic.SyntheticCourse
        The ground truth; photo files are named ``day{N}.jpg``.
    analysis : mapping
        The ``monitor.analysis/1`` JSON of that course.

    Returns
    -------
    dict
        ``alignment_median_iod``, ``alignment_worst_iod`` (fractions of the reference IOD),
        ``lesions`` (LesionScore over all photos), ``count_error_mean`` (mean absolute error of
        ``lesion_count`` per photo), ``redness_spearman`` (redness.index against the painted
        erythema across days), ``accepted`` and ``photos``.
    """
    entries = {p["file"]: p for p in analysis["photos"]}
    reference_day = next(int(name[3:-4]) for name in [analysis["reference"]])
    errors, score, count_errors, painted, measured = [], LesionScore(0, 0, 0), [], [], []
    accepted = 0
    for photo in course.photos:
        entry = entries.get(f"day{photo.day}.jpg")
        if entry is None or entry["status"] != "ok":
            continue
        accepted += 1
        src, dst = course.correspondence(photo.day, reference_day)
        iod = float(np.linalg.norm(dst[468] - dst[473]))
        mapped = photo_to_reference(entry, src)
        errors.append(np.linalg.norm(mapped - dst, axis=1) / iod)
        if entry.get("lesions") is not None:
            truth = photo.lesions_in_photo()
            score = score + match_lesions(entry["lesions"], truth)
            count_errors.append(abs(entry["lesion_count"] - len(truth)))
        if entry.get("redness") and entry["redness"].get("index") is not None:
            painted.append(photo.erythema)
            measured.append(entry["redness"]["index"])
    all_errors = np.concatenate(errors) if errors else np.array([np.nan])
    return {
        "photos": len(course.photos),
        "accepted": accepted,
        "alignment_median_iod": float(np.median(all_errors)),
        "alignment_worst_iod": float(np.max(all_errors)),
        "lesions": score,
        "count_error_mean": float(np.mean(count_errors)) if count_errors else float("nan"),
        "redness_spearman": (float(spearmanr(painted, measured)[0]) if len(painted) > 2
                             else float("nan")),
    }
