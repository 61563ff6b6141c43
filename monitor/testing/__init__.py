"""Ground truth for the engine: seeded synthetic courses, the judge of accuracy, the demo clinic.

- :mod:`~monitor.testing.synthetic`: seeded courses of real faces that ship in packages, with
  painted or real (cut from ACNE04) lesions, erythema, pose, expression and light all known;
  ``python -m monitor.testing sample_images`` writes the bundled sample course.
- :mod:`~monitor.testing.evaluation`: accuracy against that ground truth, or against annotated
  photos (tests, benchmarks, the notebook).
- :mod:`~monitor.testing.demo`: the demo clinic (``python -m monitor demo``) on the sample course.

A synthetic course tests the machinery; it never judges accuracy on real skin.
"""

from __future__ import annotations

from monitor.testing.demo import (
    DEMO_ACCOUNTS,
    DEMO_TODAY,
    TREATMENT_DATE,
    build_demo,
)
from monitor.testing.evaluation import (
    LesionScore,
    course_accuracy,
    match_lesions,
    voc_objects,
)
from monitor.testing.synthetic import (
    ACNE04_TRAIN,
    FACES,
    LESION_STYLES,
    LesionPatch,
    PaintedLesion,
    PoseRange,
    SyntheticCourse,
    SyntheticPhoto,
    base_face,
    card_corners,
    encode_jpeg,
    lesion_patches,
    make_course,
    write_course,
)

__all__ = [
    "ACNE04_TRAIN",
    "DEMO_ACCOUNTS",
    "DEMO_TODAY",
    "FACES",
    "LESION_STYLES",
    "TREATMENT_DATE",
    "LesionPatch",
    "LesionScore",
    "PaintedLesion",
    "PoseRange",
    "SyntheticCourse",
    "SyntheticPhoto",
    "base_face",
    "card_corners",
    "encode_jpeg",
    "build_demo",
    "course_accuracy",
    "lesion_patches",
    "make_course",
    "match_lesions",
    "voc_objects",
    "write_course",
]
