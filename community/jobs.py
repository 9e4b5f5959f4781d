"""Scheduled sweeps of the community package: each a thin call into its services."""

from __future__ import annotations

from datetime import datetime

from community import audit
from web.scheduler import register_sweep


@register_sweep("sign_audit_head", every_seconds=600)
def sign_audit_head(now: datetime) -> int:
    """Once a day (UTC), the site key signs the audit log's head."""
    return audit.sign_daily_head(now)
