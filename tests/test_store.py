"""The clinic store: accounts, access, atomic photo storage, erasure, concurrency, schema."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.store import (
    AccessDenied,
    AccountError,
    Store,
    stored_photo_count,
    strip_location,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def _jpeg(seed: int, *, gps: bool = False) -> bytes:
    """A small distinct JPEG; with ``gps``, its EXIF carries a location."""
    image = Image.new("RGB", (200, 180), (120 + seed % 100, 90, 80))
    image.putpixel((seed % 200, 5), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0132] = "2026:03:02 09:00:00"  # DateTime
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture()
def clinic(tmp_path):
    """A store with one clinician, two patients (with accounts) and a second clinician."""
    store = Store(tmp_path / "data")
    doc = store.create_user("doc", "correct horse", role="clinician", display_name="Dr Doc")
    other_doc = store.create_user("doc2", "correct horse", role="clinician")
    store.create_user("ann", "ann password", role="patient", display_name="Ann")
    store.create_user("bob", "bob password", role="patient", display_name="Bob")
    ann_id = store.add_patient(doc, "Ann", treatment_date=date(2026, 3, 2), username="ann")
    bob_id = store.add_patient(doc, "Bob", treatment_date=date(2026, 3, 2), username="bob")
    ann, bob = store.user("ann"), store.user("bob")
    yield store, doc, other_doc, ann, bob, ann_id, bob_id
    store.close()


# -- accounts ----------------------------------------------------------------------------------


def test_passwords_are_hashed_and_checked(clinic, tmp_path):
    store, *_ = clinic
    assert store.authenticate("doc", "correct horse").role == "clinician"
    assert store.authenticate("doc", "wrong") is None
    assert store.authenticate("nobody", "correct horse") is None
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("monitor.sqlite*"))
    assert b"correct horse" not in raw and b"$argon2id$" in raw


@pytest.mark.parametrize("username, password, role, message", [
    ("doc", "long enough", "clinician", "already taken"),
    ("new", "short", "patient", "at least 8"),
    ("new", "long enough", "admin", "role"),
    ("", "long enough", "patient", "user name"),
])
def test_account_errors_are_plain(clinic, username, password, role, message):
    store, *_ = clinic
    with pytest.raises(AccountError, match=message):
        store.create_user(username, password, role=role)


# -- access ------------------------------------------------------------------------------------


def test_patient_sees_only_their_own_course(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    assert ann.patient_id == ann_id
    assert [p.id for p in store.patients(ann)] == [ann_id]
    assert store.patient(ann, ann_id).name == "Ann"
    for call in (lambda: store.patient(ann, bob_id), lambda: store.photos(ann, bob_id),
                 lambda: store.checkins(ann, bob_id), lambda: store.corrections(ann, bob_id),
                 lambda: store.add_checkin(ann, bob_id, day=1, fever=True),
                 lambda: store.add_photo(ann, bob_id, _jpeg(1), file_name="x.jpg"),
                 lambda: store.patient(ann, 9999)):
        with pytest.raises(AccessDenied):
            call()


def test_clinician_sees_only_their_own_patients(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    assert {p.id for p in store.patients(doc)} == {ann_id, bob_id}
    assert store.patients(other_doc) == []
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    with pytest.raises(AccessDenied):
        store.photos(other_doc, ann_id)
    with pytest.raises(AccessDenied):
        store.photo_bytes(other_doc, photo.id)
    with pytest.raises(AccessDenied):
        store.photo_bytes(bob, photo.id)
    with pytest.raises(AccessDenied):
        store.delete_patient(other_doc, ann_id, confirm_name="Ann")


def test_patients_cannot_do_clinician_things(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    for call in (lambda: store.add_note(ann, ann_id, "hi"), lambda: store.notes(ann, ann_id),
                 lambda: store.add_correction(ann, photo.id, action="reject", x=1, y=1, radius=2),
                 lambda: store.add_patient(ann, "Eve", treatment_date=date(2026, 1, 1)),
                 lambda: store.delete_patient(ann, ann_id, confirm_name="Ann"),
                 lambda: store.audit_log(ann, ann_id)):
        with pytest.raises(AccessDenied):
            call()


def test_audit_log_records_who_did_what(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    store.record_view(doc, ann_id, "review")
    store.add_correction(doc, photo.id, action="add", x=10, y=20, radius=3)
    log = [(e.actor, e.action) for e in store.audit_log(doc, ann_id)]
    assert ("ann", "upload_photo") in log and ("doc", "view") in log
    assert ("doc", "lesion_add") in log


def test_revision_changes_with_every_change_of_the_corrections(clinic):
    # The app caches the course by this key. Undoing the newest correction frees its id, which
    # SQLite gives to the next one, so the key must not be just (largest id, count).
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    seen = [store.revision(doc, ann_id)]
    first = store.add_correction(doc, photo.id, action="reject", x=10, y=20, radius=3)
    seen.append(store.revision(doc, ann_id))
    store.remove_correction(doc, first)
    assert store.revision(doc, ann_id) == seen[0]
    again = store.add_correction(doc, photo.id, action="add", x=30, y=40, radius=3)
    assert again == first  # the id is reused...
    seen.append(store.revision(doc, ann_id))
    assert len(set(seen)) == 3  # ...and the key still changes


# -- photos ------------------------------------------------------------------------------------


def test_same_photo_twice_is_stored_once(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    first, new1 = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    again, new2 = store.add_photo(ann, ann_id, _jpeg(1), file_name="renamed.jpg")
    assert (new1, new2) == (True, False) and again.id == first.id
    assert len(store.photos(ann, ann_id)) == 1 and stored_photo_count(store) == 1


def test_location_is_never_stored(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    data = _jpeg(3, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    photo, _ = store.add_photo(ann, ann_id, data, file_name="gps.jpg")
    stored = store.photo_bytes(ann, photo.id)
    exif = Image.open(io.BytesIO(stored)).getexif()
    assert not exif.get_ifd(0x8825) and 0x8825 not in exif
    assert exif.get(0x0132) == "2026:03:02 09:00:00"  # the time is kept
    # The image data itself is untouched: same pixels.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))),
                          np.asarray(Image.open(io.BytesIO(data))))


def test_non_jpeg_is_stored_as_png_without_metadata():
    image = Image.new("RGB", (200, 200), (10, 20, 30))
    out = io.BytesIO()
    image.save(out, format="WEBP")
    stored, suffix = strip_location(out.getvalue())
    assert suffix == ".png" and Image.open(io.BytesIO(stored)).getexif() == {}


def test_crash_at_commit_leaves_no_file_and_no_row(clinic, monkeypatch):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic

    def crash(session):
        raise RuntimeError("power cut")

    monkeypatch.setattr(store, "_commit", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        store.add_photo(ann, ann_id, _jpeg(5), file_name="a.jpg")
    monkeypatch.undo()
    assert store.photos(ann, ann_id) == []
    assert stored_photo_count(store) == 0
    assert list(store._temp_dir.iterdir()) == []
    photo, new = store.add_photo(ann, ann_id, _jpeg(5), file_name="a.jpg")  # retry works
    assert new and store.photo_bytes(ann, photo.id)


def test_process_killed_mid_upload_is_cleaned_on_open(clinic, tmp_path):
    """The process dies between the file's rename and the row's commit (os._exit)."""
    store, *_ = clinic
    script = textwrap.dedent(f"""
        import os
        from monitor.store import Store
        store = Store({str(tmp_path / 'data')!r})
        ann = store.user("ann")
        store._commit = lambda session: os._exit(3)
        store.add_photo(ann, ann.patient_id, {_jpeg(7)!r}, file_name="a.jpg")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert stored_photo_count(store) == 1  # the orphan the crash left...
    reopened = Store(tmp_path / "data")
    assert stored_photo_count(reopened) == 0  # ...is gone once the store is opened again
    ann = reopened.user("ann")
    assert reopened.photos(ann, ann.patient_id) == []
    reopened.close()


