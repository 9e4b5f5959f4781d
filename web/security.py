"""Per-request guards and headers: request ids, input hygiene, security headers."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl

from flask import abort, g, request

from web.database import write_intent
from web.logs import security_event

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _has_forbidden_characters(value: str) -> bool:
    # NUL cannot be stored in PostgreSQL text; lone surrogates cannot be encoded at all;
    # U+FFFD is what undecodable bytes became on the way in.
    if "\x00" in value or "\ufffd" in value:
        return True
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def _strictly_decodable(raw: bytes, max_fields: int) -> bool:
    """Werkzeug keeps undecodable percent-escapes as literal text (or drops the field);
    we refuse such input outright, and count fields of urlencoded bodies too."""
    try:
        parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def check_raw_input(app) -> None:
    """Runs before anything reads the form (CSRF included)."""
    max_parts = app.config["MAX_FORM_PARTS"]
    if request.query_string and not _strictly_decodable(request.query_string, max_parts):
        security_event("bad_input", path=request.path, reason="undecodable query string")
        abort(400)
    if request.method in SAFE_METHODS:
        return
    if request.mimetype == "application/x-www-form-urlencoded":
        limit = app.config["MAX_FORM_MEMORY_SIZE"]
        if request.content_length is not None and request.content_length > limit:
            abort(413)
        raw = request.get_data(cache=True, parse_form_data=False)
        if len(raw) > limit:
            abort(413)
        try:
            ok = _strictly_decodable(raw, max_parts)
        except ValueError:
            ok = False
        if not ok:
            # Too many fields is a size problem; bad bytes are a format problem.
            if raw.count(b"&") + 1 > max_parts:
                abort(413)
            security_event("bad_input", path=request.path, reason="undecodable form")
            abort(400)


def register_request_guards(app) -> None:
    @app.before_request
    def _start_request():
        g.request_started = time.perf_counter()
        g.request_id = secrets.token_hex(8)
        check_raw_input(app)
        # GET never changes state, so it needs no write lock on SQLite.
        view = app.view_functions.get(request.endpoint)
        writes_at_once = request.method not in SAFE_METHODS and not getattr(
            view, "reads_first", False
        )
        g.write_intent_token = write_intent.set(writes_at_once)
        values = list(request.args.items(multi=True))
        if request.method not in SAFE_METHODS and request.mimetype in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            values += list(request.form.items(multi=True))
        for key, value in values:
            if _has_forbidden_characters(key) or _has_forbidden_characters(value):
                security_event("bad_input", path=request.path, reason="forbidden characters")
                abort(400)

    @app.teardown_request
    def _end_request(_exc):
        token = g.pop("write_intent_token", None)
        if token is not None:
            write_intent.reset(token)

    defaults = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]

    @app.after_request
    def _headers(response):
        headers = response.headers
        # What a view did not set itself, in one pass over the headers.
        present = {key.lower() for key in headers.keys()}  # noqa: SIM118  (a method of Headers)
        wanted = defaults
        if app.config.get("SESSION_COOKIE_SECURE"):
            wanted = [*defaults, ("Strict-Transport-Security", "max-age=31536000")]
        headers.extend((key, value) for key, value in wanted if key.lower() not in present)
        if g.get("request_id"):
            headers["X-Request-Id"] = g.request_id
        # Pages depend on the session and language: never cache them in shared caches.
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
            headers.add("Vary", "Cookie")
        return response
