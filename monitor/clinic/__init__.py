"""The clinic: the workflow between the engine and the store, and re-analysing the store.

- :mod:`~monitor.clinic.service`: a photo check-in runs the engine once and stores the result;
  the course view, the triage list and the clinician's corrections read what is stored; the
  engine's version (what analysed a photo).
- :mod:`~monitor.clinic.reanalysis`: every stored photo analysed again, one task per patient,
  in process or on a Dask cluster, resumable.

The app's HTTP side (session cookie, exports) is :mod:`monitor.web`; the pages are in
``app_pages/``.
"""

from __future__ import annotations

from monitor.clinic.reanalysis import (
    RUN_SETTING,
    EngineMismatch,
    PatientDone,
    PatientFailed,
    Reanalysis,
    ReanalysisRun,
    StoreSettings,
    local_cluster,
    peak_rss_mb,
    plain_reason,
    reanalyse_all,
    reanalyse_patient_task,
    run_reanalysis,
    start_reanalysis,
)
from monitor.clinic.service import (
    ENGINE_VERSION,
    CheckInOutcome,
    CourseView,
    TriageRow,
    analyse_missing,
    apply_corrections,
    check_in_photo,
    course_view,
    engine_version,
    reanalyse_patient,
    reference_for,
    triage,
)

__all__ = [
    "ENGINE_VERSION",
    "RUN_SETTING",
    "CheckInOutcome",
    "CourseView",
    "EngineMismatch",
    "PatientDone",
    "PatientFailed",
    "Reanalysis",
    "ReanalysisRun",
    "StoreSettings",
    "TriageRow",
    "analyse_missing",
    "apply_corrections",
    "check_in_photo",
    "course_view",
    "engine_version",
    "local_cluster",
    "peak_rss_mb",
    "plain_reason",
    "reanalyse_all",
    "reanalyse_patient",
    "reanalyse_patient_task",
    "reference_for",
    "run_reanalysis",
    "start_reanalysis",
    "triage",
]
