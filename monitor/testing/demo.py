"""A demo clinic built from ``sample_images/`` (the synthetic daily course, treated 2026-03-02).

Demo accounts exist only in a demo store (``settings.demo = 1``), and the app says so on every
page. The clinic's "today" is fixed at the last sample day, so the course reads as it would on
that day.

Accounts (user name / password):

- ``doctor`` / ``demo-doctor``: the dermatologist, with three patients
- ``alex`` / ``demo-alex``: the whole sample course, days 0-7
- ``sam`` / ``demo-sam``: days 0-4, reported fever and pus on day 3 (flagged)
- ``robin`` / ``demo-robin``: no photos yet: try the daily check-in
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path

from monitor.clinic import ENGINE_VERSION, check_in_photo
from monitor.store import Store, strip_location

__all__ = ["DEMO_ACCOUNTS", "DEMO_TODAY", "TREATMENT_DATE", "build_demo"]

TREATMENT_DATE = date(2026, 3, 2)
DEMO_TODAY = date(2026, 3, 9)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"
#: The seed of the bundled sample course (``python -m monitor.testing sample_images``).
SAMPLE_SEED = 20260302


def _samples(data_dir: Path) -> Path:
    """The sample course's photos: the repository's sample_images/, or, where the package is
    installed without the repository, the course the same generator and seed make (what
    ``python -m monitor.testing sample_images`` writes), written into ``data_dir``."""
    if (SAMPLES / "day0.jpg").is_file():
        return SAMPLES
    folder = data_dir / "sample_images"
    if not (folder / "day0.jpg").is_file():
        from monitor.testing.synthetic import make_course, write_course

        write_course(make_course(SAMPLE_SEED), folder)
    return folder

#: user name -> (password, role, display name)
DEMO_ACCOUNTS = {
    "doctor": ("demo-doctor", "clinician", "Dr Demo (dermatologist)"),
    "alex": ("demo-alex", "patient", "Alex (demo)"),
    "sam": ("demo-sam", "patient", "Sam (demo)"),
    "robin": ("demo-robin", "patient", "Robin (demo)"),
}


def build_demo(data_dir: str | Path, *, progress: Callable[[int, int, str], None] | None = None,
               days: int = 8) -> Store:
    """Open (building on first use) the demo clinic in ``data_dir``.

    The sample course is analysed once; the second patient's photos reuse those results
    (same photos, same reference photo), so building costs one course of analysis.
    """
    store = Store(data_dir)
    if store.setting("demo_built") == "1":
        return store
    if store.clinicians():
        raise RuntimeError(f"{data_dir} already holds a clinic that is not the demo; "
                           "choose another folder for the demo.")
    store.set_setting("demo", "1")
    store.set_setting("today", DEMO_TODAY.isoformat())
    users = {name: store.create_user(name, password, role=role, display_name=shown,
                                     is_demo=True)
             for name, (password, role, shown) in DEMO_ACCOUNTS.items()}
    doctor = users["doctor"]
    ids = {name: store.add_patient(doctor, DEMO_ACCOUNTS[name][2].split(" (")[0],
                                   treatment_date=TREATMENT_DATE, username=name)
           for name in ("alex", "sam", "robin")}
    alex, sam = store.user("alex"), store.user("sam")
    assert alex is not None and sam is not None
    samples = _samples(Path(data_dir))
    files = [samples / f"day{d}.jpg" for d in range(days)]
    by_hash: dict[str, dict] = {}
    total = len(files)
    for i, path in enumerate(files, start=1):
        outcome = check_in_photo(store, alex, ids["alex"], path.read_bytes(), file_name=path.name)
        store.add_checkin(alex, ids["alex"], day=outcome.result.get("day"))
        if outcome.photo is not None:
            by_hash[outcome.photo.sha256] = outcome.photo.result or {}
        if progress is not None:
            progress(i, total, path.name)
    sam_ref = None
    for path in files[:5]:
        data = path.read_bytes()
        stored, _ = strip_location(data)
        result = by_hash.get(hashlib.sha256(stored).hexdigest())
        if result is None:
            continue
        photo, _new = store.add_photo(sam, ids["sam"], data, file_name=path.name,
                                      captured_at=None if result.get("captured_at") is None
                                      else _parse(result["captured_at"]))
        sam_ref = sam_ref or photo.id
        store.save_analysis(sam, photo.id, result, engine_version=ENGINE_VERSION,
                            reference_photo_id=sam_ref)
        day = result.get("day")
        store.add_checkin(sam, ids["sam"], day=day, fever=day == 3, pus=day == 3)
    store.set_setting("demo_built", "1")
    return store


def _parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)
