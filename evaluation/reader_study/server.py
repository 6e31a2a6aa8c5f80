"""The reading web page: sign in with a token, read each case, answer, resume any time.

The app reads only ``study.json``, ``secret_key``, ``images/`` and ``answers.sqlite``; the answer key in
``private/`` is never opened, so the truth cannot reach a browser. Sessions are signed cookies that
hold the reader id and a CSRF token; every POST form carries that token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, redirect, render_template, request, session, url_for
from werkzeug.serving import make_server

from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS

from .create import (
    ANSWERS_DB,
    IMAGE_DIR,
    SECRET_KEY,
    hash_token,
    load_study,
)
from .store import Answer, AnswerStore

log = logging.getLogger(__name__)

ADMIN = "__admin__"
CALLS = ("real", "synthetic")
CONFIDENCE = (1, 2, 3, 4, 5)


def _match_token(token: str, hashes: dict[str, str]) -> str | None:
    """The owner of ``token`` among ``hashes``; compares every hash in constant time, no early exit."""
    digest = hash_token(token)
    found = None
    for owner, stored in hashes.items():
        if hmac.compare_digest(digest, stored):
            found = owner
    return found


def create_app(study_root: str | Path) -> Flask:
    """A Flask app serving one study folder."""
    root = Path(study_root).resolve()
    study = load_study(root)
    cases = frozenset(study["cases"])
    views = tuple(study["views"])
    orders = {reader["id"]: reader["order"] for reader in study["readers"]}
    hashes = {reader["id"]: reader["token_sha256"] for reader in study["readers"]}
    hashes[ADMIN] = study["admin_token_sha256"]
    store = AnswerStore(root / ANSWERS_DB)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=(root / SECRET_KEY).read_bytes(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=16 * 1024,
    )

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(24)
        return session["csrf"]

    def check_csrf() -> None:
        sent = request.form.get("csrf_token", "")
        if not hmac.compare_digest(sent.encode(), session.get("csrf", "").encode()) or not sent:
            abort(400, "The form expired or was not sent by this page; reload and try again.")

    def current_reader() -> str:
        reader = session.get("reader")
        if reader not in orders:
            abort(403, "Sign in with your reader token first.")
        return reader

    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'"
        )
        return response

    @app.get("/")
    def index() -> Any:
        if session.get("reader") == ADMIN:
            return redirect(url_for("admin"))
        if session.get("reader") in orders:
            return redirect(url_for("read"))
        return render_template("signin.html", error=None)

    @app.post("/signin")
    def signin() -> Any:
        check_csrf()
        owner = _match_token(request.form.get("token", "").strip(), hashes)
        if owner is None:
            return render_template("signin.html", error="Unknown token."), 403
        session.clear()
        session["reader"] = owner
        csrf_token()
        return redirect(url_for("admin" if owner == ADMIN else "read"))

    @app.post("/signout")
    def signout() -> Any:
        check_csrf()
        session.clear()
        return redirect(url_for("index"))

    @app.get("/read")
    def read() -> Any:
        reader = current_reader()
        done = store.answered_cases(reader)
        order = orders[reader]
        pending = [case for case in order if case not in done]
        if not pending:
            return render_template("done.html", total=len(order))
        return render_template(
            "read.html",
            case_id=pending[0],
            views=views,
            number=len(done) + 1,
            answered=len(done),
            total=len(order),
            labels=list(LABELS),
            grades=AMYLOIDOSIS_GRADES,
            confidence=CONFIDENCE,
            error=request.args.get("error"),
        )

    @app.get("/image/<case_id>/<view>.png")
    def image(case_id: str, view: str) -> Response:
        current_reader()
        if case_id not in cases or view not in views:
            abort(404)
        data = (root / IMAGE_DIR / case_id / f"{view}.png").read_bytes()
        return Response(data, mimetype="image/png")

    @app.post("/answer")
    def answer() -> Any:
        reader = current_reader()
        check_csrf()
        form = request.form
        case_id = form.get("case_id", "")
        if case_id not in cases:
            abort(404)
        try:
            call = form["call"]
            confidence = int(form["confidence"])
            diagnosis = form["diagnosis"]
            grade = int(form["grade"]) if diagnosis == "amyloidosis" else None
        except (KeyError, ValueError):
            return redirect(url_for("read", error="Answer every question before going on."))
        if call not in CALLS or confidence not in CONFIDENCE or diagnosis not in LABELS:
            abort(400, "Invalid answer.")
        if grade is not None and grade not in AMYLOIDOSIS_GRADES:
            abort(400, "Invalid grade.")
        stored = store.add(Answer(reader, case_id, call, confidence, diagnosis, grade))
        if not stored:
            return render_template("already.html"), 409
        return redirect(url_for("read"))

    @app.get("/admin")
    def admin() -> Any:
        if session.get("reader") != ADMIN:
            abort(403, "Sign in with the admin token first.")
        progress = store.progress()
        rows = [
            {
                "reader": reader,
                "answered": progress.get(reader, (0, ""))[0],
                "total": len(order),
                "last": progress.get(reader, (0, ""))[1],
            }
            for reader, order in orders.items()
        ]
        return render_template("admin.html", rows=rows)

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def error(error: Any) -> Any:
        return render_template("error.html", error=error), error.code

    return app


def serve(study_root: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the reading server until interrupted (werkzeug's threaded server; fine for a reading room)."""
    app = create_app(study_root)
    server = make_server(host, port, app, threaded=True)
    log.info("serving %s on http://%s:%d", study_root, host, server.server_port)
    server.serve_forever()
