"""Limits on writing: a member (or one address) posting faster than people discuss is
slowed down with a 429. Counters live in the limiter's storage (Redis when shared)."""

from __future__ import annotations

from flask import current_app, request
from limits import parse_many

from web.extensions import limiter
from web.logs import security_event


def allow_write(member_id: int, kind: str) -> bool:
    """Count one write of `kind` by this member from this address; False when over."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return True
    rate = limiter.limiter
    checks = [
        (item, f"write-{kind}-member", str(member_id))
        for item in parse_many(config["WRITE_LIMIT_PER_MEMBER"])
    ] + [
        (item, "write-address", request.remote_addr or "?")
        for item in parse_many(config["WRITE_LIMIT_PER_ADDRESS"])
    ]
    if any(not rate.test(item, scope, key) for item, scope, key in checks):
        security_event("write_limited", kind=kind, member_id=member_id)
        return False
    for item, scope, key in checks:
        rate.hit(item, scope, key)
    return True
