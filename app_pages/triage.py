"""Clinician: all my patients, flagged and off-course first."""

from datetime import date

import pandas as pd
import streamlit as st

from app_pages.common import current_user, get_store, plain, plain_errors
from monitor.clinic import triage
from monitor.present import STATUS_WORDS

store = get_store()
user = current_user()
st.title("Triage")

with plain_errors():
    rows = triage(store, user)

if not rows:
    st.info("You have no patients yet. Add one below.")
else:
    flagged = sum(r.see_dermatologist for r in rows)
    st.write(f"{len(rows)} patients; **{flagged} flagged** for review.")
    table = pd.DataFrame([{
        "": "⚠️" if r.see_dermatologist else "",
        "Patient": r.name,
        "Day": r.day_since_treatment,
        "Status": STATUS_WORDS.get(r.status, r.status),
        "Main reason": r.reason,
        "Last check-in": "-" if r.last_check_in is None else f"{r.last_check_in:%d %b}",
        "Missed days": r.missing_check_ins,
    } for r in rows])
    st.dataframe(table, hide_index=True, key="triage_table")
    st.subheader("Open a review")
    for r in rows:
        label = f"{'⚠️ ' if r.see_dermatologist else ''}{plain(r.name)}"
        if st.button(label, key=f"open_{r.patient_id}"):
            st.session_state["review_patient"] = r.patient_id
            st.switch_page("app_pages/review.py", query_params={"patient": str(r.patient_id)})

with st.expander("Add a patient"):
    with st.form("add_patient"):
        name = st.text_input("Name", key="new_patient_name")
        treated = st.date_input("Treatment date", value=store.today(), key="new_patient_date")
        procedure = st.text_input("Procedure", value="microneedling", key="new_patient_proc")
        account = st.text_input("Their app user name (optional; create it with "
                                "`python -m monitor users add`)", key="new_patient_account")
        if st.form_submit_button("Add patient") and name.strip():
            with plain_errors():
                store.add_patient(user, name.strip(), treatment_date=treated or date.today(),
                                  procedure=procedure, username=account.strip() or None)
            st.success(f"{plain(name)} added.")
            st.rerun()
