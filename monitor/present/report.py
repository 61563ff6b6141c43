"""Export for the record: a one-page PDF, and the series as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import numpy as np

from monitor.clinic import CourseView
from monitor.course import STATUS_INFO

__all__ = ["STATUS_WORDS", "pdf_report", "series_csv", "series_json"]

#: The status in plain words (patients and the record read these, never the code).
STATUS_WORDS = {name: info.words for name, info in STATUS_INFO.items()}


def _fonts() -> dict[str, str]:
    """DejaVu Sans (regular, bold, italic), the Unicode font shipped with matplotlib.

    The PDF's core fonts are Latin-1 only: a Cyrillic, Greek or accented name came out as
    "????". DejaVu covers Latin, Greek, Cyrillic and more (not Chinese, Japanese or Korean).
    """
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {"": str(folder / "DejaVuSans.ttf"), "B": str(folder / "DejaVuSans-Bold.ttf"),
            "I": str(folder / "DejaVuSans-Oblique.ttf")}


def pdf_report(view: CourseView, *, before: np.ndarray | None, after: np.ndarray | None,
               before_label: str, after_label: str, chart_png: bytes | None,
               clinician: str, generated: date) -> bytes:
    """One A4 page: patient, treatment, two aligned photos, the chart, status and reasons."""
    from fpdf import FPDF
    from PIL import Image

    trend = view.trend
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    for style, path in _fonts().items():
        pdf.add_font("DejaVu", style, path)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.cell(0, 8, "Breakout Monitor - course report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    patient = view.patient
    lines = [
        f"Patient: {patient.name}",
        f"Treatment: {patient.procedure or '-'} on {patient.treatment_date or '-'}",
        f"Photos: {len(view.accepted)} usable of {len(view.entries)}; "
        f"latest day {trend.get('latest_day')}",
        f"Prepared by {clinician} on {generated.isoformat()}",
    ]
    for line in lines:
        pdf.cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    y = pdf.get_y() + 2
    for i, (image, label) in enumerate(((before, before_label), (after, after_label))):
        if image is None:
            continue
        x = 10 + i * 96
        im = Image.fromarray(image)
        w = 90.0
        h = min(w * im.height / im.width, 95.0)
        pdf.image(im, x=x, y=y, w=h * im.width / im.height, h=h)
        pdf.set_xy(x, y + h + 1)
        pdf.cell(90, 5, label)
    y = pdf.get_y() + 8
    if chart_png is not None:
        pdf.image(io.BytesIO(chart_png), x=10, y=y, w=190)
        y += 190 * 2.6 / 7.0 + 2
    pdf.set_xy(10, y)
    pdf.set_font("DejaVu", "B", 12)
    status = STATUS_WORDS.get(trend.get("status", ""), trend.get("status", ""))
    flag = "  -  please review (flagged)" if trend.get("see_dermatologist") else ""
    pdf.cell(0, 7, f"Status: {status}{flag}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for reason in trend.get("reasons") or []:
        pdf.multi_cell(0, 5, f"- {reason}", new_x="LMARGIN", new_y="NEXT")
    corrected = sum(1 for e in view.entries if e.get("corrected"))
    if corrected:
        pdf.multi_cell(0, 5, f"Lesion counts include a clinician's corrections on "
                             f"{corrected} photo(s).", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(285)
    pdf.set_font("DejaVu", "I", 7)
    pdf.cell(0, 4, "Measured from the patient's photos; a guide for the record, not a "
                   "diagnosis.")
    return bytes(pdf.output())


_COLUMNS = ("day", "photos", "lesion_count", "redness_index", "new", "persisting", "resolved",
            "new_pustules", "severity_grade", "lesion_level", "redness_level")


def series_csv(view: CourseView) -> str:
    """One row per observed day (the course's series), then one per photo."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_COLUMNS)
    for day in view.trend.get("series") or []:
        writer.writerow([day.get(c) for c in _COLUMNS])
    return out.getvalue()


def series_json(view: CourseView) -> str:
    """The ``monitor.analysis/1``-shaped record of the course (corrections applied)."""
    from monitor.pipeline import SCHEMA

    treated = view.patient.treatment_date
    reference = view.reference_photo
    return json.dumps({
        "schema": SCHEMA,
        "patient": view.patient.name,
        "treatment_date": None if treated is None else treated.isoformat(),
        "reference": None if reference is None else reference.file_name,
        "procedure": view.patient.procedure,
        "photos": list(view.entries),
        "trend": view.trend,
        "symptoms": [{"day": c.day, "reported": list(c.reported)} for c in view.checkins],
    }, indent=1)
