"""Benchmark: re-analysis on Dask, per worker, and what 300,000 photos would take (issue #15).

Builds a synthetic clinic (``--patients`` x ``--photos``, 1100x1100 JPEGs from
:mod:`monitor.testing.synthetic`, as the demo clinic stores them; ``--courses`` distinct seeded
courses shared out among the patients) in a temporary folder, then re-analyses all of it in process
(no Dask) and on local Dask clusters of each ``--workers`` count, measuring:

- photos per second per worker (wall time of the run, each worker warmed up first: engine
  imported and models loaded, as a long run pays once per worker);
- the scheduler's overhead per task, two ways: a no-op task's round trip from this process
  (submit to result, one at a time), and each worker's idle gap between the end of one task
  and the start of its next while tasks were waiting (Dask's task stream, worker clocks);
- peak resident memory per worker process (``monitor.clinic.reanalysis.peak_rss_mb``: Linux's
  VmHWM in the worker, after its last task);

and from these the projected time for 300,000 photos on 1, 8 and 64 workers.

    .venv/bin/python benchmarks/reanalyse_scale.py [--patients 20] [--photos 10] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.clinic import (  # noqa: E402
    PatientDone,
    local_cluster,
    peak_rss_mb,
    run_reanalysis,
    start_reanalysis,
)
from monitor.store import Store  # noqa: E402

PROJECTED_PHOTOS = 300_000
PROJECTED_WORKERS = (1, 8, 64)
SAMPLE = Path(__file__).resolve().parents[1] / "sample_images" / "day0.jpg"


def build_clinic(folder: Path, *, patients: int, photos: int, courses: int) -> Store:
    """A clinic of ``patients`` patients with ``photos`` stored photos each (not analysed)."""
    from monitor.testing import encode_jpeg, make_course

    store = Store(folder)
    doctor = store.create_user("doctor", "a long pass phrase 1", role="clinician")
    series = [[(encode_jpeg(p), p.captured_at, f"day{p.day}.jpg")
               for p in make_course(500 + c, days=tuple(range(photos))).photos]
              for c in range(courses)]
    for i in range(patients):
        patient_id = store.add_patient(doctor, f"Patient {i}", treatment_date=date(2026, 3, 2))
        for data, captured_at, name in series[i % courses]:
            store.add_photo(doctor, patient_id, data, file_name=name, captured_at=captured_at)
    return store


def _noop() -> None:
    return None


def _warm_up() -> None:
    """Import the engine and analyse one photo (its models loaded)."""
    from monitor.pipeline import analyse_photo

    analyse_photo(SAMPLE.read_bytes(), name=SAMPLE.name)


def round_trips(client, n: int) -> list[float]:  # noqa: ANN001 - a distributed.Client
    """Seconds from submit to result of ``n`` no-op tasks, one at a time."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        client.submit(_noop, pure=False).result()
        times.append(time.perf_counter() - start)
    return times


