"""Shared fixtures: seeded synthetic courses written as photo files."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from monitor.synthetic import SyntheticCourse, write_course
from tests.courses import course


@pytest.fixture(scope="session")
def course_folder(tmp_path_factory):
    """``course_folder(seed)`` writes a seeded course as JPEGs (EXIF times set) once."""

    @functools.cache
    def write(seed: int) -> tuple[SyntheticCourse, Path]:
        folder = tmp_path_factory.mktemp(f"course{seed}")
        c = course(seed)
        write_course(c, folder)
        return c, folder

    return write
