"""Clinician: one patient's review, corrections, notes, export and erasure."""


import streamlit as st

from app_pages import common
from app_pages.common import (
    aligned_of,
    current_user,
    day_label,
    get_store,
    plain,
    plain_errors,
    reference,
    show_image,
    status_box,
    view,
)
from monitor.errors import MonitorError
from monitor.imaging import REGIONS
from monitor.present import (
    course_figure,
    draw_lesions,
    frame_to_photo,
    lesions_in_frame,
    redness_overlay,
    wipe,
)
from monitor.store import REFUSED_OTHER_FACE

store = get_store()
user = current_user()

patients = store.patients(user)
if not patients:
    st.info("You have no patients yet.")
    st.stop()
wanted = st.query_params.get("patient") or st.session_state.get("review_patient")
ids = [p.id for p in patients]
try:
    patient_id = int(wanted) if wanted is not None else ids[0]
except ValueError:
    patient_id = -1
if patient_id not in ids:
    with plain_errors():
        store.patient(user, patient_id)  # says plainly that this patient is not theirs
names = {f"{p.name} (#{p.id})": p.id for p in patients}
choice = names[st.selectbox("Patient", list(names), index=ids.index(patient_id),
                            key="review_select")]
if choice != patient_id:
    st.query_params["patient"] = str(choice)
    st.session_state["review_patient"] = choice
    st.rerun()

with plain_errors():
    v = view(store, user, patient_id)
seen = st.session_state.setdefault("audited_views", set())
if patient_id not in seen:
    store.record_view(user, patient_id, "review")
    seen.add(patient_id)

p = v.patient
st.title(f"Review: {plain(p.name)}")
st.caption(f"{plain(p.procedure)} on {p.treatment_date:%d %B %Y}; today is day {v.today_day}. "
           f"{len(v.accepted)} usable photos.")
status_box(v.trend)

refused = [e for e in store.audit_log(user, patient_id) if e.action == REFUSED_OTHER_FACE]
if refused:
    st.warning(f"{len(refused)} uploaded photo{'s' if len(refused) > 1 else ''} did not seem "
               "to show this patient's face and {} not added (latest: {:%d %B %Y}, {}). "
               "Someone else's photo may have been picked by mistake.".format(
                   "were" if len(refused) > 1 else "was", refused[-1].at,
                   plain(refused[-1].detail)))

reported = [(c.day, c.reported) for c in v.checkins if c.reported]
if reported:
    st.warning("Reported symptoms: " + "; ".join(
        f"day {d}: {', '.join(s.replace('_', ' ') for s in r)}" for d, r in reported))

region = st.selectbox("Region", ["whole face", *REGIONS], key="region")
region_key = None if region == "whole face" else region
left, right = st.columns(2)
left.plotly_chart(course_figure(v.trend, "lesions", region=region_key), key="review_lesions")
right.plotly_chart(course_figure(v.trend, "redness", region=region_key), key="review_redness")


def _correct(change, *args, **kwargs) -> None:
    try:
        change(*args, **kwargs)
    except MonitorError as error:
        st.session_state["correction_error"] = str(error)


def _save_note(user, patient_id: int) -> None:
    text = st.session_state["note_text"].strip()
    if text:
        _correct(store.add_note, user, patient_id, text)


def notes_section() -> None:
    """The clinician's notes (user text: shown as typed)."""
    st.subheader("Notes")
    for note in store.notes(user, patient_id):
        st.markdown(f"**{plain(note.author)}**, {note.created_at:%d %b %Y %H:%M}: "
                    f"{plain(note.text)}")
    with st.form("note", clear_on_submit=True):
        st.text_area("Add a note", key="note_text")
        st.form_submit_button("Save note", on_click=_save_note, args=(user, patient_id))


def erase_section() -> None:
    """Erasure, for every patient (also one with no usable photo yet)."""
    with st.expander("Erase this patient (right to erasure)"):
        st.write("This deletes every photo, measurement, answer and note of this patient, "
                 "and their account. It cannot be undone.")
        confirm = st.text_input(f"Type the patient's name ({plain(p.name)}) to confirm",
                                key="erase_name")
        if st.button("Erase for good", key="erase", type="primary"):
            with plain_errors():
                store.delete_patient(user, patient_id, confirm_name=confirm)
            st.session_state.pop("review_patient", None)
            st.query_params.clear()
            st.switch_page("app_pages/triage.py")