def idle_gaps(stream: list[dict]) -> list[float]:
    """Each worker's gaps between one task's end and its next task's start (seconds)."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for entry in stream:
        if not str(entry.get("key", "")).startswith("reanalyse-patient-"):
            continue
        for part in entry.get("startstops", ()):
            if part.get("action") == "compute":
                by_worker.setdefault(entry["worker"], []).append((part["start"], part["stop"]))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps.extend(b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False))
    return gaps


def measure(store: Store, workers: int | None, noops: int) -> dict:
    """One full re-analysis of the clinic: in process (``workers`` None) or on a cluster."""
    start = time.perf_counter()
    run = start_reanalysis(store)
    planning = time.perf_counter() - start
    if workers is None:
        _warm_up()
        start = time.perf_counter()
        result = run_reanalysis(store, run)
        wall = time.perf_counter() - start
        return {"workers": None, "wall": wall, "result": result, "round_trips": [],
                "gaps": [], "peak_rss": {"this process": peak_rss_mb()}, "planning": planning}
    from distributed import get_task_stream

    with local_cluster(workers) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        for address in addresses:  # every worker warm, as after its first patient
            client.submit(_warm_up, workers=[address], allow_other_workers=False,
                          pure=False).result()
        trips = round_trips(client, noops)
        with get_task_stream(client) as stream:
            start = time.perf_counter()
            result = run_reanalysis(store, run, client=client)
            wall = time.perf_counter() - start
        peaks = {a: client.submit(peak_rss_mb, workers=[a], allow_other_workers=False,
                                  pure=False).result() for a in addresses}
        gaps = idle_gaps(stream.data)
    return {"workers": workers, "wall": wall, "result": result, "round_trips": trips,
            "gaps": gaps, "peak_rss": peaks, "planning": planning}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--photos", type=int, default=10, help="photos per patient")
    parser.add_argument("--courses", type=int, default=5,
                        help="distinct synthetic courses shared out among the patients")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noops", type=int, default=200, help="no-op round trips timed")
    args = parser.parse_args()
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")

    tmp = Path(tempfile.mkdtemp(prefix="reanalyse_scale_"))
    try:
        start = time.perf_counter()
        store = build_clinic(tmp / "data", patients=args.patients, photos=args.photos,
                             courses=args.courses)
        print(f"Clinic: {args.patients} patients x {args.photos} photos (1100x1100 JPEG, "
              f"{args.courses} distinct courses), built in {time.perf_counter() - start:.0f} s; "
              f"{os.cpu_count()} CPU cores.", flush=True)
        runs = [measure(store, None, 0)]
        for n in args.workers:
            runs.append(measure(store, n, args.noops))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    photos = args.patients * args.photos
    print()
    print("| run | wall s | photos/s | photos/s per worker | s per photo in task (wall, CPU) "
          "| no-op round trip ms (median, p95) | idle gap between tasks ms (median, max) "
          "| peak RSS per worker MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    per_photo: dict[int | None, float] = {}
    cpu: dict[int | None, float] = {}
    for r in runs:
        result = r["result"]
        done: tuple[PatientDone, ...] = result.done
        assert not result.failed and result.photos_analysed == photos, result.failed
        in_task = sum(d.seconds for d in done) / photos
        cpu[r["workers"]] = sum(d.cpu_seconds for d in done) / photos
        n = r["workers"] or 1
        per_photo[r["workers"]] = r["wall"] * n / photos  # worker-seconds per photo
        trips = sorted(r["round_trips"])
        trip = (f"{1000 * statistics.median(trips):.1f}, "
                f"{1000 * trips[int(0.95 * (len(trips) - 1))]:.1f}") if trips else "-"
        gaps = sorted(r["gaps"])
        gap = f"{1000 * statistics.median(gaps):.1f}, {1000 * gaps[-1]:.1f}" if gaps else "-"
        rss = ", ".join(f"{v:.0f}" for v in r["peak_rss"].values())
        name = "in process (no Dask)" if r["workers"] is None else f"Dask, {n} worker(s)"
        print(f"| {name} | {r['wall']:.1f} | {photos / r['wall']:.2f} | "
              f"{photos / r['wall'] / n:.2f} | {in_task:.3f}, {cpu[r['workers']]:.3f} | {trip} | "
              f"{gap} | {rss} |")

    print()
    dask_runs = [r for r in runs if r["workers"]]
    trip_s = statistics.median([t for r in dask_runs for t in r["round_trips"]])
    all_gaps = [g for r in dask_runs for g in r["gaps"]]
    gap_s = statistics.median(all_gaps) if all_gaps else trip_s
    overhead_s = max(trip_s, gap_s)
    widest = max(r["workers"] for r in dask_runs)
    narrow = min(r["workers"] for r in dask_runs)
    core_s = cpu[widest]  # CPU-seconds a photo takes, every core of this machine busy
    wall_s = per_photo[widest]  # worker-seconds of wall time a photo took, likewise
    print(f"Scheduler overhead per task: {1000 * overhead_s:.1f} ms (the larger of the no-op "
          f"round trip, {1000 * trip_s:.1f} ms, and the median idle gap between tasks, "
          f"{1000 * gap_s:.1f} ms) = {100 * overhead_s / core_s:.2f} % of one photo's cost "
          f"({core_s:.3f} CPU-s), {100 * overhead_s / (core_s * args.photos):.3f} % of a "
          f"{args.photos}-photo patient's task.")
    print(f"Each Dask worker runs one task at a time; the engine's libraries still use more "
          f"than one thread, so one worker alone takes {per_photo[narrow]:.3f} s of wall time "
          f"a photo against {wall_s:.3f} worker-s with {widest} workers on this "
          f"{os.cpu_count()}-core machine (shared with the scheduler and this process): "
          f"{widest} workers are not {widest}x faster. In process (no Dask) the engine takes "
          f"{per_photo[None]:.3f} s a photo.")
    planning_s = statistics.median(r["planning"] for r in runs) / args.patients
    print(f"Listing the work (start_reanalysis, in this process, SQLite): "
          f"{1000 * planning_s:.1f} ms per patient.")
    print()
    print(f"Projected time for {PROJECTED_PHOTOS:,} photos ({args.photos} per patient, "
          f"{PROJECTED_PHOTOS // args.photos:,} tasks), each worker one core of this speed, "
          f"{1000 * overhead_s:.1f} ms per task, the work listed first "
          f"({1000 * planning_s:.1f} ms per patient), the database and photo store keeping up:")
    print(f"| workers | at {core_s:.3f} CPU-s per photo | at {wall_s:.3f} worker-s per photo "
          f"(wall, as with {widest} workers here) |")
    print("| --- | --- | --- |")
    for w in PROJECTED_WORKERS:
        hours = [(PROJECTED_PHOTOS * (cost + overhead_s / args.photos) / w
                  + PROJECTED_PHOTOS / args.photos * planning_s) / 3600
                 for cost in (core_s, wall_s)]
        print(f"| {w} | {hours[0]:.1f} h | {hours[1]:.1f} h |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
