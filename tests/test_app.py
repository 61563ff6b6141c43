"""Page logic of the Streamlit app with AppTest, on a demo clinic built once per session."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from monitor.store import Store
from monitor.testing import build_demo
from tests.conftest import postgres_database
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def demo_template(request, tmp_path_factory):
    """The demo clinic built once per backend: its data folder and database URL (None for
    the SQLite file inside the folder)."""
    folder = tmp_path_factory.mktemp("demo_template") / "data"
    if request.param == "sqlite":
        build_demo(folder).close()
        yield folder, None
        return
    with postgres_database() as url:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MONITOR_DATABASE_URL", url)
            build_demo(folder).close()
        yield folder, url


@pytest.fixture()
def demo(demo_template, tmp_path, monkeypatch):
    """A fresh copy of the demo clinic, and the app pointed at it."""
    template, template_url = demo_template
    folder = tmp_path / "data"
    shutil.copytree(template, folder)
    monkeypatch.setenv("MONITOR_DATA", str(folder))
    monkeypatch.chdir(ROOT)
    with contextlib.ExitStack() as stack:
        url = None
        if template_url is not None:
            url = stack.enter_context(postgres_database(template=template_url))
            monkeypatch.setenv("MONITOR_DATABASE_URL", url)
        store = Store(folder, url=url)
        yield store
        store.close()


def _app(store: Store | None = None, username: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=120)
    if username is not None:
        at.session_state["session_id"], _ = store.start_session(store.user(username))
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "error", "success", "info", "warning", "caption",
                                  "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _photos(at: AppTest) -> list[str]:
    """The embedded photos of the page (data: URIs; nothing goes through /media/)."""
    return [h.proto.body for h in at.get("html") if 'class="monitor-photo"' in h.proto.body
            and 'src="data:image/jpeg;base64,' in h.proto.body]


def _click(at: AppTest, label: str) -> AppTest:
    button = next(b for b in at.button if b.label == label)
    return button.click().run()


def test_sign_in_checks_the_password_and_shows_the_demo_notice(demo):
    at = _app()
    assert "demo clinic" in _texts(at).lower()
    at.text_input(key="login_username").input("alex")
    at.text_input(key="login_password").input("wrong")
    at = _click(at, "Sign in")
    assert "do not match" in at.error[0].value
    at.text_input(key="login_password").input("demo-alex")
    at = _click(at, "Sign in")
    assert at.title[0].value == "Daily check-in" and not at.exception


def test_patient_checks_in_a_good_then_a_bad_photo(demo):
    at = _app(demo, "robin")
    assert "arm's length" in _texts(at)
    at.file_uploader(key="photo_upload").set_value(
        ("day0.jpg", (SAMPLES / "day0.jpg").read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert "saved and measured" in _texts(at)
    at.file_uploader(key="photo_upload").set_value(("notes.jpg", b"not a photo", "image/jpeg"))
    at.run()
    assert not at.exception
    message = at.error[0].value
    assert "could not use this photo" in message and "Traceback" not in message
    robin = demo.user("robin")
    assert len(demo.photos(robin, robin.patient_id)) == 1


def test_check_in_shows_the_first_photo_and_says_what_differed(demo):
    """Issue #14: once a course has a first photo the check-in page shows how it was framed;
    a photo taken from farther away and in dimmer light is measured, and the patient is told
    in one sentence what differed."""
    import io

    import numpy as np
    from PIL import Image

    from monitor.imaging import linear_to_srgb, srgb_to_linear

    at = _app(demo, "robin")
    at.file_uploader(key="photo_upload").set_value(
        ("day0.jpg", (SAMPLES / "day0.jpg").read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception and "saved and measured" in _texts(at)
    at = _app(demo, "robin")
    assert "Your first photo" in "\n".join(h.proto.body for h in at.get("html"))
    assert len(_photos(at)) == 1
    with Image.open(SAMPLES / "day1.jpg") as image:
        exif = image.getexif()
        pixels = np.asarray(image.convert("RGB"))
    dim = np.round(linear_to_srgb(srgb_to_linear(pixels) * 0.55) * 255).astype(np.uint8)
    pad = pixels.shape[1] // 3
    farther = np.pad(dim, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
    buffer = io.BytesIO()
    Image.fromarray(farther).save(buffer, "JPEG", quality=92, exif=exif)
    at.file_uploader(key="photo_upload").set_value(("day1.jpg", buffer.getvalue(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert "saved and measured" in _texts(at), _texts(at)
    advice = [i.value for i in at.info if "Compared with your first photo" in i.value]
    assert advice and "farther away" in advice[0] and "darker" in advice[0], advice


def test_patient_answers_the_symptom_questions(demo):
    at = _app(demo, "robin")
    at.checkbox(key="symptom_fever").check()
    at = _click(at, "Send my answers")
    assert "contact your dermatologist" in at.warning[0].value
    robin = demo.user("robin")
    assert demo.checkins(robin, robin.patient_id)[-1].fever


def test_my_course_shows_metrics_chart_status_and_before_after(demo):
    at = _app(demo, "alex")
    at.switch_page("app_pages/my_course.py").run()
    assert not at.exception
    assert at.title[0].value == "My course"
    labels = [m.label for m in at.metric]
    assert labels == ["Spots today", "Redness today", "Spots on day 0"]
    assert "Settled" in _texts(at) or "Settling" in _texts(at)
    assert len(at.get("plotly_chart")) == 2
    assert len(_photos(at)) == 3 and at.slider(key="wipe_patient").value == 50
    assert not at.image  # no st.image: its pictures are served from /media/ to anyone


def test_patient_cannot_open_another_course_by_query_parameter(demo):
    sam = demo.user("sam")
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=60)
    at.session_state["session_id"], _ = demo.start_session(demo.user("alex"))
    at.query_params["patient"] = str(sam.patient_id)
    at.switch_page("app_pages/my_course.py").run()
    assert not at.exception
    assert "not yours" in at.error[0].value
    assert not at.metric and not at.get("plotly_chart")


def test_patient_has_no_clinician_pages(demo):
    """A patient who asks for the review (or triage) page gets their own check-in page: the
    clinician pages are not in a patient's navigation at all."""
    sam = next(p for p in demo.patients(demo.user("doctor")) if p.name == "Sam")
    for page in ("app_pages/review.py", "app_pages/triage.py"):
        at = _app(demo, "alex")
        at.query_params["patient"] = str(sam.id)
        at.switch_page(page).run()
        assert not at.exception, at.exception
        assert [t.value for t in at.title] == ["Daily check-in"], page
        assert not re.search(r"\bSam\b", _texts(at))
        assert not at.dataframe


