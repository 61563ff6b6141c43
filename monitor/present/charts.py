"""Course charts against the expected window (plotly for the app, matplotlib PNG for the PDF).

The expected band is relative (0 = baseline, 1 = the course's own peak, see
:meth:`monitor.course.ExpectedCourse.band`); it is drawn in the measure's own units by scaling it
between the course's baseline and peak, so a patient reads "spots" and not "relative level".
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["MEASURES", "course_figure", "course_png", "series_points"]

MEASURES = {
    "lesions": ("lesion_count", "Spots"),
    "redness": ("redness_index", "Redness (a* above day 0)"),
}


def series_points(trend: dict, measure: str, region: str | None = None
                  ) -> tuple[list[int], list[float]]:
    """(days, values) of one measure, for the whole face or one region."""
    key, _ = MEASURES[measure]
    days, values = [], []
    for day in trend.get("series") or []:
        value = day.get(key) if region is None else \
            (day.get("by_region") or {}).get(region, {}).get(key)
        if value is not None:
            days.append(int(day["day"]))
            values.append(float(value))
    return days, values


def _band(trend: dict, measure: str, values: list[float], days: list[int]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The expected band in the measure's units: (days, lower, upper, typical).

    Scaled between the baseline and the peak that the course itself judged the measure by
    (the trend's ``scales``); a trend written before those were published is scaled between
    the lowest value up to day 0 and the highest.
    """
    band = ((trend.get("expected_course") or {}).get("band") or {}).get(measure)
    if not band or not values:
        return None
    scale = (trend.get("scales") or {}).get(measure)
    if scale is not None:
        base, peak = float(scale["baseline"]), float(scale["peak"])
    else:
        before = [v for d, v in zip(days, values, strict=True) if d <= 0]
        base, peak = (min(before) if before else 0.0), max(values)
    span = max(peak - base, 1e-9)
    x = np.asarray(band["days"], float)
    return (x, base + span * np.asarray(band["lower"], float),
            base + span * np.asarray(band["upper"], float),
            base + span * np.asarray(band["typical"], float))


def course_figure(trend: dict, measure: str = "lesions", *, region: str | None = None,
                  height: int = 320):
    """A plotly figure: the measured course (dots and line) over the expected band."""
    import plotly.graph_objects as go

    _, label = MEASURES[measure]
    days, values = series_points(trend, measure, region)
    fig = go.Figure()
    band = _band(trend, measure, values, days)
    if band is not None:
        x, lower, upper, typical = band
        fig.add_trace(go.Scatter(x=x, y=upper, mode="lines", line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=lower, mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(90,160,90,0.22)",
                                 name="expected window", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=typical, mode="lines", name="typical course",
                                 line={"dash": "dot", "color": "rgba(60,120,60,0.8)"}))
    fig.add_trace(go.Scatter(x=days, y=values, mode="lines+markers", name=label,
                             line={"color": "#c0392b", "width": 3}, marker={"size": 9}))
    title = label if region is None else f"{label}: {region.replace('_', ' ')}"
    fig.update_layout(title=title, height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      xaxis_title="days since treatment", legend={"orientation": "h", "y": -0.25},
                      hovermode="x unified")
    return fig


def course_png(trend: dict, *, width_in: float = 7.0, height_in: float = 2.6) -> bytes:
    """The spots and redness charts side by side as a PNG (for the PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(width_in, height_in), dpi=150)
    for ax, measure in zip(axes, ("lesions", "redness"), strict=True):
        days, values = series_points(trend, measure)
        band = _band(trend, measure, values, days)
        if band is not None:
            x, lower, upper, typical = band
            ax.fill_between(x, lower, upper, color="#5aa05a", alpha=0.25, label="expected")
            ax.plot(x, typical, ":", color="#3c783c", lw=1)
        ax.plot(days, values, "o-", color="#c0392b", lw=2, ms=4)
        ax.set_title(MEASURES[measure][1], fontsize=9)
        ax.set_xlabel("days since treatment", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
