"""Sign in (the only page before signing in)."""

import streamlit as st

from app_pages.common import get_store, plain_errors, sign_in
from monitor.testing import DEMO_ACCOUNTS

store = get_store()
st.title("Breakout Monitor")
st.write("Follow your skin day by day after a treatment, with your dermatologist.")

with st.form("sign_in"):
    username = st.text_input("User name", key="login_username")
    password = st.text_input("Password", type="password", key="login_password")
    submitted = st.form_submit_button("Sign in")
notice = st.session_state.pop("signed_out_notice", None)
if notice:
    st.info(notice)
if submitted:
    with plain_errors():  # e.g. too many attempts: wait
        user = store.authenticate(username, password, client=st.context.ip_address)
    if user is None:
        st.error("That user name and password do not match. Please try again.")
    else:
        sign_in(store, user)
        st.rerun()

if store.is_demo:
    st.info("This is a **demo clinic**. Demo accounts (user name / password): "
            + "; ".join(f"`{u}` / `{p}` ({shown})" for u, (p, _r, shown)
                        in DEMO_ACCOUNTS.items()))
