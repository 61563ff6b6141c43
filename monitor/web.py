"""The app's own HTTP side: the store of this process, session cookies, exports, headers.

Streamlit serves the pages over its websocket; what it serves over plain HTTP (``/media/``)
has no notion of who is signed in. So nothing of a patient goes through it: photos are
embedded in the page as ``data:`` URIs and exports are fetched from :data:`EXPORT_PATH`,
which checks the session cookie and the store's access rules on every request. ``app.py``
mounts these routes and the middleware on Streamlit's own server (``st.App``).

::

    open_store(data_dir)               -> Store (one per data folder and process)
    GET /api/session?ticket=...        sets the HttpOnly session cookie (once per sign-in)
    GET /api/session/end               ends the session and clears the cookie
    GET /api/export/{patient}/{kind}   pdf | csv | json | gif, for a user allowed to see it
    every response                     X-Frame-Options, Content-Security-Policy, ...
    /media/...                         refused (Streamlit's unauthenticated file route)
"""

from __future__ import annotations

import functools
import os
import threading
from datetime import timedelta

from monitor.store import IDLE_LIMITS, Store

__all__ = ["EXPORT_PATH", "SECURITY_HEADERS", "SESSION_COOKIE", "SESSION_PATH",
           "ProtectMiddleware", "export_file", "middleware", "open_store", "routes"]

_OPEN_LOCK = threading.Lock()


@functools.cache
def _open(data_dir: str) -> Store:
    from monitor.clinic import analyse_missing

    store = Store(data_dir)
    limits = dict(IDLE_LIMITS)
    if os.environ.get("MONITOR_IDLE_MINUTES_CLINICIAN"):
        limits["clinician"] = timedelta(minutes=float(
            os.environ["MONITOR_IDLE_MINUTES_CLINICIAN"]))
    if os.environ.get("MONITOR_IDLE_DAYS_PATIENT"):
        limits["patient"] = timedelta(days=float(os.environ["MONITOR_IDLE_DAYS_PATIENT"]))
    store.idle_limits = limits
    analyse_missing(store)  # photos a crash left without their analysis
    return store


def open_store(data_dir: str) -> Store:
    """The store of ``data_dir`` for this process (opened, recovered and checked once)."""
    with _OPEN_LOCK:
        return _open(os.path.abspath(data_dir))


# ------------------------------------------------------------------------------------------
# HTTP routes and middleware (mounted by app.py on Streamlit's own server, st.App)
# ------------------------------------------------------------------------------------------

#: The session cookie: a random value, HttpOnly, SameSite=Strict; the store keeps its hash.
SESSION_COOKIE = "monitor_session"
SESSION_PATH = "/api/session"
EXPORT_PATH = "/api/export"

#: Sent with every HTTP response of the app's server.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), payment=()",
    # Nothing is loaded from elsewhere, and the app cannot be framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' data: blob:; "
                               "style-src 'self' 'unsafe-inline'; "
                               "script-src 'self' 'unsafe-inline'; "
                               "font-src 'self' data:; connect-src 'self'; "
                               "worker-src 'self' blob:; frame-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
}

_EXPORTS = {"pdf": "application/pdf", "csv": "text/csv", "json": "application/json",
            "gif": "image/gif"}


def _store() -> Store:
    return open_store(os.environ.get("MONITOR_DATA") or "data")


def _secure(request) -> bool:  # noqa: ANN001 - a Starlette request
    return request.url.scheme == "https" or \
        request.headers.get("x-forwarded-proto", "") == "https"


def _claim(request):  # noqa: ANN001, ANN202 - Starlette route
    """Exchange the one-time ticket of a sign-in for the session cookie."""
    from starlette.responses import Response

    token = _store().claim_session(request.query_params.get("ticket", ""))
    if token is None:
        return Response(status_code=410, headers={"Cache-Control": "no-store"})
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, token, max_age=int(
        max(IDLE_LIMITS.values()).total_seconds()), path="/", httponly=True,
        samesite="strict", secure=_secure(request))
    return response


def _end(request):  # noqa: ANN001, ANN202 - Starlette route
    """Sign out this browser: the session ends and its cookie is cleared."""
    from starlette.responses import Response

    store = _store()
    found = store.session_user(token=request.cookies.get(SESSION_COOKIE) or None)
    if found is not None:
        store.end_session(found[0])
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
    return response


