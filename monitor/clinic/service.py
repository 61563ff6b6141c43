"""The clinic's workflow: a photo check-in runs the engine once and stores the result.

Between the engine (:mod:`monitor.pipeline`, :mod:`monitor.course`) and the store
(:mod:`monitor.store`). Every function takes the acting user; the store enforces who may see
what. Pages read stored results: nothing here re-runs the engine except a check-in, a new
earlier reference photo, or an explicit re-analysis.

::

    check_in_photo(store, actor, patient_id, data, file_name=...) -> CheckInOutcome
    reanalyse_patient(store, actor, patient_id, progress=...)      -> int photos analysed
    (every patient's, serially or on Dask: monitor.clinic.reanalysis, python -m monitor reanalyse)
    course_view(store, actor, patient_id)                           -> CourseView
    triage(store, actor)                                            -> list[TriageRow]
    apply_corrections(photo_json, corrections)                      -> photo_json (pure)
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path

import monitor
from monitor.course import STATUS_INFO, SYMPTOM_NAMES, Course, Symptoms, assess_course
from monitor.imaging import capture_difference
from monitor.pipeline import (
    SCHEMA,
    Reference,
    analyse_photo,
    make_reference,
    reference_order,
    refuse_as_reference,
)
from monitor.store import CheckIn, Correction, PatientInfo, PhotoInfo, Store, User

__all__ = [
    "ENGINE_VERSION",
    "CheckInOutcome",
    "CourseView",
    "TriageRow",
    "analyse_missing",
    "apply_corrections",
    "check_in_photo",
    "course_view",
    "engine_version",
    "reanalyse_patient",
    "reference_for",
    "triage",
]

#: The libraries whose versions can change what the engine reads off a photo.
_ENGINE_LIBRARIES = ("numpy", "opencv-contrib-python", "opencv-python-headless", "opencv-python",
                     "mediapipe", "scipy", "pillow", "pillow-heif")
_IMPORT_OF_MONITOR = re.compile(r"^\s*(?:from|import)\s+monitor\.([\w.]+)", re.MULTILINE)


def engine_version(package: Path | None = None) -> str:
    """What analysed a photo: the schema, the package version and a digest of the engine.

    The digest covers the source of every module the per-photo engine (:mod:`monitor.pipeline`)
    imports, directly or not; every file shipped in ``models/`` (networks, calibrations, the
    rule models); and the versions of the libraries it computes with. So any change that can
    change an analysis (a model refitted, a threshold moved, OpenCV upgraded) gives another
    version, and ``reanalyse --outdated`` finds the photos analysed before it. A change to a
    docstring gives one too: re-analysing then changes nothing, which is the safe side.
    ``package`` is the ``monitor`` folder to read (this one by default).
    """
    package = Path(monitor.__file__).parent if package is None else Path(package)
    digest = hashlib.sha256()
    sources: dict[str, bytes] = {}
    todo = ["pipeline"]
    while todo:
        name = todo.pop()
        # A module is monitor/<name>.py; a package (monitor.course) its __init__.py, whose
        # imports reach its modules (monitor.course.tracking: course/tracking.py).
        parts = name.split(".")
        path = next((p for p in (package.joinpath(*parts[:-1], f"{parts[-1]}.py"),
                                 package.joinpath(*parts, "__init__.py")) if p.is_file()), None)
        if path is None:
            continue
        relative = path.relative_to(package).as_posix()
        if relative in sources:
            continue
        sources[relative] = path.read_bytes()
        todo.extend(_IMPORT_OF_MONITOR.findall(sources[relative].decode("utf-8")))
    for relative in sorted(sources):
        digest.update(f"{relative}\0".encode())
        digest.update(sources[relative])
    for path in sorted((package / "models").glob("*")):
        if path.is_file():
            digest.update(f"models/{path.name}\0".encode())
            digest.update(path.read_bytes())
    for library in _ENGINE_LIBRARIES:
        try:
            digest.update(f"{library}=={metadata.version(library)}\0".encode())
        except metadata.PackageNotFoundError:
            pass
    return f"{SCHEMA}+{monitor.__version__}+{digest.hexdigest()[:16]}"


#: Written with every stored analysis, so that photos analysed by another engine can be found
#: (:func:`engine_version`).
ENGINE_VERSION = engine_version()

Progress = Callable[[int, int, str], None]

#: Days of follow-up in which a daily check-in is expected.
FOLLOW_UP_DAYS = 14


@dataclass(frozen=True)
class CheckInOutcome:
    """What happened to an uploaded photo.

    ``stored`` is False when the photo failed the quality gate (it is not kept) and ``result``
    then holds the reason and retake hint; ``duplicate`` is True when it was already stored.
    """

    stored: bool
    duplicate: bool
    result: dict
    photo: PhotoInfo | None = None
    reanalysed: bool = False
    #: How the photo's capture differed from the first photo's, in one plain sentence
    #: (:func:`monitor.imaging.quality.capture_difference`); None when it matched or is the first.
    advice: str | None = None

    @property
    def accepted(self) -> bool:
        return self.result.get("status") == "ok"


# ------------------------------------------------------------------------------------------
# Reference photo (rebuilt from its bytes, kept in a small cache)
# ------------------------------------------------------------------------------------------

_REFERENCES: OrderedDict[tuple, Reference] = OrderedDict()
_REFERENCES_LOCK = threading.Lock()
_REFERENCES_MAX = 8


def reference_for(store: Store, actor: User, photo: PhotoInfo) -> Reference:
    """The prepared reference of a stored photo (cached by content hash)."""
    key = (photo.sha256, photo.captured_at)
    with _REFERENCES_LOCK:
        if key in _REFERENCES:
            _REFERENCES.move_to_end(key)
            return _REFERENCES[key]
    data = store.photo_bytes(actor, photo.id)
    result = analyse_photo(data, name=photo.file_name, captured_at=photo.captured_at)
    reference = make_reference(result)
    with _REFERENCES_LOCK:
        _REFERENCES[key] = reference
        while len(_REFERENCES) > _REFERENCES_MAX:
            _REFERENCES.popitem(last=False)
    return reference


def _reference_photo(photos: Sequence[PhotoInfo]) -> PhotoInfo | None:
    accepted = [p for p in photos if p.status == "ok"]
    return min(accepted, key=lambda p: (*reference_order(p.captured_at), p.id), default=None)


# ------------------------------------------------------------------------------------------
# Check-in and re-analysis
# ------------------------------------------------------------------------------------------


def check_in_photo(store: Store, actor: User, patient_id: int, data: bytes, *,
                   file_name: str, progress: Progress | None = None) -> CheckInOutcome:
    """Check an uploaded photo, store it if usable, analyse it against the reference photo.

    A photo that fails the quality gate is not stored; its result carries the plain reason.
    One whose face does not match the reference photo's (someone else's photo) is not stored
    either, and the audit log says so, for the clinician to see.
    A usable photo taken before the current reference photo becomes the new reference, and
    the whole course is analysed again (``progress(done, total, file_name)``). Check-ins of
    one patient run one at a time (:meth:`Store.patient_lock`). A photo already stored
    whose analysis is missing (a crash came between the two) is analysed now.
    """
    store.patient(actor, patient_id)  # access first, before waiting on the lock
    with store.patient_lock(patient_id):
        return _check_in_photo(store, actor, patient_id, data, file_name=file_name,
                               progress=progress)


def _check_in_photo(store: Store, actor: User, patient_id: int, data: bytes, *,
                    file_name: str, progress: Progress | None) -> CheckInOutcome:
    patient = store.patient(actor, patient_id)
    photos = store.photos(actor, patient_id)
    ref_photo = _reference_photo(photos)
    reference = None if ref_photo is None else reference_for(store, actor, ref_photo)
    result = analyse_photo(data, name=file_name, reference=reference)
    becomes_reference = (ref_photo is None or reference_order(result.captured_at)
                         < reference_order(ref_photo.captured_at))
    if becomes_reference:
        result = refuse_as_reference(result)
    if result.status != "ok":
        if result.other_face:
            assert result.face_match is not None
            store.record_refused_photo(actor, patient_id, file_name, result.face_match)
        return CheckInOutcome(stored=False, duplicate=False,
                              result=result.to_json(treatment_date=patient.treatment_date))
    info, new = store.add_photo(actor, patient_id, data, file_name=file_name,
                                captured_at=result.captured_at)
    if not new and info.result is not None:
        return CheckInOutcome(stored=True, duplicate=True, result=info.result, photo=info)
    if becomes_reference:
        reanalyse_patient(store, actor, patient_id, progress=progress)
        info = next(p for p in store.photos(actor, patient_id) if p.id == info.id)
        return CheckInOutcome(stored=True, duplicate=False, result=info.result or {},
                              photo=info, reanalysed=ref_photo is not None)
    entry = result.to_json(treatment_date=patient.treatment_date)
    store.save_analysis(actor, info.id, entry, engine_version=ENGINE_VERSION,
                        reference_photo_id=ref_photo.id)
    info = next(p for p in store.photos(actor, patient_id) if p.id == info.id)
    advice = None if ref_photo.result is None else capture_difference(entry, ref_photo.result)
    return CheckInOutcome(stored=True, duplicate=False, result=entry, photo=info,
                          advice=advice)


def reanalyse_patient(store: Store, actor: User, patient_id: int, *,
                      progress: Progress | None = None,
                      keep: Collection[int] = frozenset()) -> int:
    """Run the engine again on every stored photo of a patient; returns photos analysed.

    The reference is the earliest photo (by capture time) that passes the quality gate and
    whose redness can be measured (:func:`monitor.pipeline.fit_as_reference`).

    Parameters
    ----------
    keep : collection of int
        Photos whose current analysis stands (made by this engine in the re-analysis being
        resumed, :mod:`monitor.clinic.reanalysis`): they are not analysed again, unless they
        were read against another reference photo than the one found now. A kept reference photo is
        prepared again from its bytes, not saved again.

    Returns
    -------
    int
        The photos analysed and saved (the kept ones not counted).
    """
    patient = store.patient(actor, patient_id)
    photos = store.photos(actor, patient_id)
    total = len(photos)
    reference: Reference | None = None
    ref_id: int | None = None
    analysed = 0
    for done, photo in enumerate(photos, start=1):
        if photo.id in keep and photo.result is not None:
            if reference is None and photo.reference_photo_id == photo.id:
                reference, ref_id = reference_for(store, actor, photo), photo.id
            if photo.reference_photo_id == ref_id:
                if progress is not None:
                    progress(done, total, photo.file_name)
                continue
        data = store.photo_bytes(actor, photo.id)
        result = analyse_photo(data, name=photo.file_name, captured_at=photo.captured_at,
                               reference=reference)
        if reference is None:
            result = refuse_as_reference(result)
        if reference is None and result.status == "ok":
            reference = make_reference(result)
            with _REFERENCES_LOCK:
                _REFERENCES[(photo.sha256, photo.captured_at)] = reference
            result, ref_id = reference.result, photo.id
        store.save_analysis(actor, photo.id, result.to_json(treatment_date=patient.treatment_date),
                            engine_version=ENGINE_VERSION, reference_photo_id=ref_id)
        analysed += 1
        if progress is not None:
            progress(done, total, photo.file_name)
    return analysed


def analyse_missing(store: Store, *, progress: Progress | None = None) -> int:
    """Analyse every stored photo that has no analysis (left by a crash); photos analysed.

    Each such patient's course is analysed again, so the photo is read against the same
    reference photo as the others.
    """
    done = 0
    for clinician, patient_id in store.photos_without_analysis():
        with store.patient_lock(patient_id):
            done += reanalyse_patient(store, clinician, patient_id, progress=progress)
    return done


# ------------------------------------------------------------------------------------------
# The course, with the clinician's corrections
# ------------------------------------------------------------------------------------------


def _region_at(entry: dict, x: float, y: float) -> str | None:
    regions = entry.get("regions") or {}
    best, best_d = None, float("inf")
    for name, info in regions.items():
        box = info.get("box") if isinstance(info, dict) else None
        if not box:
            continue
        x0, y0, x1, y1 = box
        if x0 <= x <= x1 and y0 <= y <= y1:
            d = ((x - (x0 + x1) / 2) ** 2 + (y - (y0 + y1) / 2) ** 2) ** 0.5
            if d < best_d:
                best, best_d = name, d
    return best


def apply_corrections(entry: dict, corrections: Sequence[Correction]) -> dict:
    """The photo's JSON with rejected lesions removed and added ones appended (a new dict).

    A rejection names a lesion by its position: the detected lesion nearest to it, within its
    radius (at least 4 px), is removed, so a rejection survives a re-analysis that moves the
    lesion by a pixel.
    """
    mine = [c for c in corrections if c.photo_id == entry.get("photo_id")]
    if not mine or entry.get("lesions") is None:
        return entry
    lesions = [dict(le) for le in entry["lesions"]]
    for c in mine:
        if c.action == "reject":
            if not lesions:
                continue
            dist = [((le["x"] - c.x) ** 2 + (le["y"] - c.y) ** 2) ** 0.5 for le in lesions]
            i = min(range(len(lesions)), key=dist.__getitem__)
            if dist[i] <= max(4.0, c.radius, float(lesions[i].get("radius") or 0)):
                lesions.pop(i)
    for c in mine:
        if c.action == "add":
            lesions.append({"x": c.x, "y": c.y, "radius": c.radius, "kind": c.kind,
                            "confidence": 1.0, "region": _region_at(entry, c.x, c.y),
                            "added_by_clinician": True})
    out = dict(entry)
    out["lesions"] = lesions
    out["lesion_count"] = len(lesions)
    out["corrected"] = True
    return out


def symptoms_of(checkins: Sequence[CheckIn]) -> list[Symptoms]:
    """The check-ins as :class:`monitor.course.Symptoms`."""
    return [Symptoms(day=c.day, **{k: bool(getattr(c, k)) for k in SYMPTOM_NAMES})
            for c in checkins]


@dataclass(frozen=True)
class CourseView:
    """Everything the course pages show, from stored results (no engine run)."""

    patient: PatientInfo
    photos: tuple[PhotoInfo, ...]
    entries: tuple[dict, ...]  # per-photo JSON, corrections applied, with "photo_id"
    checkins: tuple[CheckIn, ...]
    corrections: tuple[Correction, ...]
    course: Course
    trend: dict
    today_day: int | None

    @property
    def accepted(self) -> list[dict]:
        return [e for e in self.entries if e.get("status") == "ok"]

    @property
    def reference_photo(self) -> PhotoInfo | None:
        return _reference_photo(self.photos)

    def photo(self, photo_id: int) -> PhotoInfo:
        return next(p for p in self.photos if p.id == photo_id)


def course_view(store: Store, actor: User, patient_id: int) -> CourseView:
    """Assess the patient's course from stored analyses, corrections and check-ins."""
    patient = store.patient(actor, patient_id)
    photos = store.photos(actor, patient_id)
    corrections = store.corrections(actor, patient_id)
    checkins = store.checkins(actor, patient_id)
    entries = []
    for p in photos:
        if p.result is None:
            continue
        entry = dict(p.result, photo_id=p.id)
        entries.append(apply_corrections(entry, corrections))
    today_day = None
    if patient.treatment_date is not None:
        today_day = (store.today() - patient.treatment_date).days
        latest = max((e["day"] for e in entries if e.get("day") is not None), default=None)
        if latest is not None and today_day < latest:
            today_day = latest  # the clock is behind the photos (a demo, or a wrong clock)
    course = assess_course(entries, symptoms=symptoms_of(checkins), today_day=today_day)
    return CourseView(patient=patient, photos=tuple(photos), entries=tuple(entries),
                      checkins=tuple(checkins), corrections=tuple(corrections), course=course,
                      trend=course.to_json(), today_day=today_day)


