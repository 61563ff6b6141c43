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


def test_patient_uploads_a_course_and_sees_chart_and_status(page: Page, base_url: str,
                                                             demo_data):
    sign_in(page, base_url, "robin", "demo-robin")
    expect(page.get_by_text("arm's length")).to_be_visible()
    for day in range(4):
        upload(page, SAMPLES / f"day{day}.jpg")
        expect(page.get_by_text(f"(day {day}) is saved and measured")).to_be_visible(
            timeout=TIMEOUT)
    page.get_by_role("link", name="My course").first.click()
    expect(page.get_by_role("heading", name="My course")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=TIMEOUT)
    # The status the course has, in the words the patient reads: not any status.
    from monitor.clinic import course_view
    from monitor.present import STATUS_WORDS
    from monitor.store import Store

    store = Store(demo_data)
    robin = store.user("robin")
    status = course_view(store, robin, robin.patient_id).trend["status"]
    store.close()
    others = [words for key, words in STATUS_WORDS.items() if key != status]
    expect(page.get_by_text(STATUS_WORDS[status]).first).to_be_visible()
    for words in others:
        expect(page.get_by_text(words)).to_have_count(0)
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
    photo = page.locator("figure.monitor-photo img").first
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
        page.get_by_role("link", name="PDF for the record").click()
    path = download.value.path()
    assert Path(path).read_bytes()[:4] == b"%PDF"
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("link", name="Time-lapse (GIF)").click()
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


def _fetch(url: str, cookie: str | None = None) -> tuple[int, bytes, dict]:
    """GET ``url`` outside the browser (no cookie unless given): status, body, headers."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Cookie": f"monitor_session={cookie}"}
                                     if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _session_cookie(page: Page) -> dict:
    """The session cookie, once the browser has fetched it (just after signing in)."""
    deadline = time.monotonic() + TIMEOUT / 1000
    while time.monotonic() < deadline:
        found = [c for c in page.context.cookies() if c["name"] == "monitor_session"]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("the browser got no session cookie")


def test_a_reload_keeps_the_patient_signed_in_until_they_sign_out(page: Page, base_url: str):
    """Issue #16, finding 4: every reload asked for the password again."""
    sign_in(page, base_url, "alex", "demo-alex")
    expect(page.get_by_role("heading", name="Daily check-in")).to_be_visible()
    cookie = _session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("monitor_session") < 0  # not for scripts
    page.reload()
    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect(page.get_by_role("heading", name="Daily check-in")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    status, _, _ = _fetch(f"{base_url}/api/export/1/json", cookie["value"])
    assert status == 401  # the old cookie is worth nothing once signed out


def test_nothing_the_review_page_loads_can_be_fetched_by_someone_else(
        page: Page, base_url: str, browser):
    """Finding 2: photos and exports were served from /media/ to anyone with the URL."""
    alex = browser.new_context().new_page()  # another patient, signed in elsewhere
    sign_in(alex, base_url, "alex", "demo-alex")
    alex_cookie = _session_cookie(alex)["value"]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, base_url, "doctor", "demo-doctor")
    page.locator('[class*="st-key-open_"] button').first.click()
    expect(page.get_by_role("heading", name="Review: Sam")).to_be_visible()
    expect(page.locator("figure.monitor-photo img").first).to_be_visible()
    run_finished(page)
    sources = page.eval_on_selector_all("img", "els => els.map(e => e.src)")
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert sources and all(src.startswith("data:") for src in sources
                           if "/api/session" not in src)
    exports = [u for u in links if "/api/export/" in u]
    assert len(exports) == 4
    # The doctor's own browser gets them (the check is not just refusing everything).
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("link", name="Series (JSON)").click()
    assert b'"patient": "Sam"' in Path(download.value.path()).read_bytes()
    urls = {u.split("#")[0] for u in requested + exports if u.startswith(base_url)}
    assert not [u for u in urls if u[len(base_url):].startswith("/media/")]
    public = ("/static/", "/_stcore/", "/favicon")
    shells = {base_url, f"{base_url}/", f"{base_url}/review", f"{base_url}/triage"}
    for url in sorted(urls):
        path = url[len(base_url):].split("?")[0]
        for who, cookie in (("signed out", None), ("another patient", alex_cookie)):
            status, body, _ = _fetch(url, cookie)
            if url.split("?")[0] in shells or path.startswith(public):
                # the app's code, the same for everyone: nothing of the patient in it
                assert not re.search(rb"Sam \(demo\)|Review: Sam|\"patient\": \"Sam", body), url
            else:
                assert status in (401, 403, 404, 410), (who, url, status)
    for url in (f"{base_url}/media/abc.jpg", f"{base_url}/media/"):
        assert _fetch(url, alex_cookie)[0] == 404


def test_the_app_answers_with_security_headers_and_breaks_no_policy(page: Page,
                                                                     base_url: str):
    """Finding 9: no X-Frame-Options, no Content-Security-Policy."""
    for path in ("/", "/static/", "/api/export/1/pdf"):
        _, _, headers = _fetch(base_url + path)
        headers = {k.lower(): v for k, v in headers.items()}
        assert headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), path
        assert headers.get("x-content-type-options") == "nosniff", path
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    sign_in(page, base_url, "doctor", "demo-doctor")
    page.locator('[class*="st-key-open_"] button').first.click()
    expect(page.locator("figure.monitor-photo img").first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
    run_finished(page)
    assert violations == []
