"""Shared pieces of the pages: the store, the signed-in user, cached reads, plain errors."""

from __future__ import annotations

import base64
import html
import io
import os
import time
from contextlib import contextmanager

import streamlit as st

from monitor.clinic import CourseView, course_view, reference_for
from monitor.course import STATUS_INFO
from monitor.errors import MonitorError
from monitor.present import STATUS_WORDS, aligned_photo, framing_thumbnail
from monitor.store import Store, User
from monitor.web import EXPORT_PATH, SESSION_COOKIE, SESSION_PATH, open_store

SYMPTOM_QUESTIONS = {
    "fever": "Do you have a fever (38 °C or more)?",
    "pain": "Is the treated skin painful (more than tender)?",
    "spreading_redness": "Is the redness spreading beyond the treated area?",
    "pus": "Do you see pus (yellow or white fluid)?",
    "cold_sores": "Do you have cold sores?",
}




_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]<>()#+-.!|~:$&=\"'/%^;,?@")


def plain(text: object) -> str:
    """User text (names, notes, file names) for a place that renders Markdown, shown as typed.

    Every ASCII punctuation mark is escaped, so ``![x](http://host/x.png)`` is text, not an
    image the browser would fetch; a colon also gets a zero-width space after it, so that
    ``:red[...]`` or ``:material/...:`` stay text too. Line breaks become spaces.
    """
    out = []
    for ch in " ".join(str(text).split()):
        if ch in _MARKDOWN_PUNCTUATION:
            out.append("\\" + ch + ("\u200b" if ch == ":" else ""))
        else:
            out.append(ch)
    return "".join(out)


def get_store() -> Store:
    return open_store(os.environ.get("MONITOR_DATA") or "data")


def resolve_user(store: Store) -> User | None:
    """Who is signed in, read afresh from the store on every run of the page (app.py).

    The tab's session (its id is kept server-side in ``st.session_state``), else the
    browser's session cookie after a reload. A session that was ended, idle too long, or
    whose account was erased or changed signs the tab out, with a plain notice.
    """
    sid = st.session_state.get("session_id")
    found = store.session_user(session_id=sid) if sid is not None else None
    if found is None:
        token = st.context.cookies.get(SESSION_COOKIE)
        found = store.session_user(token=token) if isinstance(token, str) else None
    if found is None:
        if sid is not None:
            st.session_state.clear()
            st.session_state["signed_out_notice"] = (
                "You have been signed out (after a while without use, or because your "
                "account changed). Please sign in again.")
        st.session_state.pop("user", None)
        return None
    sid, user = found
    previous = st.session_state.get("user")
    if previous is not None and (previous.id, previous.patient_id) != (user.id,
                                                                       user.patient_id):
        st.session_state.clear()
    st.session_state["session_id"], st.session_state["user"] = sid, user
    return user


def current_user() -> User | None:
    """The user :func:`resolve_user` read from the store for this run."""
    return st.session_state.get("user")


def sign_in(store: Store, user: User) -> None:
    """Start the tab's session; the browser gets its cookie through a one-time ticket."""
    st.session_state.clear()
    st.session_state["session_id"], st.session_state["session_ticket"] = \
        store.start_session(user)
    st.session_state["session_ticket_at"] = time.monotonic()


def sign_out() -> None:
    get_store().end_session(st.session_state.get("session_id"))
    st.session_state.clear()
    st.session_state["clear_cookie"] = True


def session_cookie() -> None:
    """Let the browser fetch its session cookie (or clear it after signing out).

    A cookie marked HttpOnly can only be set by an HTTP response, not from the page: a
    hidden image asks the app's server for it (:mod:`monitor.web`), with a ticket that works
    once and for two minutes.
    """
    ticket = st.session_state.get("session_ticket")
    if ticket and time.monotonic() - st.session_state.get("session_ticket_at", 0) < 120:
        st.sidebar.html(f'<img src="{SESSION_PATH}?ticket={html.escape(ticket)}" alt="" '
                        'width="1" height="1" style="position:absolute;opacity:0">')
    else:
        st.session_state.pop("session_ticket", None)
    if st.session_state.pop("clear_cookie", False):
        st.sidebar.html(f'<img src="{SESSION_PATH}/end" alt="" width="1" height="1" '
                        'style="position:absolute;opacity:0">')


