"""Values the store hands out: frozen snapshots, callers never hold a live row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from monitor.course import SYMPTOM_NAMES

__all__ = [
    "AuditEntry",
    "CheckIn",
    "Correction",
    "Note",
    "PatientInfo",
    "PhotoInfo",
    "User",
]


@dataclass(frozen=True)
class User:
    """A signed-in person. ``patient_id`` is set for patients (their own record)."""

    id: int
    username: str
    role: str
    display_name: str
    is_demo: bool = False
    patient_id: int | None = None

    @property
    def is_clinician(self) -> bool:
        return self.role == "clinician"


@dataclass(frozen=True)
class PatientInfo:
    id: int
    name: str
    clinician_id: int
    user_id: int | None
    treatment_date: date | None
    procedure: str | None


@dataclass(frozen=True)
class PhotoInfo:
    """A stored photo with its current analysis (``result`` is the per-photo JSON)."""

    id: int
    patient_id: int
    sha256: str
    file_name: str
    captured_at: datetime | None
    uploaded_at: datetime
    result: dict | None
    engine_version: str | None
    reference_photo_id: int | None

    @property
    def status(self) -> str | None:
        return None if self.result is None else self.result.get("status")


@dataclass(frozen=True)
class CheckIn:
    id: int
    day: int | None
    created_at: datetime
    fever: bool
    pain: bool
    spreading_redness: bool
    pus: bool
    cold_sores: bool

    @property
    def reported(self) -> tuple[str, ...]:
        return tuple(name for name in SYMPTOM_NAMES if getattr(self, name))


@dataclass(frozen=True)
class Note:
    id: int
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class Correction:
    """A clinician's correction of the lesions found on one photo (photo pixels)."""

    id: int
    photo_id: int
    action: str
    x: float
    y: float
    radius: float
    kind: str
    author: str
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    patient_id: int | None
    detail: str
