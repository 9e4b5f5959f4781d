"""Scheduled sweeps of deliberation: each a thin call into services."""

from __future__ import annotations

from datetime import datetime

from deliberation import mail, services
from web.scheduler import register_sweep


@register_sweep("expire_proposals", every_seconds=60)
def expire_proposals(now: datetime) -> int:
    """Proposals whose support window ended without enough support expire (exactly once)."""
    return services.expire_due_proposals(now)


@register_sweep("email_notifications", every_seconds=30)
def email_notifications(now: datetime) -> int:
    """E-mail copies of new notifications to members with an address (or the log)."""
    return mail.send_notification_emails(now)
