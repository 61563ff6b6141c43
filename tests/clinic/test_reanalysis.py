"""Re-analysis of a clinic on a real Dask cluster: identical to the serial run, resumable,
``--outdated`` exact, failures reported per patient (``python -m monitor reanalyse``).

A small synthetic clinic (3 patients x 3 photos, seeded) is built once per backend; each test
works on a copy of it. The command runs as a subprocess, as an administrator would run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.clinic import ENGINE_VERSION, RUN_SETTING, check_in_photo
from monitor.store import Store
from monitor.testing import encode_jpeg, make_course
from tests.conftest import postgres_database

ROOT = Path(__file__).resolve().parents[2]
PATIENTS, DAYS = 3, 3
OLD_ENGINE = "monitor.analysis/1+0.0.9"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic_template(request, tmp_path_factory):
    """The small clinic, every photo checked in (analysed): its folder and database URL."""
    folder = tmp_path_factory.mktemp("reanalyse_template") / "data"
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            url = stack.enter_context(postgres_database())
        store = Store(folder, url=url)
        doctor = store.create_user("doctor", "a long pass phrase 1", role="clinician")
        for i in range(PATIENTS):
            patient_id = store.add_patient(doctor, f"Patient {i}",
                                           treatment_date=date(2026, 3, 2))
            for photo in make_course(300 + i, days=tuple(range(DAYS))).photos:
                outcome = check_in_photo(store, doctor, patient_id, encode_jpeg(photo),
                                         file_name=f"day{photo.day}.jpg")
                assert outcome.stored
        store.close()
        yield folder, url


@contextlib.contextmanager
def _copy(template: tuple[Path, str | None], folder: Path) -> Iterator[tuple[Path, str | None]]:
    source, url = template
    shutil.copytree(source, folder)
    with contextlib.ExitStack() as stack:
        if url is not None:
            url = stack.enter_context(postgres_database(template=url))
        yield folder, url


@pytest.fixture()
def clinic(clinic_template, tmp_path):
    """A fresh copy of the small clinic: (data folder, database URL or None for SQLite)."""
    with _copy(clinic_template, tmp_path / "data") as copy:
        yield copy


def _reanalyse(clinic: tuple[Path, str | None], *options: str,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_command(clinic, *options), cwd=ROOT, env=_environment(clinic),
                          capture_output=True, text=True, timeout=timeout)


def _command(clinic: tuple[Path, str | None], *options: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "reanalyse", *options, "--data", str(clinic[0])]


def _environment(clinic: tuple[Path, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_DATABASE_URL"}
    if clinic[1] is not None:
        env["MONITOR_DATABASE_URL"] = clinic[1]
    return env


@contextlib.contextmanager
def _store(clinic: tuple[Path, str | None]) -> Iterator[Store]:
    store = Store(clinic[0], url=clinic[1])
    try:
        yield store
    finally:
        store.close()


def _analyses(clinic: tuple[Path, str | None]) -> dict[tuple[str, str], tuple]:
    """(patient, file) -> (engine version, reference file, stored JSON) of every photo."""
    with _store(clinic) as store:
        doctor = store.user("doctor")
        found = {}
        for patient in store.patients(doctor):
            photos = store.photos(doctor, patient.id)
            names = {p.id: p.file_name for p in photos}
            for p in photos:
                found[(patient.name, p.file_name)] = (
                    p.engine_version, names.get(p.reference_photo_id),
                    json.dumps(p.result, sort_keys=True))
        return found


def _saves_after(clinic: tuple[Path, str | None], row: int) -> dict[tuple[str, str], int]:
    """(patient, file) -> analyses saved after analysis row ``row``."""
    with _store(clinic) as store, store.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT patients.name, photos.file_name, COUNT(*) FROM analyses"
            " JOIN photos ON photos.id = analyses.photo_id"
            " JOIN patients ON patients.id = photos.patient_id"
            " WHERE analyses.id > :row GROUP BY patients.name, photos.file_name"),
            {"row": row}).all()
    return {(name, file): int(n) for name, file, n in rows}


def _last_row(clinic: tuple[Path, str | None]) -> int:
    with _store(clinic) as store, store.engine.connect() as connection:
        return int(connection.execute(text("SELECT MAX(id) FROM analyses")).scalar() or 0)


@pytest.fixture(scope="module")
def serial(clinic_template, tmp_path_factory):
    """Every photo's analysis after a serial run (in process) on a copy of the clinic."""
    with _copy(clinic_template, tmp_path_factory.mktemp("serial") / "data") as copy:
        run = _reanalyse(copy)
        assert run.returncode == 0, run.stderr
        assert f"Re-analysed {PATIENTS * DAYS} photos of {PATIENTS} patients" in run.stdout
        yield _analyses(copy)