def test_triage_lists_the_flagged_patient_first(demo):
    at = _app(demo, "doctor")
    assert at.title[0].value == "Triage" and not at.exception
    table = at.dataframe[0].value
    assert list(table["Patient"])[0] == "Sam"
    assert "flagged" in _texts(at)
    buttons = [b.label for b in at.button if b.key and b.key.startswith("open_")]
    assert buttons[0].endswith("Sam")


def _review(demo, name: str, *, timeout: float = 120):
    """The demo doctor's review page of the patient called ``name``: (page, doctor, patient)."""
    doctor = demo.user("doctor")
    patient = next(p for p in demo.patients(doctor) if p.name == name)
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=timeout)
    at.session_state["session_id"], _ = demo.start_session(doctor)
    at.query_params["patient"] = str(patient.id)
    at.switch_page("app_pages/review.py").run()
    return at, doctor, patient


def _review_alex_day_2(demo):
    """The review page of the demo's Alex, showing the busiest day (day 2)."""
    at, doctor, alex = _review(demo, "Alex")
    assert not at.exception, at.exception
    assert at.title[0].value == "Review: Alex"
    at.selectbox(key="overlay_photo").select_index(2).run()
    return at, doctor, alex


def test_review_reject_a_lesion_changes_the_count_and_exports(demo):
    at, doctor, alex = _review_alex_day_2(demo)
    before = int(at.metric[0].value)
    assert before > 0
    reject = next(b for b in at.button if b.key and b.key.startswith("reject_"))
    reject.click().run()
    assert not at.exception
    assert int(at.metric[0].value) == before - 1
    corrections = demo.corrections(doctor, alex.id)
    assert [(c.action, c.author) for c in corrections] == [("reject", "Dr Demo (dermatologist)")]
    series = {d["day"]: d["lesion_count"] for d in
              __import__("monitor.clinic", fromlist=["x"]).course_view(
                  demo, doctor, alex.id).trend["series"]}
    assert series[2] == before - 1
    links = "".join(h.proto.body for h in at.get("html"))
    assert f'href="/api/export/{alex.id}/pdf"' in links and "Time-lapse (GIF)" in links
    assert not at.get("download_button")  # their files are served from /media/ to anyone


