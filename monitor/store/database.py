"""The store: the database and photo storage of one clinic, access control and audit."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import create_engine, delete, event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor.course import SYMPTOM_NAMES
from monitor.errors import AccessDenied, AccountError, PhotoStorageUnavailable, SignInPaused
from monitor.store.accounts import (
    DUMMY_HASH,
    HASHER,
    IDLE_LIMITS,
    ROLES,
    SIGN_IN_LOCKOUT,
    SIGN_IN_PAUSES,
    TICKET_TTL,
    check_password,
    name_key,
    pause_words,
    secret_hash,
)
from monitor.store.location import strip_location
from monitor.store.photos import PhotoStorage, open_storage, photo_key, private_folder, sha_of_key
from monitor.store.tables import (
    AnalysisRow,
    AuditRow,
    CheckInRow,
    CorrectionRow,
    NoteRow,
    PatientRow,
    PendingUploadRow,
    PhotoRow,
    SessionRow,
    SettingRow,
    SignInFailureRow,
    TreatmentRow,
    UserRow,
)
from monitor.store.values import AuditEntry, CheckIn, Correction, Note, PatientInfo, PhotoInfo, User

__all__ = [
    "REFUSED_OTHER_FACE",
    "UPLOAD_DEADLINE",
    "Store",
    "default_data_dir",
    "default_database_url",
    "stored_photo_count",
]


#: The audit log's action for a photo refused as not showing the patient's face.
REFUSED_OTHER_FACE = "refuse_photo_other_face"


#: An upload's announcement protects its object from the sweep for this long. An upload takes
#: seconds; one that outlives this is written again at its commit (see the module docstring).
UPLOAD_DEADLINE = timedelta(hours=1)


def default_data_dir() -> Path:
    """``$MONITOR_DATA``, else ``./data``."""
    return Path(os.environ.get("MONITOR_DATA") or "data").resolve()


def default_database_url(data_dir: Path) -> str:
    """``$MONITOR_DATABASE_URL``, else SQLite in the data folder."""
    return os.environ.get("MONITOR_DATABASE_URL") or f"sqlite:///{data_dir / 'monitor.sqlite'}"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _lock_file(path: Path) -> io.BufferedRandom:
    """A lock file, opened (created readable by this user only)."""
    return open(os.open(path, os.O_CREAT | os.O_RDWR, 0o600), "r+b")


_PROCESS_LOCKS: dict[str, threading.Lock] = {}


_PROCESS_LOCKS_GUARD = threading.Lock()


#: The PostgreSQL advisory lock key that serialises schema upgrades (any fixed 64-bit number;
#: this one spells "monitor" in ASCII).
_UPGRADE_LOCK = 0x6D6F6E69746F72


#: The first key of the advisory lock on one photo's hash ("phot"); the second is from the hash.
_PHOTO_LOCK_SPACE = 0x70686F74


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    migrations = Path(__file__).resolve().parent.parent / "migrations"
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    return config


class Store:
    """The database and photo storage of one clinic. Thread-safe; open once per process.

    Parameters
    ----------
    data_dir : path, optional
        Folder for photos (unless they are in an object store), the SQLite file and lock
        files; default :func:`default_data_dir`.
    url : str, optional
        SQLAlchemy database URL; default :func:`default_database_url`.
    photos_url : str, optional
        ``s3://bucket/prefix`` for photos in an object store; default ``$MONITOR_PHOTOS_URL``,
        else the data folder's ``photos`` folder.
    sweep : bool
        Run :meth:`recover` on open (the app servers do; re-analysis workers need not).
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, url: str | None = None,
                 photos_url: str | None = None, sweep: bool = True):
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else default_data_dir()
        private_folder(self.data_dir)
        #: The photos' object store (``s3://...``), or ``None`` for the data folder's photos.
        self.photos_url = photos_url or os.environ.get("MONITOR_PHOTOS_URL") or None
        self.photo_storage: PhotoStorage = open_storage(self.data_dir, self.photos_url)
        self.url = url or default_database_url(self.data_dir)
        is_sqlite = self.url.startswith("sqlite")
        self._is_sqlite = is_sqlite
        #: The clock of sessions and sign-in pauses (naive UTC); tests move it.
        self.now: Callable[[], datetime] = _now
        self.idle_limits = dict(IDLE_LIMITS)
        if is_sqlite:
            # Created private before SQLite opens it; its -wal and -shm files take its mode.
            db_file = self.url.removeprefix("sqlite:///")
            if db_file and db_file != ":memory:" and not os.path.exists(db_file):
                os.close(os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600))
        kwargs: dict = {}
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # A server restarted under the app leaves dead connections in the pool: each is
            # tested before use. A page load takes a few connections at most; every app
            # server keeps up to 15, so a server's default 100 serves six app servers.
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10,
                          pool_recycle=3600)
        self.engine = create_engine(self.url, **kwargs)
        if is_sqlite:
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_connection, _record):  # noqa: ANN001
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA synchronous=NORMAL")
                # Deleted rows are overwritten, not left in free pages (erasure).
                cursor.execute("PRAGMA secure_delete=ON")
                cursor.close()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        key = str(self.data_dir)
        with _PROCESS_LOCKS_GUARD:
            self._thread_lock = _PROCESS_LOCKS.setdefault(key, threading.Lock())
        self._lock_path = self.data_dir / ".photos.lock"
        self.upgrade()
        # An object store that is down must not keep the app from starting: uploads and
        # photos then fail in words, and the next open sweeps.
        if sweep:
            with contextlib.suppress(PhotoStorageUnavailable):
                self.recover()

    # -- schema and recovery ---------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision."""
        from alembic import command

        with self._photo_lock(), self.engine.connect() as connection:
            if self._is_sqlite:
                # Migrations rebuild tables; with foreign keys on, dropping the old copy of a
                # table would cascade into its children. Checked again afterwards.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                if self.engine.dialect.name == "postgresql":
                    # Every app server upgrades on open: on PostgreSQL the first holds this
                    # lock until its upgrade commits (schema changes are transactional there),
                    # the others then find the schema at head. The file lock above serialises
                    # only the processes of one host.
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})")
                command.upgrade(_alembic_config(connection), "head")
            if self._is_sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
                if broken:
                    raise RuntimeError(f"the schema upgrade broke references: {broken[:5]}")

    def recover(self) -> dict:
        """Remove what interrupted uploads left: objects nothing refers to, stale temporary
        files, and announcements older than :data:`UPLOAD_DEADLINE`.

        An object is removed only when no photo row and no announcement younger than the
        deadline names its hash, checked under that hash's lock (see the module docstring).
        """
        removed = {"temporary": self.photo_storage.tidy(), "orphans": 0}
        cutoff = self.now() - UPLOAD_DEADLINE
        with self._sessions() as s:
            wanted = set(s.scalars(select(PhotoRow.sha256)).all())
            wanted |= set(s.scalars(select(PendingUploadRow.sha256)
                                    .where(PendingUploadRow.started_at >= cutoff)).all())
            stale = set(s.scalars(select(PendingUploadRow.sha256)
                                  .where(PendingUploadRow.started_at < cutoff)).all())
        orphans: dict[str, list[str]] = {}
        for key in self.photo_storage.keys():
            sha = sha_of_key(key)
            if sha is not None and sha not in wanted:
                orphans.setdefault(sha, []).append(key)
        for sha in sorted(stale | set(orphans)):
            removed["orphans"] += self._discard_if_unused(sha, orphans.get(sha, ()))
        # A store made by an earlier version had files anyone on the machine could read.
        for path in [*self.data_dir.glob("monitor.sqlite*"), *self.data_dir.glob(".*.lock"),
                     *self.data_dir.glob(".locks/*")]:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
        return removed

    @contextlib.contextmanager
    def _hash_lock(self, s: Session, sha: str) -> Iterator[None]:
        """Hold the lock on one photo hash until the session's transaction ends.

        Enter it first in a transaction and commit inside it: on PostgreSQL it is a
        transaction-scoped advisory lock (released by the commit), on SQLite the data folder's
        lock file (one host; released on leaving).
        """
        if self._is_sqlite:
            with self._photo_lock():
                yield
            return
        key = int(sha[:8], 16) - (1 << 31)  # a signed 32-bit integer
        s.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                  {"space": _PHOTO_LOCK_SPACE, "key": key})
        yield

    def _discard_if_unused(self, sha: str, keys: Iterable[str]) -> int:
        """Remove the objects ``keys`` of hash ``sha`` unless a photo row or a live
        announcement names it; announcements past the deadline go. Returns objects removed."""
        keys = list(keys)
        cutoff = self.now() - UPLOAD_DEADLINE
        with self._sessions() as s, self._hash_lock(s, sha):
            s.execute(delete(PendingUploadRow).where(PendingUploadRow.sha256 == sha,
                                                      PendingUploadRow.started_at < cutoff))
            used = s.scalar(select(func.count()).select_from(PhotoRow)
                            .where(PhotoRow.sha256 == sha))
            live = s.scalar(select(func.count()).select_from(PendingUploadRow)
                            .where(PendingUploadRow.sha256 == sha))
            if used or live:
                s.commit()
                return 0
            for key in keys:  # under the lock: no upload can announce this hash meanwhile
                self.photo_storage.delete(key)
            s.commit()
            return len(keys)

    @contextlib.contextmanager
    def _photo_lock(self) -> Iterator[None]:
        """The data folder's lock, across the threads and processes of one host: schema
        upgrades, and (SQLite) the photo hash lock."""
        with self._thread_lock, _lock_file(self._lock_path) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def patient_lock(self, patient_id: int) -> Iterator[None]:
        """One check-in of a patient at a time, across threads and processes.

        Two photos of one patient checked in at the same moment would otherwise each be
        analysed against the reference photo as it was before the other (or both become it).
        """
        with _PROCESS_LOCKS_GUARD:
            lock = _PROCESS_LOCKS.setdefault(f"{self.data_dir}#patient{int(patient_id)}",
                                             threading.Lock())
        folder = self.data_dir / ".locks"
        private_folder(folder)
        with lock, _lock_file(folder / f"patient-{int(patient_id)}.lock") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def photos_without_analysis(self) -> list[tuple[User, int]]:
        """(clinician, patient id) of every patient with a stored photo that has no analysis.

        A crash between storing a photo and storing its analysis leaves such a photo; the
        app analyses them when it opens the store (:func:`monitor.clinic.analyse_missing`).
        """
        with self._sessions() as s:
            analysed = select(AnalysisRow.photo_id).where(AnalysisRow.is_current.is_(True))
            rows = s.execute(select(PatientRow.clinician_id, PatientRow.id).distinct()
                             .join(PhotoRow, PhotoRow.patient_id == PatientRow.id)
                             .where(PhotoRow.id.not_in(analysed))
                             .order_by(PatientRow.id)).all()
            # A patient's clinician is a foreign key: the row is there.
            return [(self._user(s, s.get_one(UserRow, c)), p) for c, p in rows]

    def close(self) -> None:
        self.engine.dispose()

    # -- settings --------------------------------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        with self._sessions() as s:
            row = s.get(SettingRow, key)
            return default if row is None else row.value

    def set_setting(self, key: str, value: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(SettingRow, key)
            if row is None:
                s.add(SettingRow(key=key, value=value))
            else:
                row.value = value

    @property
    def is_demo(self) -> bool:
        return self.setting("demo") == "1"

    def today(self) -> date:
        """Today for this clinic: the real date, or the demo's fixed day."""
        fixed = self.setting("today")
        return date.fromisoformat(fixed) if fixed else date.today()

    # -- accounts --------------------------------------------------------------------------

    def create_user(self, username: str, password: str, *, role: str,
                    display_name: str | None = None, is_demo: bool = False,
                    clinician: str | None = None, treatment_date: date | None = None,
                    procedure: str = "microneedling") -> User:
        """Create an account; the password is kept only as an Argon2id hash.

        With ``clinician`` (a clinician's user name), a patient account comes with its patient
        record, in the same transaction: when anything is refused, nothing is created.
        User names are compared without case ("Jane" and "jane" are one name).
        """
        username = username.strip()
        if role not in ROLES:
            raise AccountError(f"The role must be one of {', '.join(ROLES)}, got {role!r}.")
        if not username or len(username) > 80:
            raise AccountError("Please choose a user name of 1 to 80 characters.")
        if not is_demo:
            check_password(password, username=username)
        if clinician is not None and role != "patient":
            raise AccountError("Only a patient account has a dermatologist.")
        with self._sessions() as s:
            doctor = None
            if clinician is not None:
                doctor = s.scalars(select(UserRow).where(
                    UserRow.username_key == name_key(clinician))).one_or_none()
                if doctor is None or doctor.role != "clinician":
                    raise AccountError(f"There is no clinician named {clinician!r}; "
                                       "nothing was created.")
            row = UserRow(username=username, username_key=name_key(username),
                           password_hash=HASHER.hash(password), role=role,
                           display_name=display_name or username, is_demo=is_demo,
                           created_at=_now())
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                raise AccountError(f"The user name {username!r} is already taken.") from None
            self._audit(s, None, "create_user", None, f"{role} account #{row.id}",
                        actor_name="system")
            if doctor is not None:
                patient = PatientRow(name=display_name or username, user_id=row.id,
                                      clinician_id=doctor.id, created_at=_now())
                s.add(patient)
                s.flush()
                s.add(TreatmentRow(patient_id=patient.id,
                                    treatment_date=treatment_date or self.today(),
                                    procedure=procedure, created_at=_now()))
                self._audit(s, doctor.id, "add_patient", patient.id, "",
                            actor_name=doctor.username)
            s.commit()
            return self._user(s, row)

    def authenticate(self, username: str, password: str, *,
                     client: str | None = None) -> User | None:
        """The account if the password matches, else None (same work either way).

        Failed sign-ins in a row, per account and per ``client`` (an address), earn a pause
        that grows with each failure and becomes a lockout (:data:`SIGN_IN_PAUSES`); during
        a pause the password is not even checked, and :class:`SignInPaused` says how long
        to wait. A success clears the account's and the client's count.
        """
        keys = [f"account:{name_key(username)}"]
        if client:
            keys.append(f"client:{client}")
        now = self.now()
        with self._sessions() as s:
            for key in keys:
                failure = s.get(SignInFailureRow, key)
                if failure is not None and failure.not_before is not None \
                        and failure.not_before > now:
                    raise SignInPaused(pause_words(failure.not_before - now))
            row = s.scalars(select(UserRow).where(
                UserRow.username_key == name_key(username))).one_or_none()
            stored = row.password_hash if row is not None else DUMMY_HASH
            try:
                HASHER.verify(stored, password)
                ok = row is not None
            except (VerificationError, InvalidHashError):
                ok = False
            if not ok:
                # Counts a day old and not locking any more go (they hold typed names).
                s.execute(delete(SignInFailureRow).where(
                    SignInFailureRow.last_failure_at < now - timedelta(days=1),
                    (SignInFailureRow.not_before.is_(None))
                    | (SignInFailureRow.not_before < now)))
                for key in keys:
                    self._count_failure(s, key, now, row)
                if row is not None:
                    self._audit(s, row.id, "sign_in_failed", None, "", actor_name=row.username)
                s.commit()
                return None
            assert row is not None
            s.execute(delete(SignInFailureRow).where(SignInFailureRow.key.in_(keys)))
            if HASHER.check_needs_rehash(row.password_hash):
                row.password_hash = HASHER.hash(password)
            self._audit(s, row.id, "sign_in", None, "", actor_name=row.username)
            s.commit()
            return self._user(s, row)

    def _count_failure(self, s: Session, key: str, now: datetime, row: UserRow | None) -> None:
        failure = s.get(SignInFailureRow, key)
        if failure is None:
            failure = SignInFailureRow(key=key, failures=0, last_failure_at=now)
            s.add(failure)
        failure.failures += 1
        failure.last_failure_at = now
        kind = key.split(":", 1)[0]
        free, lock_at = SIGN_IN_PAUSES[kind]
        n = failure.failures
        if n >= lock_at:
            failure.not_before = now + SIGN_IN_LOCKOUT
            if n == lock_at:
                self._audit(s, None if row is None else row.id, "sign_in_locked", None,
                            f"{kind} locked for {SIGN_IN_LOCKOUT.seconds // 60} minutes "
                            f"after {n} failed sign-ins",
                            actor_name="system" if row is None else row.username)
        elif n >= free:
            failure.not_before = now + timedelta(seconds=2 ** (n - free))

    # -- sessions (the signed-in browsers) -------------------------------------------------

    def start_session(self, user: User) -> tuple[int, str]:
        """A new signed-in session of ``user``: its id and a one-time ticket.

        The ticket is exchanged once, within :data:`TICKET_TTL`, for the browser's cookie
        (:meth:`claim_session`); the session id stays on the server (the tab's state).
        """
        ticket = secrets.token_urlsafe(32)
        with self._sessions.begin() as s:
            self._actor_row(s, user)
            row = SessionRow(user_id=user.id, ticket_hash=secret_hash(ticket),
                              created_at=self.now(), last_seen_at=self.now())
            s.add(row)
            s.flush()
            return row.id, ticket

    def claim_session(self, ticket: str) -> str | None:
        """The cookie value for a session's one-time ticket (None when used or too old)."""
        now = self.now()
        with self._sessions.begin() as s:
            row = s.scalars(select(SessionRow).where(
                SessionRow.ticket_hash == secret_hash(ticket))).one_or_none()
            if row is None:
                return None
            row.ticket_hash = None
            if now - row.created_at > TICKET_TTL or self._expired(s, row, now):
                return None
            token = secrets.token_urlsafe(32)
            row.token_hash = secret_hash(token)
            return token

    def session_user(self, *, session_id: int | None = None,
                     token: str | None = None) -> tuple[int, User] | None:
        """The session (by id, or by its cookie value) and its user, read afresh; or None.

        None when there is no such session, it has been idle too long (the limit is per role,
        :attr:`idle_limits`), it was ended, or its account is gone. Each call counts as use.
        """
        now = self.now()
        with self._sessions() as s:
            if session_id is not None:
                row = s.get(SessionRow, session_id)
            elif token:
                row = s.scalars(select(SessionRow).where(
                    SessionRow.token_hash == secret_hash(token))).one_or_none()
            else:
                return None
            if row is None:
                return None
            if self._expired(s, row, now):
                s.delete(row)
                s.commit()
                return None
            user = s.get(UserRow, row.user_id)
            if user is None:
                return None
            if now - row.last_seen_at > timedelta(seconds=30):
                row.last_seen_at = now
                s.commit()
            return row.id, self._user(s, user)

    def _expired(self, s: Session, row: SessionRow, now: datetime) -> bool:
        user = s.get(UserRow, row.user_id)
        limit = self.idle_limits.get(user.role if user is not None else "", timedelta(0))
        return user is None or now - row.last_seen_at > limit

    def end_session(self, session_id: int | None) -> None:
        """Sign out: the session and its cookie stop working at once."""
        if session_id is None:
            return
        with self._sessions.begin() as s:
            s.execute(delete(SessionRow).where(SessionRow.id == session_id))

    def current(self, user: User) -> User | None:
        """``user`` read again from the store; None when the account is gone or changed."""
        with self._sessions() as s:
            row = s.get(UserRow, user.id)
            if row is None or row.username != user.username or row.role != user.role:
                return None
            fresh = self._user(s, row)
            return fresh if fresh.patient_id == user.patient_id else None

    def clinicians(self) -> list[User]:
        """Every clinician account (for maintenance commands that act on their behalf)."""
        with self._sessions() as s:
            rows = s.scalars(select(UserRow).where(UserRow.role == "clinician")
                             .order_by(UserRow.id)).all()
            return [self._user(s, r) for r in rows]

    def user(self, username: str) -> User | None:
        with self._sessions() as s:
            row = s.scalars(select(UserRow).where(
                UserRow.username_key == name_key(username))).one_or_none()
            return None if row is None else self._user(s, row)

    def _user(self, s: Session, row: UserRow) -> User:
        patient_id = None
        if row.role == "patient":
            patient_id = s.scalar(select(PatientRow.id).where(PatientRow.user_id == row.id))
        return User(id=row.id, username=row.username, role=row.role,
                    display_name=row.display_name, is_demo=row.is_demo, patient_id=patient_id)

    # -- access ----------------------------------------------------------------------------

    def _patient_row(self, s: Session, actor: User, patient_id: int) -> PatientRow:
        """The patient's row if ``actor`` may see it, else AccessDenied (also when absent)."""
        self._actor_row(s, actor)
        row = s.get(PatientRow, patient_id)
        allowed = row is not None and (
            (actor.role == "clinician" and row.clinician_id == actor.id)
            or (actor.role == "patient" and row.user_id == actor.id))
        if not allowed:
            raise AccessDenied("This course is not yours to see. You can only open your own "
                               "course (or, for clinicians, your own patients).")
        assert row is not None
        return row

    @staticmethod
    def _actor_row(s: Session, actor: User) -> UserRow:
        """The acting account as stored; AccessDenied for a stale ``User`` (erased, changed)."""
        row = s.get(UserRow, actor.id)
        if row is None or row.username != actor.username or row.role != actor.role:
            raise AccessDenied("Your account has changed or no longer exists. "
                               "Please sign in again.")
        return row

    @staticmethod
    def _require_clinician(actor: User) -> None:
        if actor.role != "clinician":
            raise AccessDenied("Only your dermatologist can do this.")

    def _audit(self, s: Session, actor_id: int | None, action: str, patient_id: int | None,
               detail: str, *, actor_name: str) -> None:
        s.add(AuditRow(at=_now(), actor_id=actor_id, actor_name=actor_name, action=action,
                        patient_id=patient_id, detail=detail))

    def record_view(self, actor: User, patient_id: int, what: str) -> None:
        """Write 'actor viewed what' to the audit log (after checking they may)."""
        with self._sessions.begin() as s:
            self._patient_row(s, actor, patient_id)
            self._audit(s, actor.id, "view", patient_id, what, actor_name=actor.username)

    def record_refused_photo(self, actor: User, patient_id: int, file_name: str,
                             face_match: float) -> None:
        """Write to the audit log that a photo was refused as not showing the patient's face.

        The photo itself is not kept (it may be someone else's); the entry lets the clinician
        see that it happened (:data:`REFUSED_OTHER_FACE`).
        """
        with self._sessions.begin() as s:
            self._patient_row(s, actor, patient_id)
            self._audit(s, actor.id, REFUSED_OTHER_FACE, patient_id,
                        f"{file_name}: face match {face_match:.2f}", actor_name=actor.username)

    def audit_log(self, actor: User, patient_id: int) -> list[AuditEntry]:
        self._require_clinician(actor)
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            rows = s.scalars(select(AuditRow).where(AuditRow.patient_id == patient_id)
                             .order_by(AuditRow.id)).all()
            return [AuditEntry(at=r.at, actor=r.actor_name, action=r.action,
                               patient_id=r.patient_id, detail=r.detail) for r in rows]

    # -- patients --------------------------------------------------------------------------

    def add_patient(self, actor: User, name: str, *, treatment_date: date,
                    procedure: str = "microneedling", username: str | None = None) -> int:
        """A new patient of ``actor`` (a clinician), optionally linked to a patient account."""
        self._require_clinician(actor)
        with self._sessions() as s:
            self._actor_row(s, actor)
            user_id = None
            if username is not None:
                account = s.scalars(select(UserRow).where(
                    UserRow.username_key == name_key(username))).one_or_none()
                if account is None or account.role != "patient":
                    raise AccountError(f"There is no patient account named {username!r}.")
                user_id = account.id
            row = PatientRow(name=name, user_id=user_id, clinician_id=actor.id,
                              created_at=_now())
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                raise AccountError(f"The account {username!r} already belongs to a patient."
                                   ) from None
            s.add(TreatmentRow(patient_id=row.id, treatment_date=treatment_date,
                                procedure=procedure, created_at=_now()))
            self._audit(s, actor.id, "add_patient", row.id, "", actor_name=actor.username)
            s.commit()
            return row.id

    def patients(self, actor: User) -> list[PatientInfo]:
        """The patients ``actor`` may see: a clinician's own, or the patient themself."""
        with self._sessions() as s:
            self._actor_row(s, actor)
            query = select(PatientRow)
            if actor.role == "clinician":
                query = query.where(PatientRow.clinician_id == actor.id)
            else:
                query = query.where(PatientRow.user_id == actor.id)
            return [self._patient_info(s, r) for r in s.scalars(query.order_by(PatientRow.id))]

    def patient(self, actor: User, patient_id: int) -> PatientInfo:
        with self._sessions() as s:
            return self._patient_info(s, self._patient_row(s, actor, patient_id))

    def _patient_info(self, s: Session, row: PatientRow) -> PatientInfo:
        treatment = s.scalars(select(TreatmentRow).where(TreatmentRow.patient_id == row.id)
                              .order_by(TreatmentRow.treatment_date.desc(),
                                        TreatmentRow.id.desc())).first()
        return PatientInfo(id=row.id, name=row.name, clinician_id=row.clinician_id,
                           user_id=row.user_id,
                           treatment_date=None if treatment is None else treatment.treatment_date,
                           procedure=None if treatment is None else treatment.procedure)

    def delete_patient(self, actor: User, patient_id: int, *, confirm_name: str) -> int:
        """Erase a patient: rows, photo files, their account and every trace. Files removed.

        ``confirm_name`` must repeat the patient's name, so that a slip cannot erase anyone.
        The audit log keeps one row, "patient #n erased by clinician #m" with its time; the
        patient's other rows, their account's rows (sign-ins, its creation) and their
        sign-in counts go. Deleted rows are overwritten (``secure_delete``) and the SQLite
        write-ahead log is checkpointed and emptied, so no byte of the record stays in the
        data folder. Ids are never given again (AUTOINCREMENT).
        """
        self._require_clinician(actor)
        with self._sessions() as s:
            row = self._patient_row(s, actor, patient_id)
            if confirm_name.strip() != row.name:
                raise AccountError("To erase this patient, type their name exactly as shown.")
            objects = set(s.execute(select(PhotoRow.sha256, PhotoRow.suffix)
                                    .where(PhotoRow.patient_id == patient_id)).all())
            account = None if row.user_id is None else s.get(UserRow, row.user_id)
            photo_ids = select(PhotoRow.id).where(PhotoRow.patient_id == patient_id)
            s.execute(delete(CorrectionRow).where(CorrectionRow.photo_id.in_(photo_ids)))
            s.execute(delete(AnalysisRow).where(AnalysisRow.photo_id.in_(photo_ids)))
            s.execute(delete(PhotoRow).where(PhotoRow.patient_id == patient_id))
            s.execute(delete(CheckInRow).where(CheckInRow.patient_id == patient_id))
            s.execute(delete(NoteRow).where(NoteRow.patient_id == patient_id))
            s.execute(delete(TreatmentRow).where(TreatmentRow.patient_id == patient_id))
            s.execute(delete(PatientRow).where(PatientRow.id == patient_id))
            s.execute(delete(AuditRow).where(AuditRow.patient_id == patient_id))
            if account is not None:
                s.execute(delete(SessionRow).where(SessionRow.user_id == account.id))
                s.execute(delete(AuditRow).where(AuditRow.actor_id == account.id))
                s.execute(delete(AuditRow).where(
                    AuditRow.action == "create_user",
                    AuditRow.detail.in_([f"{account.role} account #{account.id}",
                                          f"{account.role} {account.username}"])))
                s.execute(delete(SignInFailureRow).where(
                    SignInFailureRow.key == f"account:{account.username_key}"))
                s.execute(delete(UserRow).where(UserRow.id == account.id))
            self._audit(s, actor.id, "erase_patient", patient_id,
                        f"patient #{patient_id} erased by clinician #{actor.id}",
                        actor_name=f"clinician #{actor.id}")
            s.commit()
        # Another patient's copy of the same photo keeps its object.
        removed = sum(self._discard_if_unused(sha, [photo_key(sha, suffix)])
                      for sha, suffix in sorted(objects))
        self._checkpoint()
        return removed

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it (SQLite)."""
        if not self._is_sqlite:
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- photos ----------------------------------------------------------------------------

    def add_photo(self, actor: User, patient_id: int, data: bytes, *, file_name: str,
                  captured_at: datetime | None = None) -> tuple[PhotoInfo, bool]:
        """Store an uploaded photo (location removed); returns it and whether it is new.

        The same photo uploaded again returns the stored one with ``False``. Raises
        :class:`PhotoStorageUnavailable` (nothing stored) when the object store fails.
        """
        stored, suffix = strip_location(data)
        sha = hashlib.sha256(stored).hexdigest()
        key = photo_key(sha, suffix)
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            existing = s.scalars(select(PhotoRow).where(PhotoRow.patient_id == patient_id,
                                                         PhotoRow.sha256 == sha)).one_or_none()
            if existing is not None:
                return self._photo_info(s, existing), False
        with self._sessions() as s, self._hash_lock(s, sha):
            announcement = PendingUploadRow(sha256=sha, started_at=self.now())
            s.add(announcement)
            s.commit()
            announcement_id = announcement.id
        committed = False
        try:
            self.photo_storage.put(key, stored)  # the slow part, outside every lock
            with self._sessions() as s, self._hash_lock(s, sha):
                self._patient_row(s, actor, patient_id)
                if s.get(PendingUploadRow, announcement_id) is None:
                    # Past the deadline, a sweep took the announcement and maybe the object.
                    self.photo_storage.put(key, stored)
                row = PhotoRow(patient_id=patient_id, sha256=sha, file_name=file_name[:255],
                                suffix=suffix, size_bytes=len(stored),
                                captured_at=None if captured_at is None
                                else captured_at.isoformat(),
                                uploaded_at=_now(), uploaded_by=actor.id)
                s.add(row)
                try:
                    s.flush()
                except IntegrityError:  # the same photo of this patient, committed meanwhile
                    s.rollback()
                    again = s.scalars(select(PhotoRow).where(
                        PhotoRow.patient_id == patient_id, PhotoRow.sha256 == sha)).one()
                    return self._photo_info(s, again), False
                self._audit(s, actor.id, "upload_photo", patient_id, f"photo {row.id}",
                            actor_name=actor.username)
                s.execute(delete(PendingUploadRow)
                          .where(PendingUploadRow.id == announcement_id))
                self._commit(s)
                committed = True
                return self._photo_info(s, row), True
        finally:
            if not committed:
                self._abandon_upload(announcement_id, sha, key)

    def _abandon_upload(self, announcement_id: int, sha: str, key: str) -> None:
        """Withdraw a failed upload's announcement, and its object if nothing refers to it."""
        with self._sessions() as s, self._hash_lock(s, sha):
            s.execute(delete(PendingUploadRow).where(PendingUploadRow.id == announcement_id))
            s.commit()
        with contextlib.suppress(PhotoStorageUnavailable):  # the sweep retries it later
            self._discard_if_unused(sha, [key])

    def _commit(self, s: Session) -> None:
        """Commit (a seam for tests that simulate a crash at the worst moment)."""
        s.commit()

    def _photo_row(self, s: Session, actor: User, photo_id: int) -> PhotoRow:
        row = s.get(PhotoRow, photo_id)
        if row is None:
            raise AccessDenied("This photo is not yours to see.")
        self._patient_row(s, actor, row.patient_id)
        return row

    def photo_bytes(self, actor: User, photo_id: int) -> bytes:
        with self._sessions() as s:
            row = self._photo_row(s, actor, photo_id)
            sha, key = row.sha256, photo_key(row.sha256, row.suffix)
        try:
            data = self.photo_storage.get(key)
        except FileNotFoundError:
            data = b""
        if hashlib.sha256(data).hexdigest() != sha:  # missing or damaged: never a wrong photo
            raise PhotoStorageUnavailable(
                "This photo cannot be shown: its file is missing or damaged in the clinic's "
                "photo storage. Please tell the clinic.")
        return data

    def photos(self, actor: User, patient_id: int) -> list[PhotoInfo]:
        """The patient's photos with their current analyses, oldest capture first."""
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            rows = s.scalars(select(PhotoRow).where(PhotoRow.patient_id == patient_id)).all()
            analyses = {a.photo_id: a for a in s.scalars(
                select(AnalysisRow).where(AnalysisRow.is_current.is_(True),
                                           AnalysisRow.photo_id.in_([r.id for r in rows])))}
            infos = [self._photo_info(s, r, analyses.get(r.id, False)) for r in rows]
        return sorted(infos, key=lambda p: (p.captured_at is None,
                                            _sort_time(p.captured_at), p.id))

    def _photo_info(self, s: Session, row: PhotoRow,
                    analysis: AnalysisRow | None | bool = False) -> PhotoInfo:
        if analysis is False or analysis is True:
            analysis = s.scalars(select(AnalysisRow).where(
                AnalysisRow.photo_id == row.id, AnalysisRow.is_current.is_(True))).first()
        return PhotoInfo(
            id=row.id, patient_id=row.patient_id, sha256=row.sha256, file_name=row.file_name,
            captured_at=None if row.captured_at is None
            else datetime.fromisoformat(row.captured_at),
            uploaded_at=row.uploaded_at,
            result=None if not analysis else json.loads(analysis.result_json),
            engine_version=None if not analysis else analysis.engine_version,
            reference_photo_id=None if not analysis else analysis.reference_photo_id)

    def save_analysis(self, actor: User, photo_id: int, result: dict, *, engine_version: str,
                      reference_photo_id: int | None) -> None:
        """Store a photo's analysis JSON as its current one (earlier ones are kept)."""
        with self._sessions.begin() as s:
            self._photo_row(s, actor, photo_id)
            s.execute(update(AnalysisRow).where(AnalysisRow.photo_id == photo_id)
                      .values(is_current=False))
            s.add(AnalysisRow(photo_id=photo_id, engine_version=engine_version,
                               status=str(result.get("status")), result_json=json.dumps(result),
                               reference_photo_id=reference_photo_id, is_current=True,
                               created_at=_now()))

    # -- check-ins, notes, corrections -----------------------------------------------------

    def add_checkin(self, actor: User, patient_id: int, *, day: int | None,
                    **symptoms: bool) -> None:
        unknown = set(symptoms) - set(SYMPTOM_NAMES)
        if unknown:
            raise TypeError(f"unknown symptoms {sorted(unknown)}; expected {SYMPTOM_NAMES}")
        with self._sessions.begin() as s:
            self._patient_row(s, actor, patient_id)
            s.add(CheckInRow(patient_id=patient_id, day=day, created_at=_now(),
                              created_by=actor.id,
                              **{k: bool(symptoms.get(k, False)) for k in SYMPTOM_NAMES}))
            self._audit(s, actor.id, "check_in", patient_id, "", actor_name=actor.username)

    def checkins(self, actor: User, patient_id: int) -> list[CheckIn]:
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            rows = s.scalars(select(CheckInRow).where(CheckInRow.patient_id == patient_id)
                             .order_by(CheckInRow.id)).all()
            return [CheckIn(id=r.id, day=r.day, created_at=r.created_at,
                            **{k: getattr(r, k) for k in SYMPTOM_NAMES}) for r in rows]

    def add_note(self, actor: User, patient_id: int, text: str) -> None:
        self._require_clinician(actor)
        with self._sessions.begin() as s:
            self._patient_row(s, actor, patient_id)
            s.add(NoteRow(patient_id=patient_id, author_id=actor.id, text=text,
                           created_at=_now()))
            self._audit(s, actor.id, "add_note", patient_id, "", actor_name=actor.username)

    def notes(self, actor: User, patient_id: int) -> list[Note]:
        self._require_clinician(actor)
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            rows = s.execute(select(NoteRow, UserRow.display_name)
                             .join(UserRow, UserRow.id == NoteRow.author_id, isouter=True)
                             .where(NoteRow.patient_id == patient_id)
                             .order_by(NoteRow.id)).all()
            return [Note(id=n.id, author=name or "(deleted account)", text=n.text,
                         created_at=n.created_at) for n, name in rows]

    def add_correction(self, actor: User, photo_id: int, *, action: str, x: float, y: float,
                       radius: float, kind: str = "papule") -> int:
        """Reject a detected lesion (at x, y) or add a missed one; photo pixels."""
        self._require_clinician(actor)
        if action not in ("reject", "add"):
            raise ValueError(f"action must be 'reject' or 'add', got {action!r}")
        with self._sessions.begin() as s:
            photo = self._photo_row(s, actor, photo_id)
            row = CorrectionRow(photo_id=photo_id, action=action, x=float(x), y=float(y),
                                 radius=float(radius), kind=kind, author_id=actor.id,
                                 created_at=_now())
            s.add(row)
            s.flush()
            self._audit(s, actor.id, f"lesion_{action}", photo.patient_id,
                        f"photo {photo_id} at ({x:.0f}, {y:.0f})", actor_name=actor.username)
            return row.id

    def remove_correction(self, actor: User, correction_id: int) -> None:
        self._require_clinician(actor)
        with self._sessions.begin() as s:
            row = s.get(CorrectionRow, correction_id)
            if row is None:
                return
            photo = self._photo_row(s, actor, row.photo_id)
            s.delete(row)
            self._audit(s, actor.id, "undo_correction", photo.patient_id,
                        f"photo {row.photo_id}", actor_name=actor.username)

    def corrections(self, actor: User, patient_id: int) -> list[Correction]:
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            rows = s.execute(select(CorrectionRow, UserRow.display_name)
                             .join(PhotoRow, PhotoRow.id == CorrectionRow.photo_id)
                             .join(UserRow, UserRow.id == CorrectionRow.author_id,
                                   isouter=True)
                             .where(PhotoRow.patient_id == patient_id)
                             .order_by(CorrectionRow.id)).all()
            return [Correction(id=c.id, photo_id=c.photo_id, action=c.action, x=c.x, y=c.y,
                               radius=c.radius, kind=c.kind, author=name or "(deleted account)",
                               created_at=c.created_at) for c, name in rows]

    def revision(self, actor: User, patient_id: int) -> tuple:
        """Changes whenever anything the course depends on changes (a cache key)."""
        with self._sessions() as s:
            self._patient_row(s, actor, patient_id)
            photo_ids = select(PhotoRow.id).where(PhotoRow.patient_id == patient_id)
            return (
                s.scalar(select(func.max(AnalysisRow.id))
                         .where(AnalysisRow.photo_id.in_(photo_ids))),
                s.scalar(select(func.count(PhotoRow.id))
                         .where(PhotoRow.patient_id == patient_id)),
                s.scalar(select(func.max(CheckInRow.id))
                         .where(CheckInRow.patient_id == patient_id)),
                # Every correction, not the largest id and a count: an undone correction's id
                # is given again to the next one (SQLite reuses the largest rowid).
                tuple((i, t) for i, t in s.execute(
                    select(CorrectionRow.id, CorrectionRow.created_at)
                    .where(CorrectionRow.photo_id.in_(photo_ids))
                    .order_by(CorrectionRow.id))),
                s.scalar(select(func.max(TreatmentRow.id))
                         .where(TreatmentRow.patient_id == patient_id)),
            )


def _sort_time(value: datetime | None) -> float:
    return 0.0 if value is None else value.timestamp()


def stored_photo_count(store: Store) -> int:
    """Photo objects in the store's photo storage (for tests and the erasure check)."""
    return sum(1 for key in store.photo_storage.keys() if sha_of_key(key) is not None)
