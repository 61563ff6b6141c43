"""Photo storage: the local folder and a real S3-compatible object store (SeaweedFS, started
by the test session: tests/conftest.py), alone and under the store's upload protocol."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from monitor.errors import PhotoStorageUnavailable
from monitor.store import UPLOAD_DEADLINE, Store, stored_photo_count
from monitor.store.photos import FolderStorage, S3Storage, open_storage, photo_key, sha_of_key

ROOT = Path(__file__).resolve().parents[2]
SHA = hashlib.sha256(b"a photo").hexdigest()


def _jpeg(seed: int) -> bytes:
    image = Image.new("RGB", (160, 120), (100 + seed % 120, 90, 80 + seed // 120))
    image.putpixel((seed % 160, 3), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture(params=["folder", "s3"])
def storage(request, tmp_path):
    if request.param == "folder":
        return FolderStorage(tmp_path / "photos")
    return S3Storage(request.getfixturevalue("photos_url"))


def _clinic(store: Store, patients: int = 1):
    doc = store.create_user("doc", "correct horse", role="clinician")
    ids = [store.add_patient(doc, f"Pat {i}", treatment_date=date(2026, 3, 2))
           for i in range(patients)]
    return doc, ids


def _pending(store: Store) -> int:
    with store.engine.connect() as c:
        return c.execute(text("select count(*) from pending_uploads")).scalar()


# -- the storage interface ---------------------------------------------------------------------


def test_keys_name_their_content_hash():
    key = photo_key(SHA, ".jpg")
    assert key == f"{SHA[:2]}/{SHA}.jpg" and sha_of_key(key) == SHA
    for foreign in ("ready", f"{SHA}.jpg", f"zz/{SHA}.jpg", f"{SHA[:2]}/{SHA[:-1]}.jpg",
                    f"{SHA[:2]}/{SHA}.jpg/extra", f"ff/{SHA}.jpg"):
        assert sha_of_key(foreign) is None, foreign


def test_a_key_is_written_once_and_read_back(storage):
    key = photo_key(SHA, ".jpg")
    assert storage.put(key, b"a photo") is True
    assert storage.put(key, b"something else") is False  # write-once: the first stays
    assert storage.get(key) == b"a photo"
    assert list(storage.keys()) == [key]
    storage.delete(key)
    storage.delete(key)  # already gone: nothing happens
    with pytest.raises(FileNotFoundError):
        storage.get(key)
    assert list(storage.keys()) == []


def test_puts_of_one_key_at_once_write_it_exactly_once(storage):
    key = photo_key(SHA, ".png")
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def put() -> None:
        barrier.wait()
        results.append(storage.put(key, b"a photo"))

    threads = [threading.Thread(target=put) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 5 + [True]
    assert storage.get(key) == b"a photo"


def test_the_location_is_chosen_by_url(tmp_path, monkeypatch):
    monkeypatch.delenv("MONITOR_PHOTOS_URL", raising=False)
    assert isinstance(open_storage(tmp_path), FolderStorage)
    s3 = open_storage(tmp_path, "s3://bucket/some/prefix/")
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_storage(tmp_path, "/mnt/photos")


def test_the_store_takes_its_photos_url_from_the_environment(tmp_path, photos_url,
                                                              monkeypatch):
    monkeypatch.setenv("MONITOR_PHOTOS_URL", photos_url)
    store = Store(tmp_path / "data")
    assert isinstance(store.photo_storage, S3Storage) and store.photos_url == photos_url
    store.close()
    monkeypatch.delenv("MONITOR_PHOTOS_URL")
    store = Store(tmp_path / "data")
    assert isinstance(store.photo_storage, FolderStorage) and store.photos_url is None
    store.close()


def test_an_unreachable_object_store_fails_in_words_and_stores_nothing(tmp_path, monkeypatch,
                                                                       object_store):
    for name, value in object_store.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    store = Store(tmp_path / "data", photos_url="s3://monitor-test/nowhere")  # still opens
    doc, (pat,) = _clinic(store)
    with pytest.raises(PhotoStorageUnavailable, match="not answering"):
        store.add_photo(doc, pat, _jpeg(1), file_name="a.jpg")
    assert time.monotonic() - started < 60
    assert store.photos(doc, pat) == [] and _pending(store) == 0
    store.close()


# -- the store on an object store --------------------------------------------------------------


def test_the_store_keeps_photos_in_the_object_store(tmp_path, database_url, photos_url):
    store = Store(tmp_path / "data", url=database_url, photos_url=photos_url)
    doc, (ann, bob) = _clinic(store, 2)
    photo, new = store.add_photo(doc, ann, _jpeg(1), file_name="a.jpg")
    again, new_again = store.add_photo(doc, ann, _jpeg(1), file_name="a.jpg")
    assert new and not new_again and again.id == photo.id
    store.add_photo(doc, bob, _jpeg(1), file_name="same.jpg")  # one object for both
    store.add_photo(doc, bob, _jpeg(2), file_name="b.jpg")
    assert store.photo_bytes(doc, photo.id) == _jpeg(1)  # a JPEG without metadata as it is
    assert not (tmp_path / "data" / "photos").exists()  # nothing on this host's disk
    assert stored_photo_count(store) == 2 and _pending(store) == 0
    other = Store(tmp_path / "another-host", url=store.url, photos_url=photos_url)
    assert other.photo_bytes(doc, photo.id) == _jpeg(1)
    assert store.delete_patient(doc, bob, confirm_name="Pat 1") == 1  # Ann's copy stays
    assert store.photo_bytes(doc, photo.id) == _jpeg(1) and stored_photo_count(store) == 1
    assert store.delete_patient(doc, ann, confirm_name="Pat 0") == 1
    assert stored_photo_count(other) == 0
    other.close()
    store.close()


def test_a_damaged_object_is_never_shown_as_the_photo(tmp_path, photos_url):
    store = Store(tmp_path / "data", photos_url=photos_url)
    doc, (pat,) = _clinic(store)
    photo, _ = store.add_photo(doc, pat, _jpeg(1), file_name="a.jpg")
    key = photo_key(photo.sha256, ".jpg")
    store.photo_storage.delete(key)
    store.photo_storage.put(key, _jpeg(2))
    with pytest.raises(PhotoStorageUnavailable, match="missing or damaged"):
        store.photo_bytes(doc, photo.id)
    store.close()


def test_a_failed_commit_leaves_no_object_and_no_announcement(tmp_path, database_url,
                                                              photos_url, monkeypatch):
    store = Store(tmp_path / "data", url=database_url, photos_url=photos_url)
    doc, (pat,) = _clinic(store)

    def crash(session):
        raise RuntimeError("power cut")

    monkeypatch.setattr(store, "_commit", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        store.add_photo(doc, pat, _jpeg(3), file_name="a.jpg")
    monkeypatch.undo()
    assert store.photos(doc, pat) == [] and stored_photo_count(store) == 0
    assert _pending(store) == 0
    store.close()


def test_a_sweep_past_the_deadline_mid_upload_cannot_leave_a_row_without_its_object(
        tmp_path, database_url, photos_url):
    """An upload so slow that another server's sweep counts it dead between the upload's
    put and its commit: the sweep removes the object, the commit sees its announcement gone
    and writes the object again before the row is committed."""
    store = Store(tmp_path / "data", url=database_url, photos_url=photos_url)
    doc, (pat,) = _clinic(store)
    sweeper = Store(tmp_path / "other-host", url=store.url, photos_url=photos_url)
    later = store.now() + UPLOAD_DEADLINE + timedelta(minutes=5)
    sweeper.now = lambda: later
    real_put = store.photo_storage.put
    swept = []

    def put_then_sweep(key: str, data: bytes) -> bool:
        wrote = real_put(key, data)
        if not swept:
            swept.append(sweeper.recover())
        return wrote

    store.photo_storage.put = put_then_sweep
    photo, new = store.add_photo(doc, pat, _jpeg(4), file_name="slow.jpg")
    assert new and swept == [{"temporary": 0, "orphans": 1}]
    assert store.photo_bytes(doc, photo.id) == _jpeg(4)
    assert sweeper.recover()["orphans"] == 0 and _pending(store) == 0
    sweeper.close()
    store.close()


# -- four app servers, no shared folder, one database, one object store (issue #15) -----------

_SERVER = textwrap.dedent("""
    import sys, time
    from monitor.store import Store, UPLOAD_DEADLINE
    from tests.store.test_photos import _jpeg
    folder, url, photos_url, role, start = sys.argv[1:6]
    store = Store(folder, url=url, photos_url=photos_url)
    doc = store.user("doc")
    patients = [p.id for p in store.patients(doc)]
    time.sleep(max(0.0, float(start) - time.time()))
    if role == "sweeper":
        # Its clock is past every upload's deadline: it takes every announcement as dead.
        later = store.now() + UPLOAD_DEADLINE * 2
        store.now = lambda: later
        swept = 0
        until = time.time() + float(sys.argv[6])
        while time.time() < until:
            swept += store.recover()["orphans"]
        print("swept", swept)
    elif role == "read":
        print(sum(len(store.photo_bytes(doc, ph.id)) > 0
                  for p in patients for ph in store.photos(doc, p)))
    elif role == "hang":  # dies between writing its object and committing its row
        def hang(session):
            print("put done", flush=True)
            time.sleep(600)
        store._commit = hang
        store.add_photo(doc, patients[0], _jpeg(int(sys.argv[6])), file_name="killed.jpg")
    else:
        # A slow network: 50 ms from each object written to its row's commit, so that the
        # sweeper often takes the object (and the announcement) in between.
        put = store.photo_storage.put
        def slow_put(key, data):
            wrote = put(key, data)
            time.sleep(0.05)
            return wrote
        store.photo_storage.put = slow_put
        seeds = [int(s) for s in role.split(",")]
        for seed in seeds:
            store.add_photo(doc, patients[seed % len(patients)], _jpeg(seed),
                            file_name=f"{seed}.jpg")
        print(len(seeds))
