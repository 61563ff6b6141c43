"""What the app, the PDF and the exports show: charts, pictures and the record.

Nothing here measures: every figure comes from the analysis and the course (the
``monitor.analysis/1`` records, :mod:`monitor.course`); these turn them into what a patient and
a clinician look at.

- :mod:`~monitor.present.charts`: the course against the expected window (plotly for the app,
  a matplotlib PNG for the PDF).
- :mod:`~monitor.present.imagery`: photos in the reference frame, lesion and redness overlays,
  the wipe and the time-lapse.
- :mod:`~monitor.present.report`: the one-page PDF, and the series as CSV or JSON.
"""

from __future__ import annotations

from monitor.present.charts import MEASURES, course_figure, course_png, series_points
from monitor.present.imagery import (
    aligned_photo,
    draw_lesions,
    frame_to_photo,
    framing_thumbnail,
    lesions_in_frame,
    redness_overlay,
    timelapse_gif,
    wipe,
)
from monitor.present.report import STATUS_WORDS, pdf_report, series_csv, series_json

__all__ = [
    "MEASURES",
    "STATUS_WORDS",
    "aligned_photo",
    "course_figure",
    "course_png",
    "draw_lesions",
    "frame_to_photo",
    "framing_thumbnail",
    "lesions_in_frame",
    "pdf_report",
    "redness_overlay",
    "series_csv",
    "series_json",
    "series_points",
    "timelapse_gif",
    "wipe",
]
