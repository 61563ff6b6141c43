"""Re-analysis of every stored photo, one task per patient, in process or on a Dask cluster.

``python -m monitor reanalyse [--outdated] [--workers N | --scheduler ADDRESS]``. Each task
re-analyses one patient's course, reference photo first
(:func:`monitor.clinic.service.reanalyse_patient`), in a worker that opens the clinic's store
itself (:class:`StoreSettings`) and writes through it; the task returns a small
:class:`PatientDone`. Without a cluster the very same task runs in this process, one patient
after the other.

A run can be stopped at any moment and started again: nothing is done twice, nothing is
missed. A full run records itself in the store's settings (``reanalysis_run``: its engine
version, its start and the last analysis row saved before it began). Analysis rows are
numbered in the order they are saved, on every host alike (no clock is compared), so a photo
whose current analysis was saved after that mark by the same engine was done by this run and is
kept when the run is resumed. A patient stopped half-way resumes at its first photo not yet
done; the reference photo is then prepared again from its bytes, not saved again. With
``--outdated`` the photos done are those whose current analysis carries this engine version,
so an interrupted ``--outdated`` run resumes by itself and finds exactly the photos analysed
by another engine (or not at all).

::

    run = start_reanalysis(store, only_outdated=False)       -> ReanalysisRun (what to do)
    run_reanalysis(store, run, client=None, on_patient=...)  -> Reanalysis   (what was done)
    reanalyse_all(store, ...)                                 both at once
    local_cluster(n_workers)                                  a loopback Dask cluster's client
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.clinic.service import ENGINE_VERSION, reanalyse_patient
from monitor.errors import MonitorError
from monitor.store import METADATA, Store, User

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "RUN_SETTING",
    "EngineMismatch",
    "PatientDone",
    "PatientFailed",
    "Reanalysis",
    "ReanalysisRun",
    "StoreSettings",
    "local_cluster",
    "peak_rss_mb",
    "plain_reason",
    "reanalyse_all",
    "reanalyse_patient_task",
    "run_reanalysis",
    "start_reanalysis",
]

#: The settings key of the full re-analysis in progress (or the last one, when finished).
RUN_SETTING = "reanalysis_run"

#: Environment variables that configure the store; handed to the workers with the task, so
#: that a worker opens the same database and photo store as the command that started it.
#: Object-store credentials (``AWS_*``) are not among them: each worker reads its own.
_STORE_ENVIRONMENT_PREFIX = "MONITOR_"


class EngineMismatch(MonitorError):
    """A worker runs another engine version than the command that started the run."""


# ------------------------------------------------------------------------------------------
# The store, opened again in a worker
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSettings:
    """What a worker needs to open the clinic's store: picklable, small.

    Attributes
    ----------
    data_dir : str
        The data folder (photos, SQLite file and locks).
    database_url : str
        The SQLAlchemy URL the store resolved (``$MONITOR_DATABASE_URL`` or SQLite in
        ``data_dir``).
    photos_url : str or None
        The object store of the photos (``s3://bucket/prefix``), or ``None`` for the
        data folder's ``photos`` folder.
    environment : tuple of (str, str)
        The ``MONITOR_*`` variables of the command, set in the worker before it opens the store.
    """

    data_dir: str
    database_url: str
    photos_url: str | None = None
    environment: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, store: Store) -> StoreSettings:
        """The settings that open ``store`` again, in this process or in a worker."""
        environment = tuple(sorted((k, v) for k, v in os.environ.items()
                                   if k.startswith(_STORE_ENVIRONMENT_PREFIX)))
        return cls(data_dir=str(store.data_dir), database_url=str(store.url),
                   photos_url=store.photos_url, environment=environment)

    def open(self) -> Store:
        """A store opened with these settings (the worker's environment updated first).

        It does not sweep for orphan photos on open: the app servers do, and a worker that
        listed the whole object store would make each worker's start cost that listing.
        """
        os.environ.update(dict(self.environment))
        return Store(self.data_dir, url=self.database_url, photos_url=self.photos_url,
                     sweep=False)


_STORES: dict[StoreSettings, Store] = {}
_STORES_LOCK = threading.Lock()


def _worker_store(settings: StoreSettings) -> Store:
    """The worker process's store for ``settings``, opened on its first task only.

    Opening a store upgrades the schema: once per worker, not once per patient.
    """
    with _STORES_LOCK:
        store = _STORES.get(settings)
        if store is None:
            store = _STORES[settings] = settings.open()
        return store


# ------------------------------------------------------------------------------------------
# Which analyses a run has done (read-only look at the analyses table)
# ------------------------------------------------------------------------------------------


def _last_analysis_id(store: Store) -> int:
    """The number of the last analysis row saved so far (0 for none)."""
    from sqlalchemy import func, select

    analyses = METADATA.tables["analyses"]
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.max(analyses.c.id))).scalar() or 0)


def _done_photos(store: Store, actor: User, patient_id: int, *, after_analysis: int,
                 engine_version: str) -> tuple[frozenset[int], int]:
    """(photos of the patient done by the run, photos of the patient).

    A photo is done when its current analysis was saved after row ``after_analysis`` by
    ``engine_version``. The store checks that ``actor`` may see the patient.
    """
    from sqlalchemy import select

    photos = store.photos(actor, patient_id)
    current = [p.id for p in photos if p.engine_version == engine_version]
    if not current:
        return frozenset(), len(photos)
    analyses = METADATA.tables["analyses"]
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(analyses.c.photo_id).where(analyses.c.is_current.is_(True),
                                              analyses.c.id > after_analysis,
                                              analyses.c.engine_version == engine_version,
                                              analyses.c.photo_id.in_(current))).all()
    return frozenset(int(r[0]) for r in rows), len(photos)


# ------------------------------------------------------------------------------------------
# One patient: the task
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientDone:
    """What one patient's task did.

    Attributes
    ----------
    patient_id : int
    photos : int
        The patient's stored photos.
    analysed : int
        Photos analysed and saved by this task (the others were done already).
    seconds : float
        Wall time of the task inside the worker, lock and store reads included.
    cpu_seconds : float
        CPU time of the worker process over the task (every thread of it).
    peak_rss_mb : float
        The worker process's peak resident memory so far, in MiB.
    worker : str
        Host and process id of the worker.
    """

    patient_id: int
    photos: int
    analysed: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    worker: str


@dataclass(frozen=True)
class PatientFailed:
    """A patient whose task failed; ``reason`` is in plain words."""

    patient_id: int
    reason: str


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    Linux's ``VmHWM`` (the process's own high-water mark); not ``getrusage``, whose figure a
    spawned worker inherits from the process that started it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reanalyse_one(store: Store, clinician: User, patient_id: int, *, after_analysis: int,
                   engine_version: str) -> PatientDone:
    """Re-analyse the photos of one patient not yet done by the run (the task's body)."""
    if engine_version != ENGINE_VERSION:
        raise EngineMismatch(
            f"This worker runs engine {ENGINE_VERSION}, the re-analysis engine {engine_version}. "
            "Install the same version of Breakout Monitor on every worker and start again.")
    start, start_cpu = time.perf_counter(), time.process_time()
    with store.patient_lock(patient_id):  # not while a check-in of theirs runs
        done, photos = _done_photos(store, clinician, patient_id,
                                    after_analysis=after_analysis, engine_version=engine_version)
        analysed = 0
        if len(done) < photos:
            analysed = reanalyse_patient(store, clinician, patient_id, keep=done)
    return PatientDone(patient_id=patient_id, photos=photos, analysed=analysed,
                       seconds=time.perf_counter() - start,
                       cpu_seconds=time.process_time() - start_cpu, peak_rss_mb=peak_rss_mb(),
                       worker=f"{os.uname().nodename}:{os.getpid()}")


def reanalyse_patient_task(settings: StoreSettings, clinician: User, patient_id: int, *,
                           after_analysis: int, engine_version: str) -> PatientDone:
    """The task a worker runs: open the store from ``settings``, re-analyse one patient.

    Parameters
    ----------
    settings : StoreSettings
        How to open the clinic's store in this process.
    clinician : User
        The patient's clinician, on whose behalf the analyses are saved.
    patient_id : int
    after_analysis : int
        Photos whose current analysis row is numbered above this one and carries
        ``engine_version`` are done already and kept.
    engine_version : str
        The run's engine version; a worker with another one refuses (:class:`EngineMismatch`).
    """
    return _reanalyse_one(_worker_store(settings), clinician, patient_id,
                          after_analysis=after_analysis, engine_version=engine_version)


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReanalysisRun:
    """A re-analysis about to run: what it keeps and which patients it has left.

    Attributes
    ----------
    engine_version : str
    after_analysis : int
        Analyses saved after this row by ``engine_version`` are done (0 with ``--outdated``).
    started_at : str
        When the run began (ISO 8601, UTC); for a resumed run, when it first began.
    resumed : bool
        Whether this carries on a run stopped before it finished.
    only_outdated : bool
    patients : tuple of (User, int, int)
        (clinician, patient id, photos left to analyse) of every patient with work left.
    photos : int
        Stored photos of every patient (done or not).
    """

    engine_version: str
    after_analysis: int
    started_at: str
    resumed: bool
    only_outdated: bool
    patients: tuple[tuple[User, int, int], ...]
    photos: int

    @property
    def photos_left(self) -> int:
        return sum(n for *_, n in self.patients)


@dataclass(frozen=True)
class Reanalysis:
    """What a run did: the patients done and those that failed (in the order they ended)."""

    run: ReanalysisRun
    done: tuple[PatientDone, ...] = ()
    failed: tuple[PatientFailed, ...] = ()
    seconds: float = 0.0

    @property
    def photos_analysed(self) -> int:
        return sum(d.analysed for d in self.done)


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start_reanalysis(store: Store, *, only_outdated: bool = False) -> ReanalysisRun:
    """Begin (or carry on) a re-analysis and list the patients with photos left to analyse.

    A full run carries on the recorded one when that one has not finished and was made by
    this engine; otherwise it records a new one, which keeps nothing analysed before it. With
    ``only_outdated`` nothing is recorded: photos analysed by this engine are kept, whenever.
    """
    if only_outdated:
        after, started, resumed = 0, _now_text(), False
    else:
        record = json.loads(store.setting(RUN_SETTING) or "{}")
        resumed = (record.get("engine_version") == ENGINE_VERSION
                   and record.get("finished_at") is None and "after_analysis" in record)
        if resumed:
            after, started = int(record["after_analysis"]), str(record["started_at"])
        else:
            after, started = _last_analysis_id(store), _now_text()
            store.set_setting(RUN_SETTING, json.dumps(
                {"engine_version": ENGINE_VERSION, "started_at": started,
                 "after_analysis": after, "finished_at": None}))
    work: list[tuple[User, int, int]] = []
    photos = 0
    for clinician in store.clinicians():
        for patient in store.patients(clinician):
            done, count = _done_photos(store, clinician, patient.id, after_analysis=after,
                                       engine_version=ENGINE_VERSION)
            photos += count
            if len(done) < count:
                work.append((clinician, patient.id, count - len(done)))
    return ReanalysisRun(engine_version=ENGINE_VERSION, after_analysis=after, started_at=started,
                         resumed=resumed, only_outdated=only_outdated, patients=tuple(work),
                         photos=photos)


def plain_reason(error: BaseException) -> str:
    """A task's failure in plain words (no traceback)."""
    if isinstance(error, MonitorError):
        return str(error)
    name = type(error).__name__
    if name == "KilledWorker":
        return ("the worker running it stopped several times (out of memory, or killed); "
                "the photos it finished are kept")
    if name in ("CancelledError", "FutureCancelledError"):
        return "the cluster cancelled it (the scheduler restarted or the connection was lost)"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"an unexpected error ({name}{': ' + text if text else ''})"


OnPatient = Callable[[PatientDone | PatientFailed, int, int], None]


def run_reanalysis(store: Store, run: ReanalysisRun, *, client: Client | None = None,
                   on_patient: OnPatient | None = None) -> Reanalysis:
    """Re-analyse the patients ``run`` lists: on ``client``'s cluster, or here one by one.

    ``on_patient(outcome, finished, total)`` is called as each patient's task ends, done or
    failed; a failure does not stop the others. A full run that ends with no failure is
    recorded as finished (the next one starts afresh); otherwise running it again carries on.
    """
    start = time.perf_counter()
    total = len(run.patients)
    done: list[PatientDone] = []
    failed: list[PatientFailed] = []

    def ended(outcome: PatientDone | PatientFailed) -> None:
        if isinstance(outcome, PatientDone):
            done.append(outcome)
        else:
            failed.append(outcome)
        if on_patient is not None:
            on_patient(outcome, len(done) + len(failed), total)

    options = {"after_analysis": run.after_analysis, "engine_version": run.engine_version}
    if client is None:
        for clinician, patient_id, _left in run.patients:
            try:
                ended(_reanalyse_one(store, clinician, patient_id, **options))
            except Exception as error:  # reported per patient; the run goes on
                ended(PatientFailed(patient_id, plain_reason(error)))
    else:
        from distributed import as_completed

        settings = StoreSettings.of(store)
        token = uuid.uuid4().hex[:8]
        futures = {client.submit(reanalyse_patient_task, settings, clinician, patient_id,
                                 key=f"reanalyse-patient-{patient_id}-{token}", pure=False,
                                 **options): patient_id
                   for clinician, patient_id, _left in run.patients}
        for future in as_completed(futures):
            try:
                ended(future.result())
            except Exception as error:  # reported per patient; the run goes on
                ended(PatientFailed(futures[future], plain_reason(error)))
            future.release()
    if not run.only_outdated and not failed:
        record = json.loads(store.setting(RUN_SETTING) or "{}")
        if record.get("after_analysis") == run.after_analysis:
            store.set_setting(RUN_SETTING, json.dumps(dict(record, finished_at=_now_text())))
    return Reanalysis(run=run, done=tuple(done), failed=tuple(failed),
                      seconds=time.perf_counter() - start)


def reanalyse_all(store: Store, *, only_outdated: bool = False, client: Client | None = None,
                  on_patient: OnPatient | None = None) -> Reanalysis:
    """:func:`start_reanalysis` then :func:`run_reanalysis`."""
    run = start_reanalysis(store, only_outdated=only_outdated)
    return run_reanalysis(store, run, client=client, on_patient=on_patient)


# ------------------------------------------------------------------------------------------
# Clusters
# ------------------------------------------------------------------------------------------


#: Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``, so that memory goes
#: back to the system early; the engine then pays page faults on every photo's fresh arrays
#: (0.30 -> 0.41 s a photo measured in process). Its ``OMP_NUM_THREADS=1`` is kept: one
#: thread per worker is faster here (0.30 -> 0.23 s), and the results are the same.
_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator[Client]:
    """A client of a Dask cluster of ``n_workers`` processes on this machine, one thread each.

    Loopback only, no dashboard (its HTTP endpoint takes any free port, so two clusters never
    clash), glibc's own memory trimming in the workers (:data:`_WORKER_CONFIG`). Closed on
    leaving the block.
    """
    if n_workers < 1:
        raise ValueError(f"a cluster needs at least one worker, got {n_workers}")
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(_WORKER_CONFIG), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=None,
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster) as client:
        yield client