accepted = v.accepted
if not accepted:
    st.info("No usable photo yet.")
    notes_section()
    erase_section()
    st.stop()

with st.spinner("Lining up the photos..."):
    frames = {e["photo_id"]: aligned_of(store, user, v, e) for e in accepted}
ref = reference(store, user, v)

st.subheader("Aligned photos")
cols = st.columns(min(len(accepted), 8))
for i, entry in enumerate(accepted):
    if frames[entry["photo_id"]] is not None:
        show_image(frames[entry["photo_id"]], caption=day_label(entry), where=cols[i % len(cols)])

first, last = accepted[0], accepted[-1]
if len(accepted) >= 2:
    share = st.slider("Before / after", 0, 100, 50, key="wipe_review")
    show_image(wipe(frames[first["photo_id"]], frames[last["photo_id"]], share / 100),
               caption=f"left: {day_label(first)}, right: {day_label(last)}", width=480)

st.subheader("Lesions and redness on one photo")
labels = {f"{day_label(e)} - {e.get('file')}": e["photo_id"] for e in accepted}
picked = st.selectbox("Photo", list(labels), index=len(labels) - 1, key="overlay_photo")
photo_id = labels[picked]
entry = next(e for e in accepted if e["photo_id"] == photo_id)
lesions = lesions_in_frame(entry, ref)
st.metric("Spots on this photo", entry.get("lesion_count") or 0)
c1, c2 = st.columns(2)
show_image(draw_lesions(frames[photo_id], lesions), caption="lesions (blue: added by you)",
           where=c1)
show_image(redness_overlay(frames[photo_id], ref), caption="redness above day 0", where=c2)


# Corrections and notes are saved by callbacks, before the page runs: one run per click. (A
# button that called st.rerun() from the middle of the page made one and a half runs per click,
# and a finished run lets Streamlit forget the files of download buttons it did not draw.)
def _add_missed(user, photo_id: int, entry: dict, ref) -> None:
    px, py = frame_to_photo(entry, ref, float(st.session_state["add_x"]),
                            float(st.session_state["add_y"]))
    _correct(store.add_correction, user, photo_id, action="add", x=px, y=py, radius=4.0,
             kind=st.session_state["add_kind"])


st.markdown("**Correct the engine**")
if "correction_error" in st.session_state:
    st.error(st.session_state.pop("correction_error"))
for i, le in enumerate(lesions, start=1):
    a, b = st.columns([3, 1])
    who = "added by a clinician" if le.get("added_by_clinician") else \
        f"confidence {le.get('confidence', 0):.2f}"
    a.write(f"{i}. {le.get('kind', 'spot')} in {str(le.get('region')).replace('_', ' ')} "
            f"({who})")
    b.button("Reject", key=f"reject_{photo_id}_{i}", on_click=_correct,
             args=(store.add_correction, user, photo_id),
             kwargs=dict(action="reject", x=le["x"], y=le["y"],
                         radius=float(le.get("radius") or 2)))
with st.form("add_lesion"):
    h, w = frames[photo_id].shape[:2]
    st.number_input("x on the picture (pixels from the left)", 0, w, w // 2, key="add_x")
    st.number_input("y on the picture (pixels from the top)", 0, h, h // 2, key="add_y")
    st.selectbox("Kind", ["papule", "pustule"], key="add_kind")
    st.form_submit_button("Add a missed lesion", on_click=_add_missed,
                          args=(user, photo_id, entry, ref))
mine = [c for c in v.corrections if c.photo_id == photo_id]
for c in mine:
    a, b = st.columns([3, 1])
    a.caption(f"{c.action} at ({c.x:.0f}, {c.y:.0f}) by {plain(c.author)}, "
              f"{c.created_at:%d %b %H:%M}")
    b.button("Undo", key=f"undo_{c.id}", on_click=_correct,
             args=(store.remove_correction, user, c.id))

notes_section()

st.subheader("Export")
# Made by the server when clicked (monitor.web checks the session cookie and access).
common.export_links(patient_id)

erase_section()
