"""Course charts: the measured points are the trend's, and the expected window is drawn on the
scale the course itself was judged on (its baseline and peak), so the chart and the status
never disagree about where "back to normal" is."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from monitor.course import assess_course
from monitor.present import course_figure, course_png, series_points
from tests.course_series import build_course


@pytest.fixture(scope="module")
def trend():
    # Two photos before treatment: the course's baseline is their median, not their minimum.
    photos, _ = build_course(3, shape="clear", days=(-2, -1, *range(0, 10)), chronic=4)
    return assess_course(photos).to_json()


def _recovered_scale(trend, measure):
    """Baseline and peak of a measure from the series alone: each day's value and its level
    relative to the peak above baseline, ``level = (value - baseline) / (peak - baseline)``."""
    key = {"lesions": ("lesion_count", "lesion_level"),
           "redness": ("redness_index", "redness_level")}[measure]
    pairs = [(d[key[0]], d[key[1]]) for d in trend["series"]
             if d[key[0]] is not None and d[key[1]] is not None]
    values, levels = np.array(pairs, float).T
    slope, base = np.polyfit(levels, values, 1)
    return base, base + slope


def test_the_points_are_the_trends_own(trend):
    days, values = series_points(trend, "lesions")
    expected = [(d["day"], d["lesion_count"]) for d in trend["series"]
                if d["lesion_count"] is not None]
    assert list(zip(days, values, strict=True)) == expected
    region_days, region_values = series_points(trend, "lesions", region="chin")
    assert region_days and all(v <= max(values) for v in region_values)


@pytest.mark.parametrize("measure", ["lesions", "redness"])
def test_the_window_is_drawn_on_the_courses_own_scale(trend, measure):
    base, peak = _recovered_scale(trend, measure)
    scale = trend["scales"][measure]
    assert scale["baseline"] == pytest.approx(base, abs=0.01)
    assert scale["peak"] == pytest.approx(peak, abs=0.01)
    figure = course_figure(trend, measure)
    upper, lower, typical = (np.asarray(figure.data[k].y, float) for k in range(3))
    band = trend["expected_course"]["band"][measure]
    for drawn, relative in ((upper, "upper"), (lower, "lower"), (typical, "typical")):
        assert (drawn - base) / (peak - base) == pytest.approx(np.asarray(band[relative]),
                                                               abs=1e-3)
    if measure == "lesions":
        # The lowest photo before treatment is below the median the course took as baseline:
        # a window drawn from it (as charts did) would sit lower than the status's.
        before = [d["lesion_count"] for d in trend["series"] if d["day"] < 0]
        assert min(before) < scale["baseline"]


def test_a_trend_without_scales_still_draws(trend):
    old = {key: value for key, value in trend.items() if key != "scales"}
    figure = course_figure(old, "lesions")
    days, values = series_points(old, "lesions")
    typical = np.asarray(figure.data[2].y, float)
    assert typical.max() == pytest.approx(max(values), rel=0.05)
    assert figure.data[-1].name == "Spots"


def test_the_pdf_chart_is_a_picture_of_both_measures(trend):
    picture = Image.open(io.BytesIO(course_png(trend)))
    assert picture.format == "PNG"
    width, height = picture.size
    assert width > 2 * height  # two charts side by side
