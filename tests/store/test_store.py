"""The clinic store: accounts, access, atomic photo storage, erasure, concurrency, schema."""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
import sys
import textwrap
import threading
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from monitor.store import (
    AccessDenied,
    AccountError,
    Store,
    stored_photo_count,
    strip_location,
)

REPO = Path(__file__).resolve().parents[2]


def _on_sqlite(store: Store) -> bool:
    return store.engine.dialect.name == "sqlite"


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
def clinic(tmp_path, database_url):
    """A store with one clinician, two patients (with accounts) and a second clinician, on
    SQLite and on PostgreSQL (``database_url``, tests/conftest.py)."""
    store = Store(tmp_path / "data", url=database_url)
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
    with store.engine.connect() as c:
        hashes = c.execute(text("select password_hash from users")).scalars().all()
    assert hashes and all(h.startswith("$argon2id$") and "correct horse" not in h
                          for h in hashes)
    if _on_sqlite(store):  # nor in the database's files
        raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("monitor.sqlite*"))
        assert b"correct horse" not in raw and b"$argon2id$" in raw


@pytest.mark.parametrize("username, password, role, message", [
    ("doc", "long enough", "clinician", "already taken"),
    ("DOC", "long enough", "clinician", "already taken"),  # names are one without case
    (" Doc ", "long enough", "clinician", "already taken"),
    ("new", "short", "patient", "at least 10"),
    ("new", "password", "patient", "at least 10"),
    ("new", "12345678", "patient", "at least 10"),
    ("new", " " * 8, "patient", "at least 10"),
    ("new", " " * 12, "patient", "too simple"),
    ("new", "x" * 100_000, "patient", "at most 128"),
    ("new", "Password123!", "patient", "too easy"),
    ("new", "qwertyuiop", "patient", "too easy"),
    ("new", "1234567890", "patient", "too easy"),
    ("new", "aaaaaaaaaaaa", "patient", "too simple"),
    ("newcomer", "newcomer2026", "patient", "too easy"),
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
    assert again != first  # ids are never given twice (AUTOINCREMENT)...
    seen.append(store.revision(doc, ann_id))
    assert len(set(seen)) == 3  # ...and the key changes


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
    assert list(store.photo_storage.temp_dir.iterdir()) == []
    photo, new = store.add_photo(ann, ann_id, _jpeg(5), file_name="a.jpg")  # retry works
    assert new and store.photo_bytes(ann, photo.id)


def test_process_killed_mid_upload_is_swept_once_past_the_deadline(clinic, tmp_path):
    """The process dies between writing the photo's file and committing its row (os._exit):
    its announcement keeps the file from the sweep until the upload's deadline has passed
    (another server's upload of it may be about to commit), then the sweep removes both."""
    from monitor.store import UPLOAD_DEADLINE

    store, *_ = clinic
    script = textwrap.dedent(f"""
        import os
        from monitor.store import Store
        store = Store({str(tmp_path / 'data')!r}, url={store.url!r})
        ann = store.user("ann")
        store._commit = lambda session: os._exit(3)
        store.add_photo(ann, ann.patient_id, {_jpeg(7)!r}, file_name="a.jpg")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert stored_photo_count(store) == 1  # the orphan the crash left...
    reopened = Store(tmp_path / "data", url=store.url)
    assert stored_photo_count(reopened) == 1  # ...is kept while its upload could still commit
    ann = reopened.user("ann")
    assert reopened.photos(ann, ann.patient_id) == []
    later = reopened.now() + UPLOAD_DEADLINE + timedelta(minutes=1)
    reopened.now = lambda: later
    assert reopened.recover() == {"temporary": 0, "orphans": 1}
    assert stored_photo_count(reopened) == 0
    with reopened.engine.connect() as c:
        assert c.execute(text("select count(*) from pending_uploads")).scalar() == 0
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
            by_photo = table in ("analyses", "lesion_corrections")
            rows = c.execute(text(f"select count(*) from {table} where "
                                  + ("photo_id" if by_photo else "patient_id") + " = :id"),
                             {"id": photo.id if by_photo else ann_id}).scalar()
            assert rows == 0, table
        rows = c.execute(text("select actor_name, action, detail from audit_log where "
                              "patient_id = :id"), {"id": ann_id}).all()
        assert [tuple(r) for r in rows] == [
            (f"clinician #{doc.id}", "erase_patient",
             f"patient #{ann_id} erased by clinician #{doc.id}")]
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
        if _on_sqlite(store):
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert diff == []


def test_opening_twice_keeps_data(clinic, tmp_path):
    store, doc, *_ = clinic
    again = Store(tmp_path / "data", url=store.url)
    assert again.authenticate("doc", "correct horse") is not None
    again.close()


# -- who the actor is (issue #16, finding 1) ---------------------------------------------------


def test_erased_ids_are_never_given_again_and_a_stale_user_reads_nothing(clinic):
    """An erased patient's open tab must not read the next new patient's record."""
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    store.delete_patient(doc, bob_id, confirm_name="Bob")  # bob held the highest ids
    new = store.create_user("carol", "mossy garden gate", role="patient",
                            clinician="doc", treatment_date=date(2026, 3, 5))
    assert new.id != bob.id and new.patient_id != bob_id
    store.add_photo(new, new.patient_id, _jpeg(9), file_name="c.jpg")
    assert store.current(bob) is None and store.current(new) == new
    for call in (lambda: store.patient(bob, new.patient_id),
                 lambda: store.patients(bob),
                 lambda: store.photos(bob, new.patient_id),
                 lambda: store.checkins(bob, new.patient_id),
                 lambda: store.add_photo(bob, new.patient_id, _jpeg(8), file_name="x.jpg"),
                 lambda: store.add_checkin(bob, new.patient_id, day=1)):
        with pytest.raises(AccessDenied, match="sign in again"):
            call()
    assert len(store.photos(new, new.patient_id)) == 1


def test_a_user_whose_role_changed_is_signed_out(clinic):
    store, doc, other_doc, ann, *_ = clinic
    with store.engine.begin() as c:
        c.execute(text("update users set role = 'clinician' where id = :id"), {"id": ann.id})
    assert store.current(ann) is None
    with pytest.raises(AccessDenied):
        store.patients(ann)


def test_upgrading_a_store_of_the_first_schema_keeps_its_data_and_stops_reusing_ids(tmp_path):
    from alembic import command

    from monitor.store.database import _alembic_config

    folder = tmp_path / "old"
    store = Store(folder)
    with store.engine.begin() as c:
        command.downgrade(_alembic_config(c), "base")
    with store.engine.begin() as c:
        command.upgrade(_alembic_config(c), "0001")
        c.exec_driver_sql("insert into users (id, username, password_hash, role, display_name,"
                          " is_demo, created_at) values (1, 'Doc', 'x', 'clinician', 'Doc', 0,"
                          " '2026-01-01'), (2, 'pat', 'x', 'patient', 'Pat', 0, '2026-01-01')")
        c.exec_driver_sql("insert into patients (id, name, user_id, clinician_id, created_at)"
                          " values (1, 'Pat', 2, 1, '2026-01-01')")
    store.close()
    store = Store(folder)  # upgrades to the newest schema
    doc = store.user("doc")  # found without case
    assert doc is not None and [p.name for p in store.patients(doc)] == ["Pat"]
    with store.engine.begin() as c:
        c.exec_driver_sql("delete from patients where id = 1")
        c.exec_driver_sql("delete from users where id = 2")
    new = store.create_user("newpat", "a long new secret", role="patient", clinician="Doc")
    assert new.id == 3 and new.patient_id == 2
    store.close()


# -- sign-in (finding 3) -----------------------------------------------------------------------


class _Clock:
    def __init__(self):
        from datetime import datetime

        self.t = datetime(2026, 3, 9, 12, 0, 0)

    def __call__(self):
        return self.t

    def advance(self, **kwargs):
        from datetime import timedelta

        self.t += timedelta(**kwargs)


def test_password_guessing_is_slowed_then_locked_out(clinic):
    from monitor.store import SignInPaused

    store, doc, *_ = clinic
    store.now = clock = _Clock()
    refused = 0
    for _ in range(30):
        try:
            assert store.authenticate("doc", "wrong guess", client="10.0.0.9") is None
        except SignInPaused as paused:
            refused += 1
            assert "Please wait" in str(paused)
        clock.advance(seconds=1)
    assert refused >= 20  # most of the 30 guesses were not even tried
    for _ in range(10):  # a patient guesser who waits out every pause...
        clock.advance(minutes=2)
        with contextlib.suppress(SignInPaused):
            store.authenticate("doc", "wrong guess")
    with pytest.raises(SignInPaused, match="minute"):  # ...is locked out: the right
        store.authenticate("DOC", "correct horse")       # password waits too
    with store.engine.connect() as c:
        actions = c.exec_driver_sql("select action from audit_log").scalars().all()
    assert "sign_in_locked" in actions
    clock.advance(minutes=16)
    assert store.authenticate("doc", "correct horse", client="10.0.0.9") is not None
    assert store.authenticate("doc", "wrong guess") is None  # the count started again
    assert store.authenticate("doc", "correct horse") is not None


def test_one_client_guessing_many_accounts_is_slowed(clinic):
    from monitor.store import SignInPaused

    store, *_ = clinic
    store.now = clock = _Clock()
    with pytest.raises(SignInPaused):
        for i in range(40):
            store.authenticate(f"someone{i}", "guess", client="10.0.0.7")
            clock.advance(seconds=0.5)
    assert store.authenticate("doc", "correct horse", client="10.0.0.8") is not None
    clock.advance(days=2)
    store.authenticate("doc", "another wrong guess")
    with store.engine.connect() as c:
        keys = c.exec_driver_sql("select key from sign_in_failures").scalars().all()
    assert keys == ["account:doc"]  # a day later, the typed names of old guesses are gone


def test_users_add_creates_nothing_when_it_fails(clinic, tmp_path, monkeypatch, capsys):
    from monitor.cli.clinic import main

    store, *_ = clinic
    data = str(tmp_path / "data")
    monkeypatch.setenv("MONITOR_DATABASE_URL", store.url)  # the command finds the same store
    cases = [
        (["jane", "--role", "patient", "--clinician", "nobody"], "quiet orchard path",
         "no clinician named"),
        (["jane", "--role", "patient", "--clinician", "doc"], "password", "at least 10"),
        (["jane", "--role", "patient", "--clinician", "doc", "--treatment-date", "03/02"],
         "quiet orchard path", "YYYY-MM-DD"),
        (["Doc", "--role", "clinician"], "a long secret here", "already taken"),
    ]
    for args, password, message in cases:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert main(["users", "add", *args, "--password-stdin", "--data", data]) == 2
        assert message in capsys.readouterr().err
        assert store.user("jane") is None
    doc = store.user("doc")
    assert [p.name for p in store.patients(doc)] == ["Ann", "Bob"]
    monkeypatch.setattr("sys.stdin", io.StringIO("quiet orchard path\n"))
    assert main(["users", "add", "jane", "--role", "patient", "--clinician", "DOC",
                 "--password-stdin", "--data", data]) == 0
    jane = store.user("Jane")
    assert jane is not None and store.patient(jane, jane.patient_id).clinician_id == doc.id


# -- sessions (finding 4) ----------------------------------------------------------------------


def test_a_session_cookie_is_claimed_once_and_expires_when_idle(clinic):
    store, doc, other_doc, ann, *_ = clinic
    store.now = clock = _Clock()
    session_id, ticket = store.start_session(ann)
    token = store.claim_session(ticket)
    assert token and store.claim_session(ticket) is None  # the ticket works once
    assert store.session_user(token=token) == (session_id, ann)
    assert store.session_user(session_id=session_id) == (session_id, ann)
    assert store.session_user(token="made up") is None
    clock.advance(days=13)
    assert store.session_user(token=token) is not None  # patients: 14 days idle
    clock.advance(days=13)
    assert store.session_user(token=token) is not None  # the last use counts, not the first
    clock.advance(days=15)
    assert store.session_user(token=token) is None
    doc_session, doc_ticket = store.start_session(doc)
    doc_token = store.claim_session(doc_ticket)
    clock.advance(minutes=29)
    assert store.session_user(token=doc_token) is not None  # clinicians: 30 minutes
    clock.advance(minutes=31)
    assert store.session_user(session_id=doc_session) is None
    late_id, late_ticket = store.start_session(doc)
    clock.advance(minutes=3)
    assert store.claim_session(late_ticket) is None  # a ticket lasts 2 minutes
    with store.engine.connect() as c:
        raw = repr(c.execute(text("select * from sessions")).all()).encode()
    if _on_sqlite(store):
        raw += b"".join(p.read_bytes() for p in store.data_dir.glob("monitor.sqlite*"))
    assert token.encode() not in raw and ticket.encode() not in raw  # hashes only


def test_sign_out_and_erasure_end_sessions(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    sid, ticket = store.start_session(ann)
    token = store.claim_session(ticket)
    store.end_session(sid)
    assert store.session_user(token=token) is None
    sid, ticket = store.start_session(bob)
    token = store.claim_session(ticket)
    store.delete_patient(doc, bob_id, confirm_name="Bob")
    assert store.session_user(token=token) is None
    assert store.session_user(session_id=sid) is None


# -- erasure (finding 5) -----------------------------------------------------------------------


def test_erasure_leaves_no_byte_of_the_patient_in_the_data_folder(clinic):
    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    name, note = "Zeldaquix Erasedname", "knee scar, allergic to qpzmvb-ointment"
    zelda = store.create_user("zeldaquix", "violet harbour lamp", role="patient",
                              display_name=name, clinician="doc")
    pid = zelda.patient_id
    photo, _ = store.add_photo(zelda, pid, _jpeg(42), file_name="zeldaquix-selfie.jpg")
    stored = store.photo_bytes(zelda, photo.id)
    store.save_analysis(zelda, photo.id, {"status": "ok", "file": "zeldaquix-selfie.jpg"},
                        engine_version="x", reference_photo_id=photo.id)
    store.add_checkin(zelda, pid, day=1, fever=True)
    store.add_note(doc, pid, note)
    store.record_view(doc, pid, "review")
    assert store.authenticate("zeldaquix", "wrong guess") is None
    assert store.authenticate("zeldaquix", "violet harbour lamp") is not None
    store.start_session(zelda)

    def leftovers() -> list[str]:
        found = []
        for path in store.data_dir.rglob("*"):
            if path.is_file():
                raw = path.read_bytes()
                for secret in (name.encode(), b"zeldaquix", b"Zeldaquix", b"qpzmvb",
                               stored[200:264]):
                    if secret in raw:
                        found.append(f"{path.name}: {secret[:20]!r}")
        return found

    assert leftovers()  # the check can see them...
    store.delete_patient(doc, pid, confirm_name=name)
    assert leftovers() == []  # ...and erasure leaves none, while the store is open
    with store.engine.connect() as c:
        rows = c.execute(text("select actor_id, actor_name, action, patient_id, detail "
                              "from audit_log where patient_id = :patient or actor_id = :user"),
                         {"patient": pid, "user": zelda.id}).all()
    assert [r[2] for r in rows] == ["erase_patient"] and rows[0][0] == doc.id


# -- photos left by a crash (finding 6) --------------------------------------------------------


def test_stale_temporary_files_go_on_open_whatever_their_age(clinic, tmp_path):
    import fcntl

    store, *_ = clinic
    stale = store.photo_storage.temp_dir / "abc.123.456.tmp"
    stale.write_bytes(b"half an upload")
    held = store.photo_storage.temp_dir / "def.123.789.tmp"
    held.write_bytes(b"an upload in progress")
    with open(held, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        reopened = Store(tmp_path / "data", url=store.url)
        assert not stale.exists() and held.exists()
    reopened.recover()
    assert not held.exists()
    reopened.close()


# -- files on disk (finding 9) -----------------------------------------------------------------


def test_files_are_private_to_the_server_user(clinic):
    import stat

    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    files = [p for p in store.data_dir.rglob("*") if p.is_file()]
    folders = [store.data_dir, *(p for p in store.data_dir.rglob("*") if p.is_dir())]
    assert any(p.suffix == ".jpg" for p in files)
    assert not _on_sqlite(store) or any(p.name == "monitor.sqlite-wal" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for path in folders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


# -- metadata of stored JPEGs (finding 8) ------------------------------------------------------


def _jpeg_with_everything() -> bytes:
    """A JPEG carrying identifying metadata of every kind, and what must be kept."""
    from PIL import ImageCms

    image = Image.new("RGB", (240, 200), (150, 90, 80))
    image.putpixel((7, 7), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: kept
    exif[0x0132] = "2026:03:02 09:00:00"
    exif[0x013B] = "Artist Jane Zebraname"
    exif[0x8298] = "Copyright Zebraname"
    exif[0x010F] = "CameraMaker"
    exif[0x8769] = {0x9003: "2026:03:02 08:59:58",  # DateTimeOriginal: kept
                    0x9011: "+01:00",
                    0xA430: "Owner Zebraname",  # CameraOwnerName
                    0xA431: "SERIAL-77Q123",  # BodySerialNumber
                    0x927C: b"maker note Zebraname"}
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, icc_profile=icc, comment=b"Comment Zebraname",
               xmp=b"<x:xmpmeta>Zebraname city</x:xmpmeta>")
    data = out.getvalue()
    iptc = b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00\x00\x00\x00\x13" \
        + b"\x1c\x02\x5a\x00\x0fCity Zebraville"
    app13 = b"\xff\xed" + struct.pack(">H", len(iptc) + 2) + iptc
    trailer = b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00Zebraname"  # e.g. a second image
    return data[:2] + app13 + data[2:] + trailer


def test_stored_jpegs_keep_only_orientation_time_and_colour_profile():
    data = _jpeg_with_everything()
    for secret in (b"Zebra", b"SERIAL-77Q123", b"CameraMaker"):
        assert secret in data
    stored, suffix = strip_location(data)
    assert suffix == ".jpg"
    for secret in (b"Zebra", b"SERIAL-77Q123", b"CameraMaker", b"8BIM", b"xmpmeta"):
        assert secret not in stored, secret
    assert stored.endswith(b"\xff\xd9") and stored.count(b"\xff\xd8") == 1
    kept = Image.open(io.BytesIO(stored))
    exif = kept.getexif()
    assert dict(exif) == {0x0112: 6, 0x0132: "2026:03:02 09:00:00", 0x8769: exif[0x8769]}
    assert dict(exif.get_ifd(0x8769)) == {0x9003: "2026:03:02 08:59:58", 0x9011: "+01:00"}
    assert kept.info.get("icc_profile") == Image.open(io.BytesIO(data)).info["icc_profile"]
    assert np.array_equal(np.asarray(kept), np.asarray(Image.open(io.BytesIO(data))))


def test_a_progressive_jpeg_keeps_all_its_scans():
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (120, 160, 3),
                                                              dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", progressive=True, comment=b"a comment")
    stored, suffix = strip_location(out.getvalue())
    assert suffix == ".jpg" and b"a comment" not in stored
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))),
                          np.asarray(Image.open(out)))


def test_a_store_of_an_earlier_version_is_made_private_on_open(clinic, tmp_path):
    import stat

    store, doc, other_doc, ann, bob, ann_id, bob_id = clinic
    photo, _ = store.add_photo(ann, ann_id, _jpeg(1), file_name="a.jpg")
    files = [p for p in store.data_dir.rglob("*") if p.is_file()]
    for path in files:
        path.chmod(0o644)
    for path in store.photo_storage.folder.glob("??"):
        path.chmod(0o755)
    Store(tmp_path / "data", url=store.url).close()
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for path in store.photo_storage.folder.glob("??"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_app_servers_opening_a_fresh_database_at_once_all_start(tmp_path, database_url):
    """Four processes open the same new database at the same moment and each upgrades the
    schema on open: on PostgreSQL (one data folder per host, so no shared lock file) an
    advisory lock lets the first create it and the others find it done."""
    if database_url is None:
        database_url = f"sqlite:///{tmp_path / 'data' / 'monitor.sqlite'}"
        folders = [tmp_path / "data"] * 4  # SQLite: one host, one folder
    else:
        folders = [tmp_path / f"host{i}" for i in range(4)]
    script = textwrap.dedent("""
        import sys, time
        from monitor.store import Store
        start = float(sys.argv[3])
        time.sleep(max(0.0, start - time.time()))
        store = Store(sys.argv[1], url=sys.argv[2])
        print(len(store.clinicians()))
        store.close()
    """)
    import time

    start = str(time.time() + 3.0)  # past every interpreter's start-up
    runs = [subprocess.Popen([sys.executable, "-c", script, str(folder), database_url, start],
                             cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for folder in folders]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [(code, out.strip()) for code, out, _ in results] == [(0, "0")] * 4, \
        [err[-500:] for _, _, err in results]
    store = Store(folders[0], url=database_url)
    store.create_user("doc", "correct horse", role="clinician")
    assert [u.username for u in store.clinicians()] == ["doc"]
    store.close()


def test_a_database_restart_costs_no_failed_request(tmp_path):
    """The server drops every connection (as a restart does): the pool's connections are
    tested before use, so the next call opens a new one instead of failing."""
    from sqlalchemy import create_engine

    from tests.conftest import POSTGRES_URL, postgres_database

    with postgres_database() as url:
        store = Store(tmp_path / "data", url=url)
        store.create_user("doc", "correct horse", role="clinician")
        assert store.authenticate("doc", "correct horse") is not None  # a pooled connection
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            dropped = c.execute(text("select count(pg_terminate_backend(pid)) from "
                                     "pg_stat_activity where datname = :name"),
                                {"name": store.engine.url.database}).scalar()
        admin.dispose()
        assert dropped >= 1
        assert store.authenticate("doc", "correct horse") is not None
        store.close()