def test_review_undo_add_a_missed_lesion_and_note(demo):
    at, doctor, alex = _review_alex_day_2(demo)
    before = int(at.metric[0].value)
    next(b for b in at.button if b.key and b.key.startswith("reject_")).click().run()
    assert int(at.metric[0].value) == before - 1
    next(b for b in at.button if b.key and b.key.startswith("undo_")).click().run()
    assert not at.exception, at.exception
    assert int(at.metric[0].value) == before
    assert demo.corrections(doctor, alex.id) == []
    # A missed lesion far from every detected one adds one to the count.
    at.number_input(key="add_x").set_value(5)
    at.number_input(key="add_y").set_value(5)
    at.selectbox(key="add_kind").select("pustule")
    next(b for b in at.button if b.label == "Add a missed lesion").click().run()
    assert not at.exception, at.exception
    assert int(at.metric[0].value) == before + 1
    [added] = demo.corrections(doctor, alex.id)
    assert (added.action, added.kind) == ("add", "pustule")
    at.text_area(key="note_text").input("Review on Friday.")
    next(b for b in at.button if b.label == "Save note").click().run()
    assert not at.exception, at.exception
    assert [n.text for n in demo.notes(doctor, alex.id)] == ["Review on Friday."]
    assert "Review on Friday\\." in _texts(at)  # shown as typed (Markdown escaped)


def test_review_of_another_clinicians_patient_is_refused(demo):
    """A clinician with patients of their own asks for another clinician's patient by id:
    refused in words, and nothing of that patient is shown."""
    other = demo.create_user("doc2", "other password", role="clinician")
    demo.add_patient(other, "Robin", treatment_date=date(2026, 3, 2))
    alex = next(p for p in demo.patients(demo.user("doctor")) if p.name == "Alex")
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=60)
    at.session_state["session_id"], _ = demo.start_session(other)
    at.query_params["patient"] = str(alex.id)
    at.switch_page("app_pages/review.py").run()
    assert not at.exception
    assert "not yours" in at.error[0].value
    assert not re.search(r"\bAlex\b", _texts(at)) and not at.metric


def test_pdf_csv_json_exports(demo):
    from monitor.clinic import course_view
    from monitor.present import course_png, pdf_report, series_csv, series_json

    doctor = demo.user("doctor")
    view = course_view(demo, doctor, 1)
    pdf = pdf_report(view, before=None, after=None, before_label="", after_label="",
                     chart_png=course_png(view.trend), clinician="Dr", generated=demo.today())
    assert pdf.startswith(b"%PDF")
    rows = list(csv.DictReader(io.StringIO(series_csv(view))))
    assert [int(r["day"]) for r in rows] == [d["day"] for d in view.trend["series"]]
    assert [r["lesion_count"] for r in rows] == [
        "" if d["lesion_count"] is None else str(d["lesion_count"]) for d in view.trend["series"]]
    # The JSON export is a monitor.analysis/1 document (it lacked its reference photo).
    from monitor.contract import Analysis

    exported = Analysis.from_json(json.loads(series_json(view)))
    assert exported.reference == view.reference_photo.file_name
    assert exported.to_json()["trend"] == view.trend
    assert exported.to_json()["patient"] == view.patient.name