def test_two_workers_give_the_serial_runs_analyses(clinic, serial):
    before = _last_row(clinic)
    run = _reanalyse(clinic, "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert "on 2 local workers" in run.stderr and "Traceback" not in run.stderr + run.stdout
    assert run.stderr.count("photos re-analysed in") == PATIENTS  # progress per patient
    assert _analyses(clinic) == serial
    assert all(v[0] == ENGINE_VERSION for v in serial.values())
    assert set(_saves_after(clinic, before).values()) == {1}  # every photo saved once
    again = _reanalyse(clinic)  # that run finished: a new one does every photo again
    assert again.returncode == 0 and "Re-analysing 9 photos of 3 patients" in again.stderr


def test_a_run_killed_half_way_carries_on_without_doing_anything_twice(clinic, serial):
    before = _last_row(clinic)
    with subprocess.Popen(_command(clinic, "--workers", "2"), cwd=ROOT,
                          env=_environment(clinic), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as first:
        assert first.stderr is not None
        for line in first.stderr:
            if line.startswith("[1/"):  # the first patient is done, the others are not
                os.killpg(first.pid, signal.SIGKILL)  # the command and its workers
                break
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    saved_first = _saves_after(clinic, before)
    assert DAYS <= sum(saved_first.values()) < PATIENTS * DAYS
    with _store(clinic) as store:
        record = json.loads(store.setting(RUN_SETTING))
    assert record["after_analysis"] == before and record["finished_at"] is None

    rest = _reanalyse(clinic, "--workers", "2")
    assert rest.returncode == 0, rest.stderr
    assert "Carrying on with the re-analysis begun" in rest.stderr
    assert f"{sum(saved_first.values())} photos done are kept" in rest.stderr
    saves = _saves_after(clinic, before)
    assert len(saves) == PATIENTS * DAYS and set(saves.values()) == {1}  # none twice, none missed
    assert _analyses(clinic) == serial  # a patient resumed mid-way reads as the serial run
    with _store(clinic) as store:
        assert json.loads(store.setting(RUN_SETTING))["finished_at"] is not None


def test_outdated_finds_exactly_the_photos_an_older_engine_analysed(clinic, serial):
    with _store(clinic) as store:
        doctor = store.user("doctor")
        first, second, _third = store.patients(doctor)
        stale = [store.photos(doctor, first.id)[0],  # a reference photo
                 store.photos(doctor, second.id)[2]]  # and a photo read against one
        for photo in stale:
            store.save_analysis(doctor, photo.id, photo.result, engine_version=OLD_ENGINE,
                                reference_photo_id=photo.reference_photo_id)
    before = _last_row(clinic)
    run = _reanalyse(clinic, "--outdated", "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert "Re-analysing 2 photos of 2 patients" in run.stderr
    assert _saves_after(clinic, before) == {(first.name, stale[0].file_name): 1,
                                            (second.name, stale[1].file_name): 1}
    assert all(v[0] == ENGINE_VERSION for v in _analyses(clinic).values())
    again = _reanalyse(clinic, "--outdated")
    assert again.returncode == 0 and "Nothing to re-analyse" in again.stdout
    assert _last_row(clinic) == before + 2


def test_a_patient_that_fails_is_reported_in_words_and_the_others_are_done(clinic):
    with _store(clinic) as store:
        doctor = store.user("doctor")
        broken = store.patients(doctor)[1]
        photo = store.photos(doctor, broken.id)[1]
    path = next(clinic[0].glob(f"photos/??/{photo.sha256}.*"))
    hidden = clinic[0].parent / "elsewhere"  # not in the photo folder: its sweep would take it
    path.rename(hidden)
    before = _last_row(clinic)
    run = _reanalyse(clinic)
    assert run.returncode == 1
    assert f"patient #{broken.id}: not re-analysed: This photo cannot be shown: its file is " \
        "missing or damaged" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "1 patient could not be re-analysed" in run.stdout
    done_first = _saves_after(clinic, before)
    assert {name for name, _ in done_first} == {"Patient 0", "Patient 1", "Patient 2"}
    hidden.rename(path)
    retry = _reanalyse(clinic)
    assert retry.returncode == 0, retry.stderr
    assert "Carrying on" in retry.stderr and "2 photos of 1 patient left" in retry.stderr
    saves = _saves_after(clinic, before)
    assert len(saves) == PATIENTS * DAYS and set(saves.values()) == {1}


def test_workers_must_be_a_positive_number(clinic):
    run = _reanalyse(clinic, "--workers", "0", timeout=60)
    assert run.returncode == 2 and "expected a whole number of 1 or more" in run.stderr
    both = _reanalyse(clinic, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1", timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_an_unreachable_scheduler_is_said_in_words(clinic):
    run = _reanalyse(clinic, "--scheduler", "tcp://127.0.0.1:9", timeout=120)
    assert run.returncode == 2
    assert "Could not start or reach the Dask scheduler at tcp://127.0.0.1:9" in run.stderr
    assert "Traceback" not in run.stderr
