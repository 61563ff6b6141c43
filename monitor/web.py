"""The app's side of the server: the store of this process (pages and routes share it)."""

from __future__ import annotations

import functools
import os
import threading
from datetime import timedelta

from monitor.store import IDLE_LIMITS, Store

__all__ = ["open_store"]

_OPEN_LOCK = threading.Lock()


@functools.cache
def _open(data_dir: str) -> Store:
    from monitor.clinic import analyse_missing

    store = Store(data_dir)
    limits = dict(IDLE_LIMITS)
    if os.environ.get("MONITOR_IDLE_MINUTES_CLINICIAN"):
        limits["clinician"] = timedelta(minutes=float(
            os.environ["MONITOR_IDLE_MINUTES_CLINICIAN"]))
    if os.environ.get("MONITOR_IDLE_DAYS_PATIENT"):
        limits["patient"] = timedelta(days=float(os.environ["MONITOR_IDLE_DAYS_PATIENT"]))
    store.idle_limits = limits
    analyse_missing(store)  # photos a crash left without their analysis
    return store


def open_store(data_dir: str) -> Store:
    """The store of ``data_dir`` for this process (opened, recovered and checked once)."""
    with _OPEN_LOCK:
        return _open(os.path.abspath(data_dir))
