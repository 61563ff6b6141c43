"""Patient: my course (today against yesterday and day 0, the chart, before/after)."""

import streamlit as st

from app_pages.common import (
    aligned_of,
    current_user,
    day_label,
    get_store,
    plain_errors,
    show_image,
    status_box,
    view,
)
from monitor.present import course_figure, wipe

store = get_store()
user = current_user()
st.title("My course")

wanted = st.query_params.get("patient")
with plain_errors():
    patient_id = user.patient_id if wanted is None else int(wanted) if wanted.isdigit() else -1
    if patient_id is None:
        st.info("Your account is not linked to a treatment yet. Please ask your dermatologist.")
        st.stop()
    v = view(store, user, patient_id)

series = v.trend.get("series") or []
if not series:
    st.info("No usable photo yet. Start with today's check-in.")
    st.page_link("app_pages/checkin.py", label="Daily check-in", icon="📷")
    st.stop()

today, first = series[-1], series[0]
yesterday = next((d for d in series if d["day"] == today["day"] - 1), None)
st.caption(f"Latest photo: day {today['day']} after treatment.")
c1, c2, c3 = st.columns(3)
spots = today.get("lesion_count")
c1.metric("Spots today", "-" if spots is None else f"{spots:g}",
          None if yesterday is None or yesterday.get("lesion_count") is None or spots is None
          else f"{spots - yesterday['lesion_count']:+g} since yesterday", delta_color="inverse")
red = today.get("redness_index")
c2.metric("Redness today", "-" if red is None else f"{red:+.1f}",
          None if yesterday is None or yesterday.get("redness_index") is None or red is None
          else f"{red - yesterday['redness_index']:+.1f} since yesterday", delta_color="inverse",
          help="How much redder your skin is than on your first photo (0 = the same).")
c3.metric("Spots on day 0", "-" if first.get("lesion_count") is None
          else f"{first['lesion_count']:g}")

status_box(v.trend)

spots_tab, redness_tab = st.tabs(["Spots", "Redness"])
with spots_tab:
    st.plotly_chart(course_figure(v.trend, "lesions"), key="chart_lesions")
with redness_tab:
    st.plotly_chart(course_figure(v.trend, "redness"), key="chart_redness")
st.caption("The green band is the usual course after the treatment.")

accepted = v.accepted
if len(accepted) >= 2:
    st.subheader("Before and after")
    before, after = accepted[0], accepted[-1]
    with st.spinner("Lining up your photos..."), plain_errors():
        a, b = aligned_of(store, user, v, before), aligned_of(store, user, v, after)
    if a is not None and b is not None:
        left, right = st.columns(2)
        show_image(a, caption=day_label(before), where=left)
        show_image(b, caption=day_label(after), where=right)
        share = st.slider("Slide to compare", 0, 100, 50, key="wipe_patient")
        show_image(wipe(a, b, share / 100), caption=f"left: {day_label(before)}, "
                                                     f"right: {day_label(after)}")