# ------------------------------------------------------------------------------------------
# Triage
# ------------------------------------------------------------------------------------------



def _triage_place(status: str) -> float:
    """Place of a course status on the triage list (course.STATUS_INFO); a status this version
    does not know goes after the courses that are off track and before the rest."""
    info = STATUS_INFO.get(status)
    return STATUS_INFO["slower_than_expected"].triage + 0.5 if info is None else info.triage


@dataclass(frozen=True)
class TriageRow:
    patient_id: int
    name: str
    day_since_treatment: int | None
    status: str
    see_dermatologist: bool
    reason: str
    last_check_in: date | None
    missing_check_ins: int

    @property
    def rank(self) -> tuple:
        return (not self.see_dermatologist, _triage_place(self.status),
                -self.missing_check_ins, self.name)


def missing_check_ins(view: CourseView, today: date) -> int:
    """Follow-up days (treatment day to today, at most FOLLOW_UP_DAYS) with no photo."""
    start = view.patient.treatment_date
    if start is None:
        return 0
    end = min((today - start).days, FOLLOW_UP_DAYS)
    seen = {e.get("day") for e in view.accepted}
    seen |= {c.day for c in view.checkins}
    return sum(1 for d in range(0, end + 1) if d not in seen)


def triage(store: Store, actor: User) -> list[TriageRow]:
    """The clinician's patients, those flagged or off course first."""
    today = store.today()
    rows = []
    for patient in store.patients(actor):
        view = course_view(store, actor, patient.id)
        last = [p.captured_at.date() for p in view.photos
                if p.status == "ok" and p.captured_at is not None]
        if patient.treatment_date is not None:
            last += [patient.treatment_date + timedelta(days=c.day) for c in view.checkins
                     if c.day is not None]
        reasons = view.trend.get("reasons") or []
        rows.append(TriageRow(
            patient_id=patient.id, name=patient.name,
            day_since_treatment=None if patient.treatment_date is None
            else (today - patient.treatment_date).days,
            status=view.course.status, see_dermatologist=view.course.see_dermatologist,
            reason=reasons[0] if reasons else "",
            last_check_in=max(last, default=None),
            missing_check_ins=missing_check_ins(view, today)))
    return sorted(rows, key=lambda r: r.rank)
