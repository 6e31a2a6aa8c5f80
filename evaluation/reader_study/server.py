"""The reading web page: sign in with a token, read each case in order, answer, resume any time.

The app reads only ``study.json``, ``cases/`` and ``answers.sqlite``; the answer key in ``private/``
is never opened, so the truth cannot reach a browser. Counts are sent losslessly (16-bit) and drawn
by ``static/reader.js``. Sessions are rows in ``answers.sqlite`` named by a random cookie: they end
at sign-out, after ``session_idle_hours`` without a request and when the admin rotates the reader's
token. Cookies are ``HttpOnly`` and ``SameSite=Strict``, and ``Secure`` on every request that arrived
over TLS (``cert``/``key``, or a TLS reverse proxy with ``trust_proxy``). Every POST form carries a
CSRF token; the sign-in form's is a double-submit cookie, the others are the session's.

A reader reads the cases in their own order: the current case, or back to their own answered ones,
never ahead (neither its page nor its counts are served before its turn).
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import logging
import secrets
import ssl
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import BaseWSGIServer, make_server

from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS

from .create import ANSWERS_DB, StudyError, case_path, hash_token, load_study, new_token
from .store import Answer, AnswerStore

log = logging.getLogger(__name__)

ADMIN = "__admin__"
CALLS = ("real", "synthetic")
CONFIDENCE = (1, 2, 3, 4, 5)
MAX_BODY_BYTES = 16 * 1024
DEFAULT_IDLE_HOURS = 12.0
SESSION_COOKIE = "synthscan_session"
SIGNIN_COOKIE = "synthscan_signin"


class LimitBody:
    """WSGI middleware: buffer a body sent without Content-Length (chunked) and refuse it past ``limit``.

    werkzeug enforces ``MAX_CONTENT_LENGTH`` on a declared length, but its form parser silently
    truncates a chunked body at the limit and parses what is left; here it becomes a 413 like any
    other oversized body, and a body within the limit gets a Content-Length like any other.
    """

    def __init__(self, app: Callable, limit: int):
        self.app, self.limit = app, limit

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not environ.get("CONTENT_LENGTH") and (chunked or environ.get("wsgi.input_terminated")):
            stream, parts, size = environ["wsgi.input"], [], 0
            while size <= self.limit:
                part = stream.read(self.limit + 1 - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
            if size > self.limit:
                return RequestEntityTooLarge()(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(b"".join(parts))
            environ["CONTENT_LENGTH"] = str(size)
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # now a plain body of known length
        return self.app(environ, start_response)


def ascii_int(value: str | None, allowed: Collection[int]) -> int | None:
    """``value`` as an int when it is ASCII digits naming one of ``allowed``, else ``None``.

    Python's ``int`` also reads other scripts' digits ('٣' is 3) and surrounding blanks; a form
    answer is only ever the page's own ASCII value.
    """
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 6:
        return None
    number = int(value)
    return number if number in allowed else None


def _match_token(token: str, hashes: dict[str, str]) -> str | None:
    """The owner of ``token`` among ``hashes``; compares every hash in constant time, no early exit."""
    digest = hash_token(token)
    found = None
    for owner, stored in hashes.items():
        if hmac.compare_digest(digest, stored):
            found = owner
    return found


def _same(sent: str, expected: str) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def create_app(
    study_root: str | Path, *, session_idle_hours: float = DEFAULT_IDLE_HOURS, trust_proxy: bool = False
) -> Flask:
    """A Flask app serving one study folder (``trust_proxy``: one reverse proxy sets X-Forwarded-*)."""
    if session_idle_hours <= 0:
        raise StudyError(f"--session-idle-hours must be > 0, got {session_idle_hours}")
    root = Path(study_root).resolve()
    study = load_study(root)
    cases = frozenset(study["cases"])
    views = tuple(study["views"])
    rows, columns = study["image_shape"]
    orders: dict[str, list[str]] = {reader["id"]: reader["order"] for reader in study["readers"]}
    store = AnswerStore(root / ANSWERS_DB)
    store.init_tokens(
        {reader["id"]: reader["token_sha256"] for reader in study["readers"]}
        | {ADMIN: study["admin_token_sha256"]}
    )
    idle_seconds = session_idle_hours * 3600.0

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.wsgi_app = LimitBody(app.wsgi_app, MAX_BODY_BYTES)
    if trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    def set_cookie(response: Response, name: str, value: str) -> None:
        response.set_cookie(name, value, path="/", secure=request.is_secure, httponly=True, samesite="Strict")

    def require(owner_ok: Callable[[str], bool], message: str) -> str:
        if g.session is None or not owner_ok(g.session.owner):
            abort(403, message)
        return g.session.owner

    def current_reader() -> str:
        return require(lambda owner: owner in orders, "Sign in with your reader token first.")

    def check_csrf() -> None:
        if not _same(request.form.get("csrf_token", ""), g.session.csrf if g.session else ""):
            abort(400, "The form expired or was not sent by this page; reload and try again.")

    def position(reader: str) -> tuple[list[str], dict[str, Answer], int]:
        """The reader's order, answers and the index of their current case (len(order) when done)."""
        order = orders[reader]
        answers = store.answers_of(reader)
        current = next((i for i, case in enumerate(order) if case not in answers), len(order))
        return order, answers, current

    @app.before_request
    def load_session() -> None:
        g.session_id = request.cookies.get(SESSION_COOKIE, "")
        g.session = None
        if g.session_id and request.endpoint != "static":
            g.session = store.session(g.session_id, idle_seconds)

    @app.context_processor
    def page_globals() -> dict[str, Any]:
        return {"signed_in": g.get("session") is not None, "csrf": g.session.csrf if g.get("session") else ""}

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if g.get("session_id") and g.get("session") is None and request.endpoint != "static":
            response.delete_cookie(SESSION_COOKIE, path="/", secure=request.is_secure, samesite="Strict")
        return response

    @app.get("/")
    def index() -> Any:
        if g.session is not None:
            return redirect(url_for("admin" if g.session.owner == ADMIN else "read"))
        signin_token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
        response = Response(render_template("signin.html", error=None, signin_token=signin_token))
        set_cookie(response, SIGNIN_COOKIE, signin_token)
        return response

    @app.post("/signin")
    def signin() -> Any:
        if not _same(request.form.get("csrf_token", ""), request.cookies.get(SIGNIN_COOKIE, "")):
            abort(400, "The sign-in form expired; reload the page and try again.")
        owner = _match_token(request.form.get("token", "").strip(), store.token_hashes())
        if owner is None:
            page = render_template(
                "signin.html", error="Unknown token.", signin_token=request.cookies[SIGNIN_COOKIE]
            )
            return page, 403
        if g.session_id:
            store.close_session(g.session_id)
        session_id, g.session = store.open_session(owner)
        response = redirect(url_for("admin" if owner == ADMIN else "read"))
        set_cookie(response, SESSION_COOKIE, session_id)
        response.delete_cookie(SIGNIN_COOKIE, path="/", secure=request.is_secure, samesite="Strict")
        g.session_id = session_id
        return response

    @app.post("/signout")
    def signout() -> Any:
        require(lambda owner: True, "You are not signed in.")
        check_csrf()
        store.close_session(g.session_id)
        g.session = None  # after_request deletes the cookie
        return redirect(url_for("index"))

    def case_page(reader: str, number: int, review: Answer | None) -> str:
        order, answers, current = position(reader)
        case_id = order[number - 1]
        return render_template(
            "read.html",
            case_id=case_id,
            number=number,
            total=len(order),
            answered=len(answers),
            current=current + 1,
            review=review,
            views=views,
            rows=rows,
            columns=columns,
            labels=list(LABELS),
            grades=AMYLOIDOSIS_GRADES,
            confidence=CONFIDENCE,
            error=request.args.get("error"),
        )

    @app.get("/read")
    def read() -> Any:
        reader = current_reader()
        order, _, current = position(reader)
        if current == len(order):
            return render_template("done.html", total=len(order))
        store.mark_shown(reader, order[current])
        return case_page(reader, current + 1, None)

    @app.get("/read/<int:number>")
    def review(number: int) -> Any:
        reader = current_reader()
        order, answers, current = position(reader)
        if not 1 <= number <= len(order):
            abort(404)
        if number == current + 1:
            return redirect(url_for("read"))
        if number > current:
            abort(403, f"Cases are read in order: case {number} opens after case {current + 1}.")
        return case_page(reader, number, answers[order[number - 1]])

    @app.get("/counts/<case_id>")
    def counts(case_id: str) -> Response:
        reader = current_reader()
        if case_id not in cases:
            abort(404)
        order, _, current = position(reader)
        if case_id not in order[: current + 1]:
            abort(403, "Cases are read in order; this case is not open yet.")
        return Response(case_path(root, case_id).read_bytes(), mimetype="application/octet-stream")

    @app.post("/answer")
    def answer() -> Any:
        reader = current_reader()
        check_csrf()
        form = request.form
        case_id = form.get("case_id", "")
        if case_id not in cases:
            abort(404)
        order, answers, current = position(reader)
        if case_id in answers:
            return render_template("already.html"), 409
        if current == len(order) or case_id != order[current]:
            abort(403, "Cases are read in order; this case is not open yet.")
        call, diagnosis = form.get("call"), form.get("diagnosis")
        confidence = ascii_int(form.get("confidence"), CONFIDENCE)
        grade = ascii_int(form.get("grade"), AMYLOIDOSIS_GRADES) if diagnosis == "amyloidosis" else None
        flagged = ascii_int(form.get("flag", "0"), (0, 1))
        if call is None or diagnosis is None or form.get("confidence") in (None, ""):
            return redirect(url_for("read", error="Answer every question before going on."))
        if diagnosis == "amyloidosis" and not form.get("grade"):
            return redirect(url_for("read", error="Give the Perugini grade of the amyloidosis."))
        if call not in CALLS or confidence is None or diagnosis not in LABELS or flagged is None:
            abort(400, "Invalid answer.")
        if diagnosis == "amyloidosis" and grade is None:
            abort(400, "Invalid grade.")
        stored = store.add(Answer(reader, case_id, call, confidence, diagnosis, grade, flagged=bool(flagged)))
        if not stored:
            return render_template("already.html"), 409
        return redirect(url_for("read"))

    @app.post("/flag")
    def flag() -> Any:
        reader = current_reader()
        check_csrf()
        case_id = request.form.get("case_id", "")
        value = ascii_int(request.form.get("flag"), (0, 1))
        order = orders[reader]
        if value is None:
            abort(400, "Invalid flag.")
        if case_id not in cases or not store.set_flag(reader, case_id, bool(value)):
            abort(404)
        return redirect(url_for("review", number=order.index(case_id) + 1))

    def admin_page(new_token_for: tuple[str, str] | None = None) -> str:
        progress = store.progress()
        rows_ = [
            {
                "reader": reader,
                "answered": progress.get(reader, (0, "", 0))[0],
                "total": len(order),
                "last": progress.get(reader, (0, "", 0))[1],
                "flagged": progress.get(reader, (0, "", 0))[2],
            }
            for reader, order in orders.items()
        ]
        return render_template("admin.html", rows=rows_, new_token=new_token_for)

    @app.get("/admin")
    def admin() -> Any:
        require(lambda owner: owner == ADMIN, "Sign in with the admin token first.")
        return admin_page()

    @app.post("/admin/rotate")
    def rotate() -> Any:
        require(lambda owner: owner == ADMIN, "Sign in with the admin token first.")
        check_csrf()
        reader = request.form.get("reader", "")
        if reader not in orders:
            abort(404)
        token = new_token()
        store.rotate_token(reader, hash_token(token))
        log.info("token of %s rotated; its sessions ended", reader)
        return admin_page((reader, token))

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def error(error: Any) -> Any:
        return render_template("error.html", error=error), error.code

    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_reading_server(
    study_root: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    trust_proxy: bool = False,
    session_idle_hours: float = DEFAULT_IDLE_HOURS,
) -> BaseWSGIServer:
    """A bound, threaded werkzeug server for the study (fine for a reading room); call ``serve_forever``.

    Plain HTTP is refused off loopback: tokens and answers would cross the network in clear.
    """
    if (cert is None) != (key is None):
        raise StudyError("--cert and --key go together: give both PEM files to serve over TLS")
    if cert is None and not trust_proxy and not _is_loopback(host):
        raise StudyError(
            f"--host {host} would send tokens in clear over the network; serve over TLS with --cert/--key, "
            "or behind a TLS reverse proxy on 127.0.0.1 with --proxy"
        )
    app = create_app(study_root, session_idle_hours=session_idle_hours, trust_proxy=trust_proxy)
    context = None
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as error:
            raise StudyError(f"cannot load --cert {cert} / --key {key}: {error}; give PEM files") from error
    try:
        return make_server(host, port, app, threaded=True, ssl_context=context)
    except OSError as error:
        raise StudyError(
            f"cannot listen on {host}:{port}: {error.strerror}; choose another --port"
        ) from error
