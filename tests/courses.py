"""Seeded synthetic courses for tests, made once per test session."""

from __future__ import annotations

import functools
from pathlib import Path

from monitor.testing import SyntheticCourse, make_course

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@functools.lru_cache(maxsize=16)
def course(seed: int) -> SyntheticCourse:
    """The default synthetic course for ``seed`` (cached: courses are immutable)."""
    return make_course(seed)
