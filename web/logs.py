"""Structured (JSON lines) logs for security events: one line each, with the request id.

Values are JSON-encoded, so a newline in a user's name cannot forge a second line. Never
pass secrets (passwords, tokens, codes) or ballot choices."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from flask import g, has_request_context, request

logger = logging.getLogger("yishi.security")


def security_event(event: str, **fields) -> None:
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
    if has_request_context():
        record["request_id"] = g.get("request_id")
        record["ip"] = request.remote_addr
        user_id = g.get("user_id")
        if user_id is not None:
            record["user_id"] = user_id
    record.update(fields)
    logger.info(json.dumps(record, ensure_ascii=True, default=str, sort_keys=True))


def configure_logging(app) -> None:
    # Security events propagate to the root logger (where test capture and any deployment
    # logging config see them); give the root a plain handler when nobody configured one.
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = True
