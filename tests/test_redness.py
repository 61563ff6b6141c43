"""Colour normalisation and redness against painted ground truth and changes of light."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from monitor.colour import ColourCorrection, linear_to_srgb, srgb_to_linear
from monitor.evaluation import course_accuracy
from monitor.pipeline import analyse_photo, analyse_series, make_reference
from monitor.synthetic import PoseRange, make_course

#: Stated tolerance: a global change of white balance (±12 %) and exposure (±15 %) moves the
#: redness index by at most this many CIELAB a* units (a just-noticeable difference is ~1).
LIGHT_TOLERANCE_A_STAR = 0.6

STILL = PoseRange(roll_deg=0, scale=0, shift_frac=0, perspective=0, expression_iod=0,
                  white_balance=0, exposure=0, noise_sigma=1.0)


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _relight(image: np.ndarray, white_balance: float, exposure: float) -> np.ndarray:
    linear = srgb_to_linear(image) * np.array([1 + white_balance, 1, 1 - white_balance],
                                              np.float32) * (1 + exposure)
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def still_course():
    """The same face and pose on three days: no erythema, some, more; no lesions."""
    return make_course(61, days=(0, 1, 2), pose=STILL, n_lesions=0, erythema=(0.0, 0.25, 0.5))


@pytest.fixture(scope="module")
def reference(still_course):
    photo = still_course.photos[0]
    return make_reference(analyse_photo(_jpeg(photo.image), name="day0.jpg", strict=True))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(white_balance=st.floats(-0.12, 0.12), exposure=st.floats(-0.15, 0.15),
       day=st.sampled_from([0, 2]))
def test_light_changes_barely_move_the_index(still_course, reference, white_balance,
                                             exposure, day):
    photo = still_course.photos[day]
    plain = analyse_photo(_jpeg(photo.image), name="plain.jpg", reference=reference,
                          strict=True)
    relit = analyse_photo(_jpeg(_relight(photo.image, white_balance, exposure)),
                          name="relit.jpg", reference=reference, strict=True)
    a = plain.measurement.redness.index
    b = relit.measurement.redness.index
    assert abs(a - b) <= LIGHT_TOLERANCE_A_STAR, (white_balance, exposure, a, b)
    assert relit.measurement.colour.reference == "surroundings"


def test_a_real_change_of_the_skin_still_shows(still_course, reference):
    indices = []
    for photo in still_course.photos:
        result = analyse_photo(_jpeg(_relight(photo.image, 0.1, -0.1)), name="x.jpg",
                               reference=reference, strict=True)
        indices.append(result.measurement.redness.index)
    assert abs(indices[0]) < LIGHT_TOLERANCE_A_STAR
    assert indices[1] > indices[0] + 1.0
    assert indices[2] > indices[1] + 1.0
    regions = result.measurement.redness.by_region
    assert set(regions) == {"forehead", "left_cheek", "right_cheek", "nose", "chin"}
    assert all(r["index"] is not None and r["index"] > 1.0 for r in regions.values())


def test_naive_a_star_would_track_the_lamp(still_course, reference):
    """Why we normalise: without it, the same skin reads differently under another lamp."""
    from monitor.colour import IDENTITY
    from monitor.redness import measure_redness

    photo = still_course.photos[0]
    crop = analyse_photo(_jpeg(_relight(photo.image, 0.12, 0.0)), name="warm.jpg",
                         strict=True).crop
    naive = measure_redness(IDENTITY.apply(crop.pixels), crop.face.skin_mask(),
                            crop.face.region_masks(), baseline=reference.baseline)
    assert abs(naive.index) > 3 * LIGHT_TOLERANCE_A_STAR


@pytest.mark.parametrize("seed", (71, 72, 73, 74))
def test_redness_index_follows_painted_erythema(seed, tmp_path):
    erythema = (0.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
    course = make_course(seed, erythema=erythema)
    from monitor.synthetic import write_course

    write_course(course, tmp_path)
    analysis = analyse_series([tmp_path], treatment_date=course.treatment_date, strict=True)
    figures = course_accuracy(course, analysis)
    assert figures["accepted"] == 8
    assert figures["redness_spearman"] >= 0.95, figures
    for entry in analysis["photos"]:
        assert entry["redness"]["units"].startswith("CIELAB a*")
        assert entry["colour"]["reference"] in {"surroundings", "eyes", "none"}


@given(gains=st.tuples(*[st.floats(0.5, 2.0)] * 3), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_colour_correction_tables_equal_the_formulas(gains, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    correction = ColourCorrection(gains, "surroundings", 1000)
    linear = srgb_to_linear(rgb) * np.asarray(gains, np.float32)
    np.testing.assert_array_equal(correction.apply(rgb), linear)
    expected = np.round(linear_to_srgb(linear) * 255).astype(np.uint8)
    np.testing.assert_array_equal(correction.apply_srgb8(rgb), expected)
