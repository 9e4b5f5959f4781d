"""E-mail copies of notifications: written to the log without SMTP settings, sent once."""

import logging
from datetime import UTC, datetime

from deliberation import services
from deliberation.models import Notification
from web.scheduler import run_all_due


def test_notifications_are_mailed_once_to_members_with_an_address(
    app, db, make_community, make_member, caplog
):
    caplog.set_level(logging.INFO, logger="yishi.mail")
    compound = make_community("Sunny Garden")
    author = make_member(compound, contact="li.ayi@example.org", locale="en")
    replier = make_member(compound)  # registered with a phone number only
    proposal = services.submit_proposal(
        author,
        compound,
        services.ProposalDraft("Benches by the gate", "Two benches.", "facilities"),
        publish=True,
    )
    comment = services.post_comment(author, proposal, "Where exactly?", "question")
    services.post_comment(replier, proposal, "By the north gate.", "neutral", comment)
    services.post_comment(
        author, proposal, "Thanks!", "neutral", services.latest_comment_by(replier, proposal)
    )
    db.session.commit()

    first = run_all_due(app, datetime.now(UTC))
    second = run_all_due(app, datetime.now(UTC))

    assert first["email_notifications"] == 1  # the replier has no address
    assert second["email_notifications"] == 0
    mails = [r.getMessage() for r in caplog.records if r.name == "yishi.mail"]
    assert len(mails) == 1
    assert "Benches by the gate" in mails[0] and f"/p/{proposal.id}" in mails[0]
    assert "li.ayi@example.org" not in mails[0]  # no addresses in the logs
    db.session.commit()
    assert db.session.query(Notification).filter(Notification.emailed_at.is_not(None)).count() == 1