def test_two_threads_uploading_at_once_lose_nothing(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def upload(user, patient_id, seeds):
        try:
            barrier.wait()
            for seed in seeds:
                store.add_photo(user, patient_id, _jpeg(seed), file_name=f"{seed}.jpg")
                store.add_checkin(user, patient_id, day=seed % 7, pain=True)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    # Ann and Bob upload different photos; then two sessions of Ann upload the same ones.
    threads = [threading.Thread(target=upload, args=(ann, ann_id, range(0, 12))),
               threading.Thread(target=upload, args=(bob, bob_id, range(100, 112)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.photos(ann, ann_id)) == 12 and len(store.photos(bob, bob_id)) == 12
    assert len(store.checkins(ann, ann_id)) == 12 and len(store.checkins(bob, bob_id)) == 12
    barrier.reset()
    threads = [threading.Thread(target=upload, args=(ann, ann_id, range(20, 26)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.photos(ann, ann_id)) == 18
    assert stored_photo_count(store) == 30
    for p in store.photos(ann, ann_id):
        assert store.photo_bytes(ann, p.id)


def test_erasure_removes_every_row_and_file(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    store.add_photo(ann, ann_id, _jpeg(2), file_name="b.jpg")
    shared, _ = store.add_photo(bob, bob_id, _jpeg(2), file_name="b.jpg")  # same bytes as Ann's
    store.save_analysis(ann, photo.id, {"status": "ok"}, engine_version="x",
                        reference_photo_id=photo.id)
    store.add_checkin(ann, ann_id, day=1, fever=True)
    store.add_note(doc, ann_id, "private note")
    store.add_correction(doc, photo.id, action="reject", x=1, y=2, radius=3)
    with pytest.raises(AccountError, match="type their name"):
        store.delete_patient(doc, ann_id, confirm_name="ann?")
    assert stored_photo_count(store) == 2
    store.delete_patient(doc, ann_id, confirm_name="Ann")
    assert stored_photo_count(store) == 1  # Bob's copy stays
    assert store.photo_bytes(bob, shared.id)
    assert store.authenticate("ann", "ann password") is None
    assert [p.id for p in store.patients(doc)] == [bob_id]
    with store.engine.connect() as c:
        for table in ("photos", "analyses", "checkins", "notes", "lesion_corrections",
                      "treatments"):
            rows = c.exec_driver_sql(f"select count(*) from {table} where "
                                     + ("patient_id" if table not in ("analyses",
                                                                      "lesion_corrections")
                                        else "photo_id") + " = ?", (
                                         ann_id if table not in ("analyses", "lesion_corrections")
                                         else photo.id,)).scalar()
            assert rows == 0, table
        details = c.exec_driver_sql("select detail from audit_log where patient_id = ?",
                                    (ann_id,)).scalars().all()
        assert set(details) == {""}
    store.delete_patient(doc, bob_id, confirm_name="Bob")
    assert stored_photo_count(store) == 0


# -- schema ------------------------------------------------------------------------------------


def test_schema_matches_the_migrations(clinic):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store import METADATA

    store, *_ = clinic
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), METADATA)
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert diff == [] and mode == "wal"


def test_opening_twice_keeps_data(clinic, tmp_path):
    store, doc, *_ = clinic
    again = Store(tmp_path / "data")
    assert again.authenticate("doc", "correct horse") is not None
    again.close()