def export_file(store: Store, user, patient_id: int, kind: str) -> bytes:  # noqa: ANN001
    """The course of ``patient_id`` as ``kind`` (pdf, csv, json, gif), for ``user``.

    Access is the store's: ``AccessDenied`` unless ``user`` may see the patient. Recorded
    in the audit log.
    """
    from monitor.clinic import course_view, reference_for
    from monitor.present import (
        aligned_photo,
        course_png,
        pdf_report,
        series_csv,
        series_json,
        timelapse_gif,
    )

    view = course_view(store, user, patient_id)
    store.record_view(user, patient_id, f"export {kind}")
    if kind == "csv":
        return series_csv(view).encode()
    if kind == "json":
        return series_json(view).encode()
    accepted = [e for e in view.accepted if e.get("to_reference") is not None]
    ref = view.reference_photo
    reference = None if ref is None or not accepted else reference_for(store, user, ref)
    if kind == "gif" and reference is not None:
        frames = [aligned_photo(store.photo_bytes(user, e["photo_id"]), e["to_reference"],
                                reference) for e in accepted]
        return timelapse_gif(frames, [_day_label(e) for e in accepted])
    ends = [] if reference is None else [accepted[0], accepted[-1]]
    frames = [aligned_photo(store.photo_bytes(user, e["photo_id"]), e["to_reference"],
                            reference) for e in ends]
    if kind == "gif":
        from monitor.errors import NotEnoughPhotos

        raise NotEnoughPhotos("There is no usable photo yet for a time-lapse.")
    return pdf_report(view, before=frames[0] if frames else None,
                      after=frames[-1] if frames else None,
                      before_label=_day_label(ends[0]) if ends else "",
                      after_label=_day_label(ends[-1]) if ends else "",
                      chart_png=course_png(view.trend), clinician=user.display_name,
                      generated=store.today())


def _day_label(entry: dict) -> str:
    return f"day {entry['day']}" if entry.get("day") is not None else entry.get("file", "photo")


def _export(request):  # noqa: ANN001, ANN202 - Starlette route
    """A patient's export, for a signed-in user allowed to see that patient only."""
    from starlette.responses import PlainTextResponse, Response

    from monitor.errors import AccessDenied, MonitorError

    no_store = {"Cache-Control": "no-store"}
    store = _store()
    found = store.session_user(token=request.cookies.get(SESSION_COOKIE) or None)
    if found is None:
        return PlainTextResponse("Please sign in first.", status_code=401, headers=no_store)
    kind = request.path_params["kind"]
    if kind not in _EXPORTS:
        return PlainTextResponse("There is no such export.", status_code=404,
                                 headers=no_store)
    patient_id = request.path_params["patient_id"]
    try:
        data = export_file(store, found[1], patient_id, kind)
    except AccessDenied as error:
        return PlainTextResponse(str(error), status_code=403, headers=no_store)
    except MonitorError as error:
        return PlainTextResponse(str(error), status_code=409, headers=no_store)
    return Response(data, media_type=_EXPORTS[kind], headers={
        **no_store, "Content-Disposition": f'attachment; filename="course-{patient_id}.{kind}"'})


def routes() -> list:
    """The app's own HTTP routes (session cookie, exports)."""
    from starlette.routing import Route

    return [Route(SESSION_PATH, _claim, methods=["GET"]),
            Route(f"{SESSION_PATH}/end", _end, methods=["GET"]),
            Route(EXPORT_PATH + "/{patient_id:int}/{kind:str}", _export, methods=["GET"])]


class ProtectMiddleware:
    """Security headers on every HTTP response; Streamlit's ``/media/`` refused outright.

    ``/media/`` serves by an id made from the content, to anyone who has the URL, without
    asking who they are; the app never puts a photo or an export there (photos are
    embedded in the page, exports come from :data:`EXPORT_PATH`), so nothing is lost.
    """

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith("/media/") or path == "/media":
            await send({"type": "http.response.start", "status": 404,
                        "headers": [*self.headers, (b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Not found."})
            return

        async def with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in self.headers if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


def middleware() -> list:
    from starlette.middleware import Middleware

    return [Middleware(ProtectMiddleware)]
