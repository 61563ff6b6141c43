"""The clinic's database and photo store: the only package that writes.

SQLite in a local data folder by default (``./data`` or ``$MONITOR_DATA``); PostgreSQL (or any
SQLAlchemy database) when ``$MONITOR_DATABASE_URL`` is set. The schema is created and upgraded
with Alembic (``monitor/migrations/``, shipped with the package) every time a store is opened.

Access is enforced here, not in the UI: every query that touches a patient takes the acting
:class:`User` and raises :class:`AccessDenied` unless the actor is that patient, or the
clinician who treats them. Views and changes are written to the audit log.

Photos
------
Each photo is kept once per content hash (SHA-256 of the stored bytes) under the key
``ab/abcdef....jpg``, in the data folder's ``photos`` folder or, with ``$MONITOR_PHOTOS_URL``,
in an S3-compatible object store (:mod:`monitor.store.photos`); uploading the same photo twice is
harmless. Location is never stored: a JPEG keeps its original image data but its EXIF GPS
block and any XMP packet (which can repeat the location) are cut out, without re-encoding, so a
re-analysis sees the very same pixels and the EXIF time and orientation; any other format is
stored as a PNG of the decoded photo (upright, sRGB, no metadata at all), with its capture time
kept in the row.

An upload is announced in the database first (a ``pending_uploads`` row), then its object is
written (write-once: a photo already there is left as it is), then its photo row is committed
and the announcement removed in one transaction. An object nothing refers to (no photo row, no
announcement younger than :data:`UPLOAD_DEADLINE`) is removed: when an upload fails, when a
patient is erased, and by the sweep every :class:`Store` runs when it opens. Announcing, the
commit and each removal take a lock on the photo's hash in the database (a PostgreSQL advisory
lock; on SQLite, one host by nature, the data folder's lock file), and the commit writes the
object again if a sweep took it meanwhile. So with any number of app servers on any number of
hosts the store never holds a row without its object, and an object outlives its rows only
until the next sweep.

Layout
------
- :mod:`~monitor.store.tables`: the tables (SQLAlchemy declarative rows), ``METADATA``.
- :mod:`~monitor.store.values`: the frozen values handed out (``User``, ``PhotoInfo``, ...).
- :mod:`~monitor.store.accounts`: roles, password strength and hashing, session and sign-in
  limits.
- :mod:`~monitor.store.location`: a JPEG's location cut out without re-encoding.
- :mod:`~monitor.store.database`: :class:`Store` itself (migrations, access, audit, photos).
"""

from __future__ import annotations

from monitor.errors import AccessDenied, AccountError, SignInPaused
from monitor.store.accounts import IDLE_LIMITS, ROLES, SIGN_IN_PAUSES, check_password
from monitor.store.database import (
    REFUSED_OTHER_FACE,
    UPLOAD_DEADLINE,
    Store,
    default_data_dir,
    default_database_url,
    stored_photo_count,
)
from monitor.store.location import strip_location
from monitor.store.tables import METADATA
from monitor.store.values import AuditEntry, CheckIn, Correction, Note, PatientInfo, PhotoInfo, User

__all__ = [
    "ROLES",
    "METADATA",
    "AccessDenied",
    "AccountError",
    "SignInPaused",
    "IDLE_LIMITS",
    "SIGN_IN_PAUSES",
    "REFUSED_OTHER_FACE",
    "UPLOAD_DEADLINE",
    "Store",
    "check_password",
    "User",
    "PatientInfo",
    "PhotoInfo",
    "CheckIn",
    "Note",
    "Correction",
    "AuditEntry",
    "default_data_dir",
    "default_database_url",
    "stored_photo_count",
    "strip_location",
]
