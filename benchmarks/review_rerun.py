"""Benchmark: how long a warm rerun of a 30-day review page takes (the page reads stored results).

A clinician moving a slider on a patient's review must not wait for analysis: once the page has
run, its course, aligned photos and PDF come from caches. This builds the demo clinic, gives
Alex 30 days of photos, runs the review page once, then times reruns after a slider move.

    .venv/bin/python benchmarks/review_rerun.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.store import Store  # noqa: E402

TARGET_SECONDS = 1.0


def extend_to_30_days(store: Store, username: str = "doctor", patient: str = "Alex") -> int:
    """Give the demo patient stored results for days 8..29 (copies of day 3's); its id."""
    from PIL import Image

    doctor = store.user(username)
    pid = next(p.id for p in store.patients(doctor) if p.name == patient)
    photos = store.photos(doctor, pid)
    template = photos[3].result
    for day in range(8, 30):
        out = io.BytesIO()
        Image.new("RGB", (320, 320), (150, 100 + day, 90)).save(out, format="JPEG")
        info, _ = store.add_photo(doctor, pid, out.getvalue(), file_name=f"d{day}.jpg")
        entry = dict(template, day=day, file=f"d{day}.jpg",
                     captured_at=f"2026-03-{2 + day:02d}T09:00:00")
        store.save_analysis(doctor, info.id, entry, engine_version="test",
                            reference_photo_id=photos[0].id)
    return pid


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv[1:])
    from streamlit.testing.v1 import AppTest

    from monitor.testing import build_demo

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        store = build_demo(folder)
        pid = extend_to_30_days(store)
        os.environ["MONITOR_DATA"] = str(folder)
        os.chdir(ROOT)
        at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=300)
        at.session_state["session_id"], _ = store.start_session(store.user("doctor"))
        at.query_params["patient"] = str(pid)
        t0 = time.perf_counter()
        at.switch_page("app_pages/review.py").run()
        cold = time.perf_counter() - t0
        if at.exception:
            print(at.exception, file=sys.stderr)
            return 1
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            at.slider(key="wipe_review").set_value(20 + 10 * (i % 5)).run()
            times.append(time.perf_counter() - t0)
        store.close()
    warm = statistics.median(times)
    print(f"30-day review: first run {cold:.2f} s; warm rerun median {warm:.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}; target under {TARGET_SECONDS:.1f} s)")
    return 0 if warm < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