def show_image(image, *, caption: str = "", width: int | None = None, where=None) -> None:
    """A photo embedded in the page (a ``data:`` URI), never served at a fetchable URL.

    ``st.image`` hands pictures to Streamlit's ``/media/`` route, which any client may
    fetch without signing in; an embedded picture exists only in this page.
    """
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=90)
    uri = "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
    limit = f"max-width:{int(width)}px;" if width else ""
    text = html.escape(caption)
    (where or st).html(
        f'<figure class="monitor-photo" style="margin:0 0 0.5rem 0;{limit}">'
        f'<img src="{uri}" alt="{text}" style="width:100%;height:auto;display:block">'
        f'<figcaption style="font-size:0.85rem;opacity:0.7;text-align:center">{text}'
        '</figcaption></figure>')


def export_links(patient_id: int) -> None:
    """Download links of a patient's exports, made by the server when clicked (it checks the
    session cookie and who may see the patient)."""
    links = [("PDF for the record", "pdf"), ("Series (CSV)", "csv"),
             ("Series (JSON)", "json"), ("Time-lapse (GIF)", "gif")]
    st.html('<div style="display:flex;gap:0.75rem;flex-wrap:wrap">' + "".join(
        f'<a href="{EXPORT_PATH}/{int(patient_id)}/{kind}" '
        f'download="course-{int(patient_id)}.{kind}" class="monitor-export" '
        'style="padding:0.4rem 0.9rem;border:1px solid rgba(128,128,128,0.5);'
        f'border-radius:0.5rem;text-decoration:none;color:inherit">{label}</a>'
        for label, kind in links) + "</div>")


def sidebar(store: Store, user: User | None) -> None:
    if store.is_demo:
        st.sidebar.warning("Demo clinic: made-up patients and demo accounts, for trying the app. "
                           f"Its 'today' is {store.today():%d %B %Y}.")
    if user is not None:
        st.sidebar.markdown(f"Signed in as **{plain(user.display_name)}**")
        st.sidebar.button("Sign out", on_click=sign_out, key="sign_out")


@contextmanager
def plain_errors():
    """Show a MonitorError's message as it is; anything else as a plain apology."""
    try:
        yield
    except MonitorError as error:
        st.error(str(error))
        st.stop()


def view(store: Store, user: User, patient_id: int) -> CourseView:
    """The course from stored results, cached until anything it depends on changes."""
    revision = store.revision(user, patient_id)  # also checks access
    return _view(store, user, patient_id, revision)


@st.cache_data(max_entries=64, show_spinner=False)
def _view(_store: Store, user: User, patient_id: int, revision: tuple) -> CourseView:
    return course_view(_store, user, patient_id)


@st.cache_data(max_entries=256, show_spinner=False)
def aligned(_store: Store, user: User, patient_id: int, photo_id: int, to_reference: tuple,
            ref_photo_id: int, ref_sha: str):
    """The photo warped onto the reference photo's face (cached per photo and reference)."""
    v_ref = next(p for p in _store.photos(user, patient_id) if p.id == ref_photo_id)
    reference = reference_for(_store, user, v_ref)
    return aligned_photo(_store.photo_bytes(user, photo_id), [list(r) for r in to_reference],
                         reference)


@st.cache_data(max_entries=64, show_spinner=False)
def framing(_store: Store, user: User, photo_id: int, sha: str, entry: dict):
    """The photo, small, with its face boxed (cached per photo: decoded once, not per rerun)."""
    return framing_thumbnail(_store.photo_bytes(user, photo_id), entry)


def reference(store: Store, user: User, v: CourseView):
    ref = v.reference_photo
    return None if ref is None else reference_for(store, user, ref)


def aligned_of(store: Store, user: User, v: CourseView, entry: dict):
    ref = v.reference_photo
    if ref is None or entry.get("to_reference") is None:
        return None
    return aligned(store, user, v.patient.id, entry["photo_id"],
                   tuple(tuple(r) for r in entry["to_reference"]), ref.id, ref.sha256)


def status_box(trend: dict) -> None:
    words = STATUS_WORDS.get(trend.get("status"), trend.get("status"))
    reasons = trend.get("reasons") or []
    if trend.get("see_dermatologist"):
        st.error(f"**{words}.** Please contact your dermatologist.", icon="⚠️")
    elif trend.get("status") in STATUS_INFO and STATUS_INFO[trend["status"]].settled:
        st.success(f"**{words}.**", icon="✅")
    else:
        st.info(f"**{words}.**")
    for reason in reasons:
        st.write(f"- {reason}")


def day_label(entry: dict) -> str:
    return f"day {entry['day']}" if entry.get("day") is not None else entry.get("file", "photo")