""")


def _server(folder: Path, url: str, photos_url: str, role: str, start: float,
            *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _SERVER, str(folder), url, photos_url, role,
                             str(start), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _finish(run: subprocess.Popen) -> str:
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-2000:]
    return out.strip()


def test_four_servers_share_one_object_store_and_a_killed_upload_harms_nothing(
        tmp_path, photos_url):
    from tests.conftest import postgres_database

    with postgres_database() as url:
        store = Store(tmp_path / "setup", url=url, photos_url=photos_url)
        _clinic(store, 3)
        start = time.time() + 4.0  # past every interpreter's start-up
        uploads = [_server(tmp_path / f"host{i}", url, photos_url,
                           ",".join(str(seed) for seed in range(i, 45, 4)), start)
                   for i in range(4)]
        sweeper = _server(tmp_path / "host4", url, photos_url, "sweeper", start, "12")
        assert sum(int(_finish(run)) for run in uploads) == 45
        assert int(_finish(sweeper).removeprefix("swept ")) > 0  # it did race the uploads
        doc = store.user("doc")
        assert sum(len(store.photos(doc, p.id)) for p in store.patients(doc)) == 45

        hang = _server(tmp_path / "host5", url, photos_url, "hang", 0.0, "99")
        assert hang.stdout.readline().strip() == "put done"
        os.kill(hang.pid, signal.SIGKILL)
        hang.wait(timeout=30)
        assert stored_photo_count(store) == 46 and _pending(store) == 1

        # Each server, reopened (its sweep on open runs), reads every photo.
        reads = [_server(tmp_path / f"host{i}", url, photos_url, "read", 0.0) for i in range(4)]
        assert [_finish(run) for run in reads] == ["45"] * 4
        assert stored_photo_count(store) == 46  # the killed upload's object: not yet dead
        assert _pending(store) == 1
        later = store.now() + UPLOAD_DEADLINE + timedelta(minutes=1)
        store.now = lambda: later
        assert store.recover()["orphans"] == 1
        assert stored_photo_count(store) == 45 and _pending(store) == 0
        for patient in store.patients(doc):
            for photo in store.photos(doc, patient.id):
                assert hashlib.sha256(store.photo_bytes(doc, photo.id)).hexdigest() \
                    == photo.sha256
        store.close()


def test_a_reanalysis_worker_opens_the_same_object_store(tmp_path, photos_url, monkeypatch):
    """The worker's store comes from StoreSettings (picklable): the photos' URL travels with
    it, even when the command was given it as an argument rather than in the environment."""
    import pickle

    from monitor.clinic import StoreSettings

    monkeypatch.delenv("MONITOR_PHOTOS_URL", raising=False)
    store = Store(tmp_path / "data", photos_url=photos_url)
    doc, (pat,) = _clinic(store)
    photo, _ = store.add_photo(doc, pat, _jpeg(5), file_name="a.jpg")
    settings = pickle.loads(pickle.dumps(StoreSettings.of(store)))
    assert settings.photos_url == photos_url
    worker = settings.open()
    assert worker.photo_bytes(doc, photo.id) == _jpeg(5)
    worker.close()
    store.close()
