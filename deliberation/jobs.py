"""Scheduled sweeps of deliberation: each a thin call into services."""

from __future__ import annotations

from datetime import datetime

from deliberation import implementation, mail, services
from web.scheduler import register_sweep


@register_sweep("expire_proposals", every_seconds=60)
def expire_proposals(now: datetime) -> int:
    """Proposals whose support window ended without enough support expire (exactly once)."""
    return services.expire_due_proposals(now)


@register_sweep("email_notifications", every_seconds=30)
def email_notifications(now: datetime) -> int:
    """E-mail copies of new notifications to members with an address (or the log)."""
    return mail.send_notification_emails(now)


@register_sweep("remind_overdue_milestones", every_seconds=600)
def remind_overdue_milestones(now: datetime) -> int:
    """One reminder per milestone whose target date passed without it being reached."""
    return implementation.remind_overdue_milestones(now)


@register_sweep("mark_stale_implementations", every_seconds=3600)
def mark_stale_implementations(now: datetime) -> int:
    """Active work without an update for 30 days is marked stale on its page and board."""
    return implementation.mark_stale(now)


@register_sweep("monthly_digests", every_seconds=3600)
def monthly_digests(now: datetime) -> int:
    """Each month, one digest notification per member of a community with decisions."""
    return implementation.send_monthly_digests(now)
