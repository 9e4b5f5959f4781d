"""Structured logs, one JSON object per line: security events and one line per request,
both with the request id. The root handler this module installs writes everything else
(Flask's and libraries' messages, tracebacks) as JSON lines too.

Values are JSON-encoded, so a newline in a user's name cannot forge a second line. Never
pass secrets (passwords, tokens, codes) or ballot choices; request lines carry the path
without its query string and never a form body."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime

from flask import g, has_request_context, request
from sqlalchemy import inspect

logger = logging.getLogger("yishi.security")
request_logger = logging.getLogger("yishi.requests")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def security_event(event: str, **fields) -> None:
    record = {"ts": _now(), "event": event}
    if has_request_context():
        record["request_id"] = g.get("request_id")
        record["ip"] = request.remote_addr
        user_id = g.get("user_id")
        if user_id is not None:
            record["user_id"] = user_id
    record.update(fields)
    logger.info(json.dumps(record, ensure_ascii=True, default=str, sort_keys=True))


def _acting_user_id() -> int | None:
    """The member of the request: as loaded before the view, else (a login) as logged in
    by it. Never a query: an expired member object is read from its identity key."""
    user_id = g.get("user_id")
    if user_id is not None:
        return user_id
    user = g.get("_login_user")
    if user is None or user.is_anonymous:
        return None
    identity = inspect(user, raiseerr=False)
    key = identity.identity if identity is not None else None
    return key[0] if key else None


def request_line(status: int) -> str:
    started = g.get("request_started")
    duration_ms = (time.perf_counter() - started) * 1000 if started is not None else None
    rule = request.url_rule
    record = {
        "ts": _now(),
        "event": "request",
        "request_id": g.get("request_id"),
        "user_id": _acting_user_id(),
        "ip": request.remote_addr,
        "method": request.method,
        "route": rule.rule if rule is not None else None,
        "path": request.path,
        "status": status,
        "duration_ms": round(duration_ms, 2) if duration_ms is not None else None,
        "pid": os.getpid(),
    }
    return json.dumps(record, ensure_ascii=True, default=str)


def register_request_log(app) -> None:
    """One `yishi.requests` line per answered request (errors included)."""

    @app.after_request
    def _log_request(response):
        if request_logger.isEnabledFor(logging.INFO):
            request_logger.info(request_line(response.status_code))
        return response


class JsonLinesFormatter(logging.Formatter):
    """Our loggers' messages are JSON objects already and pass unchanged; any other record
    becomes one (with its traceback as a field), so that every line is one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name.startswith("yishi.") and message.startswith("{") and not record.exc_info:
            return message
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if has_request_context():
            entry["request_id"] = g.get("request_id")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure_logging(app) -> None:
    # Our loggers propagate to the root logger (where test capture and any deployment
    # logging config see them); give the root a JSON-lines handler when nobody configured
    # one, on stderr, or stdout with LOG_STREAM=stdout (`make serve-prod`).
    root = logging.getLogger()
    if not root.handlers:
        stream = sys.stdout if app.config.get("LOG_STREAM") == "stdout" else sys.stderr
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLinesFormatter())
        root.addHandler(handler)
    for yishi_logger in (logger, request_logger):
        yishi_logger.setLevel(logging.INFO)
        yishi_logger.propagate = True
