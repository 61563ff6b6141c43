"""Patient: the daily check-in (a photo and a few questions)."""

import hashlib

import streamlit as st

from app_pages.common import (
    SYMPTOM_QUESTIONS,
    current_user,
    framing,
    get_store,
    plain,
    plain_errors,
    show_image,
    view,
)
from monitor.clinic import check_in_photo

store = get_store()
user = current_user()
st.title("Daily check-in")

if user.patient_id is None:
    st.info("Your account is not linked to a treatment yet. Please ask your dermatologist.")
    st.stop()

with plain_errors():
    patient = store.patient(user, user.patient_id)
today_day = None if patient.treatment_date is None else \
    (store.today() - patient.treatment_date).days
if today_day is not None:
    st.caption(f"Day {today_day} after your {plain(patient.procedure)} on "
               f"{patient.treatment_date:%d %B %Y}.")

with st.expander("How to take today's photo", expanded=True):
    st.markdown("- **Same place, same light** as your first photo (daylight from a window in "
                "front of you is best).\n"
                "- Hold the phone at **arm's length**, at eye level.\n"
                "- **Face the camera**, neutral expression, hair off your face.\n"
                "- **No make-up**, no filters.")

# Always one element here, filled once there is a first photo: the uploader below keeps its
# place in the page when the first photo arrives, so a file being uploaded is not lost.
first_photo_slot = st.container()
with plain_errors():
    first = view(store, user, user.patient_id).reference_photo
if first is not None and first.result is not None:
    with first_photo_slot.expander("Your first photo: frame today's the same way", expanded=True):
        show_image(framing(store, user, first.id, first.sha256, first.result),
                   caption="Your first photo, your face in the yellow box. Same distance, "
                           "same angle, same light.", width=320)

upload_tab, camera_tab = st.tabs(["Upload a photo", "Use the camera"])
with upload_tab:
    uploaded = st.file_uploader("Today's photo", key="photo_upload",
                                type=["jpg", "jpeg", "png", "webp", "heic", "heif"])
with camera_tab:
    snapped = st.camera_input("Take today's photo", key="photo_camera")

photo = uploaded or snapped
if photo is not None:
    data = photo.getvalue()
    key = hashlib.sha256(data).hexdigest()
    done = st.session_state.setdefault("checked_photos", {})
    if key not in done:
        bar = st.progress(0.0, text="Checking your photo...")

        def progress(i: int, total: int, name: str) -> None:
            bar.progress(i / max(total, 1), text=f"Updating your course: photo {i} of {total}")

        with plain_errors():
            outcome = check_in_photo(store, user, user.patient_id, data,
                                     file_name=photo.name or "camera.jpg", progress=progress)
        bar.empty()
        done[key] = outcome
    outcome = done[key]
    result = outcome.result
    if not outcome.accepted:
        st.error("**We could not use this photo.** " + (result.get("reason") or ""), icon="📷")
        st.write("Please take it again following the tips above.")
    else:
        where = f" (day {result['day']})" if result.get("day") is not None else ""
        if outcome.duplicate:
            st.info(f"You already sent this photo{where}; it is kept once.")
        else:
            st.success(f"Thank you, your photo{where} is saved and measured.", icon="✅")
        if outcome.advice:
            st.info(outcome.advice, icon="📐")
        for warning in result.get("warnings") or []:
            st.caption(f"Tip for next time: {warning}")
        if outcome.reanalysed:
            st.caption("This photo is earlier than your first one, so your course was "
                       "measured again from it.")
        st.page_link("app_pages/my_course.py", label="See my course", icon="📈")

st.subheader("How do you feel today?")
with st.form("symptoms"):
    answers = {name: st.checkbox(question, key=f"symptom_{name}")
               for name, question in SYMPTOM_QUESTIONS.items()}
    sent = st.form_submit_button("Send my answers")
if sent:
    day = today_day
    if photo is not None and st.session_state.get("checked_photos"):
        last = list(st.session_state["checked_photos"].values())[-1]
        day = last.result.get("day", day) if last.accepted else day
    with plain_errors():
        store.add_checkin(user, user.patient_id, day=day, **answers)
    if any(answers.values()):
        st.warning("Thank you. You reported a symptom: please contact your dermatologist "
                   "today. If you feel very unwell, call your doctor or emergency services.")
    else:
        st.success("Thank you, your answers are saved.")