def test_a_warm_rerun_of_a_30_day_review_recomputes_nothing(demo, monkeypatch):
    """Pages read stored results: once warm, a rerun of a 30-day review costs no analysis.

    (How long the rerun takes is measured by benchmarks/review_rerun.py, not here.)
    """
    from app_pages import common

    doctor = demo.user("doctor")
    alex_id = load_script("benchmarks/review_rerun.py").extend_to_30_days(demo)
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=120)
    at.session_state["session_id"], _ = demo.start_session(doctor)
    at.query_params["patient"] = str(alex_id)
    at.switch_page("app_pages/review.py").run()
    assert not at.exception and len(_photos(at)) >= 30
    calls = []

    def counted(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, call)

    import monitor.present
    from monitor.present import charts, report

    # The page's expensive steps: the course from stored results, each photo's warp, the PDF.
    counted(common, "course_view")
    counted(common, "aligned_photo")
    for module in (monitor.present, report):
        counted(module, "pdf_report")
    for module in (monitor.present, charts):
        counted(module, "course_png")
    at.slider(key="wipe_review").set_value(30).run()
    assert not at.exception
    assert calls == []


def test_an_erased_patients_open_tab_is_signed_out_not_shown_the_next_patient(demo):
    """Issue #16, finding 1: the tab stays open while the patient is erased and replaced."""
    at = _app(demo, "robin")
    assert at.title[0].value == "Daily check-in"
    doctor, robin = demo.user("doctor"), demo.user("robin")
    demo.delete_patient(doctor, robin.patient_id, confirm_name="Robin")
    new = demo.create_user("newcomer", "mossy garden gate", role="patient",
                           display_name="New Comer", clinician="doctor")
    assert (new.id, new.patient_id) != (robin.id, robin.patient_id)
    at.run()  # the old tab's next run, without a reload
    assert not at.exception
    assert at.title[0].value == "Breakout Monitor"  # the sign-in page
    assert "signed out" in _texts(at)
    assert "New Comer" not in _texts(at) and "Signed in as" not in _texts(at)


def test_a_user_put_in_the_tab_state_is_not_signed_in(demo):
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=60)
    at.session_state["user"] = demo.user("doctor")  # only a session of the store counts
    at.run()
    assert at.title[0].value == "Breakout Monitor"


def test_a_patient_with_no_usable_photo_can_be_erased(demo):
    """Finding 5: the review page stopped before the erasure for such a patient."""
    at, doctor, _ = _review(demo, "Robin", timeout=60)
    assert "No usable photo yet" in _texts(at)
    at.text_input(key="erase_name").input("Robin")
    next(b for b in at.button if b.key == "erase").click().run()
    assert not at.exception, at.exception
    assert [p.name for p in demo.patients(doctor)] == ["Alex", "Sam"]
    assert demo.user("robin") is None


def test_a_photo_stranded_without_its_analysis_is_analysed_again(demo):
    """Finding 6: a crash between storing a photo and its analysis hid it for good."""
    from monitor.clinic import analyse_missing, check_in_photo

    robin = demo.user("robin")
    day0, day1 = ((SAMPLES / f"day{d}.jpg").read_bytes() for d in (0, 1))
    demo.add_photo(robin, robin.patient_id, day0, file_name="day0.jpg")  # then the crash
    assert [p.result for p in demo.photos(robin, robin.patient_id)] == [None]
    outcome = check_in_photo(demo, robin, robin.patient_id, day0, file_name="day0.jpg")
    assert outcome.accepted, outcome.result
    demo.add_photo(robin, robin.patient_id, day1, file_name="day1.jpg")  # crash again
    assert len(demo.photos_without_analysis()) == 1
    assert analyse_missing(demo) == 2  # the course, read against its reference again
    photos = demo.photos(robin, robin.patient_id)
    assert [p.status for p in photos] == ["ok", "ok"]
    assert {p.reference_photo_id for p in photos} == {photos[0].id}
    assert demo.photos_without_analysis() == []


