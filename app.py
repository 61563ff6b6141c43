"""Breakout Monitor's server: ``streamlit run app.py`` (the pages are ``clinic_app.py``).

Streamlit's own server (``st.App``) with the app's routes and middleware from
:mod:`monitor.web`: the session cookie, exports that check who asks, security headers on every
response, and Streamlit's unauthenticated ``/media/`` route closed. The data folder is
``$MONITOR_DATA`` (default ./data); ``python -m monitor demo`` starts a demo clinic.
"""

from streamlit.starlette import App

from monitor.web import middleware, routes

app = App("clinic_app.py", routes=routes(), middleware=middleware())
