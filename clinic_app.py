"""Breakout Monitor pages (UI only; the logic lives in ``monitor``), served by ``app.py``.

Patients check in daily and follow their course; dermatologists triage and review. The data
folder is ``$MONITOR_DATA`` (default ./data); ``python -m monitor demo`` starts a demo clinic.
"""

import streamlit as st

st.set_page_config(page_title="Breakout Monitor", page_icon="🩺", layout="wide")

from app_pages import common  # noqa: E402 - set_page_config must come first

store = common.get_store()
user = common.resolve_user(store)  # read afresh from the store on every run

if user is None:
    pages = [st.Page("app_pages/sign_in.py", title="Sign in", icon="🔑", default=True)]
elif user.role == "patient":
    pages = [st.Page("app_pages/checkin.py", title="Daily check-in", icon="📷", default=True),
             st.Page("app_pages/my_course.py", title="My course", icon="📈")]
else:
    pages = [st.Page("app_pages/triage.py", title="Triage", icon="🚦", default=True),
             st.Page("app_pages/review.py", title="Patient review", icon="🔎")]

page = st.navigation(pages)
common.sidebar(store, user)
common.session_cookie()
page.run()
