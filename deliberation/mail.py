"""E-mail copies of notifications, for members who registered with an e-mail address.

Optional: with MAIL_SERVER set, messages go out over SMTP; without it (development) each
message is written to the log instead. A sweep claims each notification with a
conditional update before sending, so several processes never send one twice."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update

from community.models import User
from deliberation.models import Notification
from web.extensions import db

logger = logging.getLogger("yishi.mail")
FRESH_FOR = timedelta(days=2)  # older notifications are not mailed after a long outage
BATCH = 200


def _message(notification: Notification) -> EmailMessage:
    from deliberation.views import notification_text

    user = notification.user
    with force_locale(user.locale or "zh"):
        subject = _("Yishi: %(what)s", what=notification_text(notification.kind).rstrip(":："))
        lines = [notification_text(notification.kind)]
        if notification.proposal is not None:
            lines.append(notification.proposal.title)
            lines.append(_external_url(notification))
        elif notification.url:
            base = current_app.config.get("SITE_URL", "http://127.0.0.1:5000").rstrip("/")
            lines += [notification.subject or "", base + notification.url]
        lines += ["", _("You can read all your notifications on the site.")]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = user.email
    message.set_content("\n".join(lines))
    return message


def _external_url(notification: Notification) -> str:
    base = current_app.config.get("SITE_URL", "http://127.0.0.1:5000").rstrip("/")
    with current_app.test_request_context(base_url=base):
        return url_for(
            "deliberation.proposal_page", proposal_id=notification.proposal_id, _external=True
        )


def send_notification_emails(now: datetime) -> int:
    due = db.session.scalars(
        select(Notification)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.emailed_at.is_(None),
            Notification.read_at.is_(None),
            Notification.created_at >= now - FRESH_FOR,
            User.email.is_not(None),
            User.is_active,
        )
        .order_by(Notification.id)
        .limit(BATCH)
    ).all()
    sent = 0
    for notification in due:
        claimed = db.session.execute(
            update(Notification)
            .where(Notification.id == notification.id, Notification.emailed_at.is_(None))
            .values(emailed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            continue
        _deliver(_message(notification), notification.user_id)
        sent += 1
    return sent


def _deliver(message: EmailMessage, user_id: int) -> None:
    server = current_app.config.get("MAIL_SERVER")
    if not server:
        # Development: the message goes to the log (the address is not logged).
        logger.info(
            "e-mail to member %s\n%s\n\n%s", user_id, message["Subject"], message.get_content()
        )
        return
    port = int(current_app.config.get("MAIL_PORT", 587))
    with smtplib.SMTP(server, port, timeout=10) as smtp:
        if current_app.config.get("MAIL_USE_TLS", True):
            smtp.starttls()
        if current_app.config.get("MAIL_USERNAME"):
            smtp.login(current_app.config["MAIL_USERNAME"], current_app.config["MAIL_PASSWORD"])
        smtp.send_message(message)