def test_a_washed_out_first_photo_is_not_kept_as_the_reference(demo):
    """A photo too washed out for its redness cannot start a course: turned away with a plain
    reason and not stored; a good photo then starts the course, and the washed-out one taken
    later is kept for its spots without its redness."""
    import io

    import numpy as np
    from PIL import Image

    from monitor.clinic import check_in_photo
    from monitor.imaging import WASHED_OUT_REFERENCE

    robin = demo.user("robin")
    day0, day1 = ((SAMPLES / f"day{d}.jpg").read_bytes() for d in (0, 1))
    with Image.open(io.BytesIO(day1)) as image:
        exif = image.getexif()
        bright = np.clip(np.asarray(image.convert("RGB")) * 1.25, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(bright).save(buffer, "JPEG", quality=92, exif=exif)
    washed = buffer.getvalue()
    first = check_in_photo(demo, robin, robin.patient_id, washed, file_name="bright.jpg")
    assert not first.stored and first.result["reason"] == WASHED_OUT_REFERENCE
    assert demo.photos(robin, robin.patient_id) == []
    assert check_in_photo(demo, robin, robin.patient_id, day0, file_name="day0.jpg").accepted
    later = check_in_photo(demo, robin, robin.patient_id, washed, file_name="bright.jpg")
    assert later.accepted, later.result
    assert later.result["redness"] is None and later.result["lesion_count"] is not None
    assert later.result["quality"]["redness_measurable"] is False


def test_another_persons_photo_is_refused_and_the_clinician_sees_it(demo):
    """Issue #14: a photo of someone else checked into Robin's course is not stored, Robin is
    told why, the audit log keeps the refusal, and the review page warns the clinician."""
    from monitor.clinic import check_in_photo
    from monitor.store import REFUSED_OTHER_FACE
    from monitor.testing import encode_jpeg, make_course

    robin = demo.user("robin")
    day0 = (SAMPLES / "day0.jpg").read_bytes()
    assert check_in_photo(demo, robin, robin.patient_id, day0, file_name="day0.jpg").accepted
    hopper = encode_jpeg(make_course(5, days=(0,), face="hopper").photos[0])
    outcome = check_in_photo(demo, robin, robin.patient_id, hopper, file_name="partner.jpg")
    assert not outcome.stored and not outcome.accepted
    assert "does not seem to show the same face" in outcome.result["reason"]
    assert outcome.result["face_match"] < 0.5
    assert [p.file_name for p in demo.photos(robin, robin.patient_id)] == ["day0.jpg"]
    doctor = demo.user("doctor")
    refused = [e for e in demo.audit_log(doctor, robin.patient_id)
               if e.action == REFUSED_OTHER_FACE]
    assert len(refused) == 1 and refused[0].detail.startswith("partner.jpg")
    at, _, _ = _review(demo, "Robin")
    assert not at.exception, at.exception
    assert any("did not seem to show this patient's face" in w.value for w in at.warning)


def test_check_ins_of_one_patient_run_one_at_a_time(demo, monkeypatch):
    """Finding 9: two uploads at once were analysed against different reference photos."""
    import threading
    import time

    import monitor.clinic.service as clinic

    robin = demo.user("robin")
    running, most = [0], [0]
    real = clinic.analyse_photo

    def watched(*args, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            time.sleep(0.3)
            return real(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(clinic, "analyse_photo", watched)
    errors = []

    def check_in(day):
        try:
            clinic.check_in_photo(demo, robin, robin.patient_id,
                                  (SAMPLES / f"day{day}.jpg").read_bytes(),
                                  file_name=f"day{day}.jpg")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=check_in, args=(d,)) for d in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and most[0] == 1
    photos = demo.photos(robin, robin.patient_id)
    assert [p.status for p in photos] == ["ok", "ok"]
    assert {p.reference_photo_id for p in photos} == {photos[0].id}  # day 0 for both


_MARKDOWN_ATTACKS = ["![x](http://198.51.100.7/x.png)", "<img src=http://198.51.100.7/y>",
                     ":red[big] :material/home: **bold** [link](http://198.51.100.7/)",
                     "# heading\n\n- list `code` $x^2$ ~~gone~~ a_b_c \\ end"]


@pytest.mark.parametrize("text", _MARKDOWN_ATTACKS)
def test_plain_escapes_every_markdown_mark(text):
    """Finding 7 (the browser test in tests/e2e renders these and watches the network)."""
    from app_pages.common import plain

    out = plain(text).replace("\u200b", "")
    shown, marks, i = [], [], 0
    while i < len(out):
        if out[i] == "\\":
            shown.append(out[i + 1])
            i += 2
            continue
        if out[i] in "![]()<>*_`#-:$~":
            marks.append(out[i])
        shown.append(out[i])
        i += 1
    assert marks == []  # every mark is escaped...
    assert "".join(shown) == " ".join(text.split())  # ...and the text reads as typed


def test_names_and_notes_with_markdown_are_shown_as_text_in_the_review(demo):
    doctor = demo.user("doctor")
    pid = demo.add_patient(doctor, "Eve ![x](http://198.51.100.7/x.png)",
                           treatment_date=demo.today())
    demo.add_note(doctor, pid, "see ![y](http://198.51.100.7/y.png) **now**")
    at = AppTest.from_file(str(ROOT / "clinic_app.py"), default_timeout=60)
    at.session_state["session_id"], _ = demo.start_session(doctor)
    at.query_params["patient"] = str(pid)
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    sources = [str(e.value) for kind in ("markdown", "title", "caption") for e in
               getattr(at, kind)]
    sources += [b.label for b in at.button] + [t.label for t in at.text_input]
    assert any("198" in s for s in sources)
    for source in sources:
        assert "![" not in source and "](" not in source and "**now" not in source, source


def test_the_pdf_draws_names_in_any_script(demo):
    """Finding 9: the PDF's Latin-1 core fonts turned non-Latin names into '????'."""
    import re
    import zlib

    from monitor.clinic import course_view
    from monitor.present import pdf_report

    doctor = demo.user("doctor")
    pid = demo.add_patient(doctor, "Ёлена Παπαδοπούλου Łódź", treatment_date=demo.today())
    view = course_view(demo, doctor, pid)
    pdf = pdf_report(view, before=None, after=None, before_label="", after_label="",
                     chart_png=None, clinician="Dr Ünal", generated=demo.today())
    streams = [zlib.decompress(m) if m[:1] == b"x" else m
               for m in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)]
    unicode_maps = b"".join(s for s in streams if b"beginbfchar" in s or b"beginbfrange" in s)
    for char in "ЁлΠαπούŁóźÜ":
        assert f"{ord(char):04X}".encode() in unicode_maps.upper(), char
    assert b"DejaVu" in pdf


def test_sign_in_page_pauses_a_password_guesser_in_plain_words(demo):
    """Finding 3: 30 wrong passwords in a row met no delay and no lockout."""
    from datetime import datetime

    from monitor.web import open_store

    open_store(str(demo.data_dir)).now = lambda: datetime(2026, 3, 9, 12, 0, 0)  # time stands
    at = _app()
    at.text_input(key="login_username").input("alex")
    messages = []
    for _ in range(5):
        at.text_input(key="login_password").input("a wrong guess")
        at = _click(at, "Sign in")
        messages.append(at.error[0].value)
    assert messages[:3] == ["That user name and password do not match. Please try again."] * 3
    assert all("Too many sign-in attempts. Please wait" in m for m in messages[3:])
    at.text_input(key="login_password").input("demo-alex")  # even the right one waits
    at = _click(at, "Sign in")
    assert "Too many" in at.error[0].value and "Traceback" not in _texts(at)
    assert at.title[0].value == "Breakout Monitor"


def test_reanalyse_outdated_runs_the_engine_again_only_where_another_engine_wrote(demo):
    from monitor.clinic import ENGINE_VERSION, reanalyse_all

    doctor = demo.user("doctor")
    patients = demo.patients(doctor)
    assert all(p.engine_version == ENGINE_VERSION
               for patient in patients for p in demo.photos(doctor, patient.id))
    assert reanalyse_all(demo, only_outdated=True).photos_analysed == 0
    stale = next(p for p in patients if len(demo.photos(doctor, p.id)) >= 2)
    photo = demo.photos(doctor, stale.id)[1]
    demo.save_analysis(doctor, photo.id, photo.result, engine_version="monitor.analysis/1+0.0.9",
                       reference_photo_id=photo.reference_photo_id)
    seen = []
    run = reanalyse_all(demo, only_outdated=True,
                        on_patient=lambda outcome, i, n: seen.append((outcome.patient_id, i, n)))
    photos = demo.photos(doctor, stale.id)
    assert run.photos_analysed == 1 and seen == [(stale.id, 1, 1)] and not run.failed
    assert all(p.engine_version == ENGINE_VERSION and p.status == "ok" for p in photos)
    assert reanalyse_all(demo, only_outdated=True).photos_analysed == 0
