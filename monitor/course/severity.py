"""Severity of a breakout by lesion count (Hayashi grading)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.course.records import is_whole, json_number

__all__ = [
    "HAYASHI_SCALE",
    "Severity",
    "hayashi_grade",
]


#: The severity scale reported with every course.
HAYASHI_SCALE = (
    "Hayashi (J Dermatol 2008; Japanese Dermatological Association acne grading): "
    "inflammatory lesions (papules + pustules) on one half of the face, "
    "0-5 mild, 6-20 moderate, 21-50 severe, >50 very severe; "
    "the half-face count is estimated as half the whole-face count, rounded up"
)


_HAYASHI_GRADES = ((5, "mild"), (20, "moderate"), (50, "severe"))


def hayashi_grade(half_face_count: int) -> str:
    """Acne severity grade of Hayashi et al. (J Dermatol 2008) from a half-face count.

    Parameters
    ----------
    half_face_count : int
        Inflammatory lesions (papules + pustules) on one half of the face, >= 0.

    Returns
    -------
    str
        ``"mild"`` (0-5), ``"moderate"`` (6-20), ``"severe"`` (21-50) or ``"very severe"`` (>50).
    """
    if isinstance(half_face_count, bool) or not is_whole(half_face_count) or half_face_count < 0:
        raise ValueError(f"half_face_count must be a whole number >= 0, got {half_face_count!r}")
    for upper, grade in _HAYASHI_GRADES:
        if half_face_count <= upper:
            return grade
    return "very severe"


@dataclass(frozen=True)
class Severity:
    """Severity of the breakout on one day, on the Hayashi scale.

    Attributes
    ----------
    grade : str
        ``"mild"``, ``"moderate"``, ``"severe"`` or ``"very severe"``.
    half_face_count : int
        Estimated lesions on one half of the face (what the scale counts).
    whole_face_count : float
        Lesions on the whole face (median over the day's photos).
    day : int
        Day the severity refers to.
    scale : str
        The scale and how the count was made.
    """

    grade: str
    half_face_count: int
    whole_face_count: float
    day: int
    scale: str = HAYASHI_SCALE

    @classmethod
    def from_whole_face(cls, count: float, *, day: int) -> Severity:
        """Severity from a whole-face lesion count (the half-face count is half, rounded up)."""
        half = int(math.ceil(max(float(count), 0.0) / 2.0 - 1e-9))
        return cls(grade=hayashi_grade(half), half_face_count=half, whole_face_count=count, day=day)

    def to_json(self) -> dict:
        return {
            "scale": self.scale,
            "grade": self.grade,
            "count": self.half_face_count,
            "whole_face_count": json_number(self.whole_face_count),
            "day": self.day,
        }
