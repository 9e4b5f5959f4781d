"""Notifications: a reply to you, enough support, expiry, a status change of a proposal you
follow and moderation of your content; the unread count in the header, marking all read,
and unfollowing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from deliberation import services
from deliberation.models import Notification
from tests.conftest import post_form
from tests.deliberation.test_proposals import (
    XSS_TITLE,
    assert_inert,
    build_compound,
    count,
    page,
    propose,
    require_support,
)
from web.extensions import db
from web.scheduler import run_all_due


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


@pytest.fixture
def proposal(db, compound, make_member):
    require_support(compound, 10)
    return propose(make_member(compound), compound, title="Repair the lamp at gate 2")


def kinds(user) -> list[str]:
    db.session.commit()
    return list(
        db.session.scalars(
            select(Notification.kind).where(Notification.user_id == user.id).order_by("id")
        )
    )


def unread_badge(html: str) -> str | None:
    marker = 'unread">'
    if marker not in html:
        return None
    return html.split(marker, 1)[1].split("<", 1)[0]


def follow_as(client, proposal, action: str = "follow"):
    path = f"/p/{proposal.id}"
    return post_form(client, f"{path}/follow", {"action": action}, token_from=path)


def test_a_reply_to_your_comment_notifies_you(db, compound, proposal, make_member, login_as):
    writer, replier = make_member(compound), make_member(compound)
    first = services.post_comment(writer, proposal, "Which lamp?", "question")
    services.post_comment(writer, proposal, "Answering myself.", "neutral", first)
    db.session.commit()
    assert kinds(writer) == []

    client = login_as(replier)
    path = f"/p/{proposal.id}"
    data = {"stance": "neutral", "body": "An LED one.", "parent_id": str(first.id)}
    assert post_form(client, f"{path}/comments", data, token_from=path).status_code == 302
    assert kinds(writer) == ["reply"]
    reply = db.session.scalar(
        select(Notification.comment_id).where(Notification.user_id == writer.id)
    )

    reader = login_as(writer)
    home = page(reader, "/")
    assert unread_badge(home) == "1" and 'aria-label="1 unread"' in home
    text = page(reader, "/notifications")
    assert "Someone replied to your comment on" in text and "Repair the lamp at gate 2" in text
    assert f'href="/p/{proposal.id}#comment-{reply}"' in text
    assert unread_badge(page(client, "/")) is None  # the replier got nothing


def test_enough_support_and_expiry_notify_author_and_followers(
    app, db, compound, make_member, login_as
):
    require_support(compound, 1)
    author = make_member(compound)
    reached = propose(author, compound, title="Popular idea")
    services.support(make_member(compound), reached)
    db.session.commit()
    require_support(compound, 5)
    lonely = propose(author, compound, title="Lonely idea")
    follower = make_member(compound)
    follow_as(login_as(follower), lonely)

    with time_machine.travel(lonely.support_deadline + timedelta(minutes=1), tick=False):
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 1
        author_view = page(login_as(author), "/notifications")
        follower_view = page(login_as(follower), "/notifications")
    assert "Enough support: now in deliberation:" in author_view and "Popular idea" in author_view
    assert "Support collection ended without enough support:" in author_view
    assert "Lonely idea" in follower_view and "Popular idea" not in follower_view
    assert sorted(kinds(author)) == ["expired", "threshold_reached"]


def test_a_status_change_notifies_followers_but_not_the_one_who_made_it(
    db, compound, make_member, login_as
):
    require_support(compound, 1)
    author = make_member(compound)
    proposal = propose(author, compound)
    supporter = make_member(compound)
    services.support(supporter, proposal)  # supporters follow automatically
    db.session.commit()
    committee = make_member(compound, role="committee")
    follow_as(login_as(committee), proposal)
    bystander = make_member(compound)

    client = login_as(committee)
    path = f"/p/{proposal.id}"
    assert post_form(client, f"{path}/schedule", {}, token_from=path).status_code == 302
    assert kinds(supporter) == ["threshold_reached", "status_changed"]
    assert kinds(author) == ["threshold_reached", "status_changed"]
    assert kinds(committee) == [] and kinds(bystander) == []
    assert "The status changed:" in page(login_as(supporter), "/notifications")

    data = {"reason": "Merged into the lighting plan."}
    assert post_form(client, f"{path}/close", data, token_from=path).status_code == 302
    assert kinds(supporter)[-1] == "status_changed" and len(kinds(supporter)) == 3


def test_moderation_of_your_content_notifies_you(db, compound, proposal, make_member, login_as):
    moderator = make_member(compound, role="moderator")
    writer = make_member(compound)
    words = services.post_comment(writer, proposal, "Rude words.", "against")
    db.session.commit()
    services.hide_comment(moderator, words, "Rude")
    services.hide_proposal(moderator, proposal, "Duplicate")
    db.session.commit()
    assert kinds(writer) == ["moderated"]
    assert kinds(proposal.author) == ["moderated"]
    text = page(login_as(writer), "/notifications")
    assert "The neighborhood committee moderated your content on" in text

    membership = next(m for m in writer.memberships if m.community_id == compound.id)
    services.suspend_member(moderator, membership, 3, "Repeated rudeness")
    db.session.commit()
    assert kinds(writer)[-1] == "suspended"
    assert "You were suspended from writing" in page(login_as(writer), "/notifications")


def test_mark_all_read_clears_the_count_for_me_only(db, compound, proposal, make_member, login_as):
    writer, other = make_member(compound), make_member(compound)
    for who in (writer, other):
        words = services.post_comment(who, proposal, "Question?", "question")
        services.post_comment(make_member(compound), proposal, "Answer.", "neutral", words)
        services.post_comment(make_member(compound), proposal, "Another.", "neutral", words)
    db.session.commit()
    client = login_as(writer)
    assert unread_badge(page(client, "/notifications")) == "2"
    response = post_form(client, "/notifications/read", {}, token_from="/notifications")
    assert response.status_code == 302
    text = page(client, "/notifications")
    assert unread_badge(text) is None and "Someone replied" in text  # kept, read
    assert count(Notification, Notification.read_at.is_(None)) == 2  # the other's
    assert unread_badge(page(login_as(other), "/")) == "2"


def test_unfollowing_stops_notifications(db, compound, make_member, login_as):
    require_support(compound, 1)
    proposal = propose(make_member(compound), compound)
    supporter = make_member(compound)
    client = login_as(supporter)
    path = f"/p/{proposal.id}"
    assert "Follow updates" in page(client, path)
    assert post_form(client, f"{path}/support", {}, token_from=path).status_code == 302
    assert "Stop following" in page(client, path)
    assert follow_as(client, proposal, "unfollow").status_code == 302
    assert "Follow updates" in page(client, path)
    # Taking part again does not follow again behind the member's back.
    data = {"stance": "for", "body": "Still support it."}
    assert post_form(client, f"{path}/comments", data, token_from=path).status_code == 302

    committee = make_member(compound, role="committee")
    services.schedule_for_vote(committee, proposal)
    db.session.commit()
    assert "status_changed" not in kinds(supporter)

    follow_as(client, proposal, "follow")
    services.close_proposal(committee, proposal, "Done differently")
    db.session.commit()
    assert kinds(supporter)[-1] == "status_changed"


def test_notification_titles_are_escaped(db, compound, make_member, login_as):
    require_support(compound, 1)
    author = make_member(compound)
    proposal = propose(author, compound, title=XSS_TITLE)
    services.support(make_member(compound), proposal)
    db.session.commit()
    text = page(login_as(author), "/notifications")
    assert_inert(text, "notifications")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
