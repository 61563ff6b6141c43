"""Shared fixtures: seeded synthetic courses written as photo files."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
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



#: A PostgreSQL server the tests may create databases on, as an SQLAlchemy URL
#: (``.ci/run`` starts one and sets it); store and page tests run on it as well as on SQLite.
POSTGRES_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL")
# Never the clinic's own database: a store a test opens without a URL is SQLite in its folder.
os.environ.pop("MONITOR_DATABASE_URL", None)


@contextlib.contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (a copy of ``template``'s, given as its URL), its URL, and
    the database dropped afterwards. Skips the test without a server, fails it in CI."""
    if not POSTGRES_URL:
        message = "no PostgreSQL server to test on: set MONITOR_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    copy = "" if template is None else f' TEMPLATE "{make_url(template).database}"'
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """``None`` (the store's SQLite file in its data folder) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url
