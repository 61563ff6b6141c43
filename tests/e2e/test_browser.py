"""A patient and a dermatologist use the app in a real browser."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"
TIMEOUT = 60_000
# Every expectation waits as long: a loaded 2-core CI machine reruns pages slowly.
expect.set_options(timeout=TIMEOUT)


def sign_in(page: Page, base_url: str, username: str, password: str, path: str = "") -> None:
    page.goto(f"{base_url}/{path}")
    page.keyboard.press("Escape")  # a "page not found" notice for a signed-out deep link
    page.get_by_label("User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(re.compile("Signed in as"))).to_be_visible(timeout=TIMEOUT)


def _decodes(image, seconds: float = TIMEOUT / 1000) -> bool:
    """Whether an <img> finishes loading with real pixels; the page may re-render meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if image.evaluate("img => img.complete && img.naturalWidth > 0", timeout=2000):
                return True
        except PlaywrightError:
            pass  # the element was replaced by a rerun; look again
        time.sleep(0.25)
    return False


def run_finished(page: Page) -> None:
    """Wait until the page's script run is over, so what is clicked next is what it drew.

    (Streamlit's own browser tests wait on the same attribute.)
    """
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")


def upload(page: Page, path: Path | dict) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(path)


def test_patient_uploads_a_course_and_sees_chart_and_status(page: Page, base_url: str):
    sign_in(page, base_url, "robin", "demo-robin")
    expect(page.get_by_text("arm's length")).to_be_visible()
    for day in range(4):
        upload(page, SAMPLES / f"day{day}.jpg")
        expect(page.get_by_text(f"(day {day}) is saved and measured")).to_be_visible(
            timeout=TIMEOUT)
    page.get_by_role("link", name="My course").first.click()
    expect(page.get_by_role("heading", name="My course")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(re.compile("Settling as expected|Settled|Slower than expected|"
                                       "Getting worse|Not enough photos"))).to_be_visible()
    expect(page.get_by_text("Spots today")).to_be_visible()


def test_a_bad_file_gets_a_plain_message(page: Page, base_url: str):
    sign_in(page, base_url, "robin", "demo-robin")
    upload(page, {"name": "selfie.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"})
    expect(page.get_by_text("We could not use this photo")).to_be_visible(timeout=TIMEOUT)
    assert "Traceback" not in page.content()


def test_clinician_triages_reviews_corrects_and_exports(page: Page, base_url: str):
    sign_in(page, base_url, "doctor", "demo-doctor")
    expect(page.get_by_role("heading", name="Triage")).to_be_visible()
    open_buttons = page.locator('[class*="st-key-open_"] button')
    expect(open_buttons.first).to_contain_text("Sam", timeout=TIMEOUT)
    open_buttons.first.click()
    expect(page.get_by_role("heading", name="Review: Sam")).to_be_visible(timeout=TIMEOUT)
    # The aligned photos really arrive in the browser (not just <img> tags).
    photo = page.locator('[data-testid="stImage"] img').first
    expect(photo).to_be_visible(timeout=TIMEOUT)
    assert _decodes(photo), "the aligned photo did not arrive in the browser"
    metric = page.locator('[data-testid="stMetricValue"]').first
    expect(metric).to_be_visible(timeout=TIMEOUT)
    before = int(metric.inner_text())
    assert before > 0
    page.locator('[class*="st-key-reject_"] button').first.click()
    expect(metric).to_have_text(str(before - 1), timeout=TIMEOUT)
    run_finished(page)  # the download buttons of the corrected course
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("button", name="PDF for the record").click()
    path = download.value.path()
    assert Path(path).read_bytes()[:4] == b"%PDF"
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("button", name="Time-lapse (GIF)").click()
    assert Path(download.value.path()).read_bytes()[:4] == b"GIF8"


def test_patient_cannot_open_another_course(page: Page, base_url: str):
    # Through the URL: deep links to another patient's course or a clinician's page reveal
    # nothing (a browser reload starts signed out; signed-in query parameters are refused by
    # the store, see tests/test_app.py).
    for path in ("my_course?patient=2", "review?patient=2"):
        page.goto(f"{base_url}/{path}")
        expect(page.get_by_role("heading", name="Breakout Monitor")).to_be_visible(
            timeout=TIMEOUT)
        page.keyboard.press("Escape")  # the "page not found" notice
        expect(page.get_by_text("Review: Sam")).to_have_count(0)
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(0)
    # Through the UI: a patient has no clinician pages, and sees only their own course.
    sign_in(page, base_url, "alex", "demo-alex")
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).to_contain_text("My course")
    expect(nav).not_to_contain_text("Triage")
    expect(nav).not_to_contain_text("review")
    nav.get_by_text("My course").click()
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Review: Sam")).to_have_count(0)


@pytest.fixture(scope="session")
def second_clinic(demo_data):
    """A second clinician (not the demo doctor) with a patient whose name and note carry
    Markdown, and a patient account of theirs."""
    from datetime import date

    from monitor.store import Store

    store = Store(demo_data)
    doc = store.create_user("mdoc", "second clinic doctor", role="clinician",
                            display_name="Dr ![d](http://198.51.100.7/d.png)")
    pat = store.create_user("mpat", "second clinic patient", role="patient",
                            display_name="Eve ![x](http://198.51.100.7/x.png)",
                            clinician="mdoc", treatment_date=date(2026, 3, 2))
    store.add_note(doc, pat.patient_id, "see ![y](http://198.51.100.7/y.png) **now**")
    store.close()
    return pat.patient_id


def test_markdown_in_names_and_notes_is_shown_as_text_and_fetches_nothing(
        page: Page, base_url: str, second_clinic):
    """Issue #16, finding 7: an image in a name or note made the browser call out."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, base_url, "mdoc", "second clinic doctor")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Patient review").click()
    expect(page.get_by_role("heading", name=re.compile("Review: Eve"))).to_be_visible()
    expect(page.get_by_text("see ![y](http://198.51.100.7/y.png) **now**")).to_be_visible()
    expect(page.get_by_text("Dr ![d](http://198.51.100.7/d.png)").first).to_be_visible()
    run_finished(page)
    assert page.locator("img[src*='198.51.100.7']").count() == 0
    assert [u for u in requested if "198.51.100.7" in u] == []
