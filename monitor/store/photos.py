"""Where photo files live: a local folder (the default) or an S3-compatible object store.

Both keep each photo once under its content key, ``ab/abcdef....jpg`` (the SHA-256 of the
stored bytes, two characters of it as a folder), written once and never changed: putting a key
that is already there leaves it as it is. So any number of processes on any number of hosts
may put the same photo at once without a lock. Which objects are wanted is the database's
business (:mod:`monitor.store`); this module only puts, gets, lists and deletes.

``$MONITOR_PHOTOS_URL`` chooses: unset, the ``photos`` folder of the data folder;
``s3://bucket/prefix``, that bucket (which must exist) under that prefix. The S3 endpoint and
credentials come from the usual variables boto3 reads (``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, or an instance role). A write-once put is a conditional PUT
(``If-None-Match: *``), which AWS S3, SeaweedFS and MinIO honour.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.errors import PhotoStorageUnavailable

__all__ = [
    "PhotoStorage",
    "FolderStorage",
    "S3Storage",
    "open_storage",
    "photo_key",
    "private_folder",
    "sha_of_key",
]

_KEY = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})\.[a-z0-9]{1,6}$")


def photo_key(sha256: str, suffix: str) -> str:
    """The storage key of a photo: ``"ab/abcdef...<suffix>"``."""
    return f"{sha256[:2]}/{sha256}{suffix}"


def sha_of_key(key: str) -> str | None:
    """The content hash a key names, or ``None`` for a key this store did not write."""
    match = _KEY.match(key)
    return None if match is None else match.group(2)


class PhotoStorage(Protocol):
    """What the store needs of a place for photo files."""

    #: Where the photos are, in words for logs and the deployment guide.
    location: str

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` unless the key exists; whether this call wrote it."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`FileNotFoundError` if there are none."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is not there)."""

    def keys(self) -> Iterator[str]:
        """Every key stored (including keys :func:`sha_of_key` does not recognise)."""

    def tidy(self) -> int:
        """Remove what an interrupted put left behind; how many leftovers were removed."""


def private_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) readable by this user only."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


class FolderStorage:
    """Photos as files under a local folder, private to the server's user.

    A put writes a temporary file in ``.incoming`` (held under an advisory lock while it is
    written), flushes it to disk, then links it to its final name: a link fails when the name
    exists, so the first complete file wins and no reader ever sees half a photo.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.temp_dir = self.folder / ".incoming"
        for path in (self.folder, self.temp_dir):
            private_folder(path)
        self.location = str(self.folder)

    def path(self, key: str) -> Path:
        return self.folder / key

    def put(self, key: str, data: bytes) -> bool:
        final = self.path(key)
        if final.exists():
            return False
        private_folder(self.temp_dir)
        tmp = self.temp_dir / f"{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as handle:
            # Held until the file is linked or removed: tidy() leaves a held file alone.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                private_folder(final.parent)
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    return False
                return True
            finally:
                tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        for path in self.folder.glob("??/*"):
            yield f"{path.parent.name}/{path.name}"

    def tidy(self) -> int:
        """Remove temporary files no put holds, whatever their age; make files private.

        (A store made by an earlier version had files anyone on the machine could read.)
        """
        removed = 0
        for tmp in self.temp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError), open(tmp, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a put in progress
                tmp.unlink()
                removed += 1
        for folder in self.folder.glob("??"):
            private_folder(folder)
        for path in self.folder.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
        return removed


#: A conditional put that meets another put of the same key in flight (SeaweedFS answers 409)
#: is tried again this many times, this far apart (s), until one of them has finished.
_CONFLICT_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


class S3Storage:
    """Photos as objects in an S3-compatible bucket, under ``prefix/``.

    Parameters
    ----------
    url : str
        ``s3://bucket`` or ``s3://bucket/prefix``.
    client : botocore S3 client, optional
        Default: ``boto3.client("s3")`` configured from the environment, with short timeouts
        (an unreachable store fails a request in seconds, not minutes).
    """

    def __init__(self, url: str, *, client: Any = None):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"an object store URL looks like s3://bucket/prefix, got {url!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.location = url
        if client is None:
            import boto3
            from botocore.config import Config

            custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            # A server of one's own (SeaweedFS, MinIO) is named by address, not by bucket DNS.
            client = boto3.client("s3", config=Config(
                connect_timeout=5, read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path" if custom else "auto"}))
        self.client = client

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn the object store's failures into :class:`PhotoStorageUnavailable`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise PhotoStorageUnavailable(
                f"The clinic's photo storage refused the request ({code or 'error'}). "
                "Nothing was changed; please tell the clinic.") from error
        except BotoCoreError as error:
            raise PhotoStorageUnavailable(
                "The clinic's photo storage is not answering just now. Nothing was changed; "
                "please try again in a few minutes.") from error

    def put(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        for pause in (*_CONFLICT_RETRIES, None):
            with self._reachable():
                try:
                    self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data,
                                           IfNoneMatch="*")
                    return True
                except ClientError as error:
                    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                    if status == 412:  # the key exists: written once, by someone
                        return False
                    if status != 409 or pause is None:
                        raise
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        with self._reachable():
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise FileNotFoundError(key) from error
                raise
            return answer["Body"].read()

    def delete(self, key: str) -> None:
        with self._reachable():
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def keys(self) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        with self._reachable():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"][len(start):]

    def tidy(self) -> int:
        """Nothing to tidy: a PUT is atomic, an interrupted one leaves no object."""
        return 0


def open_storage(data_dir: str | os.PathLike, url: str | None = None) -> PhotoStorage:
    """The photo storage of a store: the object store ``url`` (the store passes
    ``$MONITOR_PHOTOS_URL``), else the ``photos`` folder of ``data_dir``."""
    if url is None:
        return FolderStorage(Path(data_dir) / "photos")
    if url.startswith("s3://"):
        return S3Storage(url)
    raise ValueError("MONITOR_PHOTOS_URL must be an s3://bucket/prefix URL (or unset for the "
                     f"data folder), got {url!r}")
