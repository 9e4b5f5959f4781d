"""Transparent moderation: reports, the moderators' queue, hiding and restoring with a
public reason (a tombstone stays), locking a discussion, suspending a member from writing,
dismissing a report, and the public moderation log. Nothing is ever deleted; moderators
cannot moderate their own content (RELIABILITY.md T29, T36 for the queue and the log)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from flask_babel import force_locale, format_datetime
from sqlalchemy import select

from community.models import Membership
from deliberation import services
from deliberation.models import Comment, ModerationEntry, Proposal, Report, Support
from tests.conftest import post_form
from tests.deliberation.test_proposals import (
    BIDI,
    XSS,
    XSS_TITLE,
    assert_inert,
    build_compound,
    count,
    fresh,
    page,
    propose,
    require_support,
)
from web.extensions import db

HIDDEN = "Hidden by the neighborhood committee: "


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


@pytest.fixture
def proposal(db, compound, make_member):
    require_support(compound, 10)
    return propose(
        make_member(compound, name="Author Zhang"),
        compound,
        title="Repair the lamp at gate 2",
        body="Call 13800000000 for the *secret* key.",
    )


@pytest.fixture
def moderator(compound, make_member):
    return make_member(compound, role="moderator", name="Moderator Chen")


def membership(user, community) -> Membership:
    db.session.commit()
    return db.session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


def report_as(client, proposal, reason: str, comment=None):
    path = f"/comments/{comment.id}/report" if comment else f"/p/{proposal.id}/report"
    return post_form(client, path, {"reason": reason}, token_from=path)


def moderate_as(client, target, action: str, reason: str):
    kind = "comments" if isinstance(target, Comment) else "p"
    path = f"/{kind}/{target.id}/{action}"
    return post_form(client, path, {"reason": reason}, token_from="/")


def comment(author, proposal, body: str, stance: str = "neutral", parent=None) -> Comment:
    written = services.post_comment(author, proposal, body, stance, parent)
    db.session.commit()
    return written


# ---------------------------------------------------------------- reports and the queue


def test_member_reports_a_proposal_and_moderators_see_it_queued(
    db, compound, proposal, moderator, make_member, login_as
):
    reporter = make_member(compound, name="Careful Neighbour")
    client = login_as(reporter)
    assert 'name="reason"' in page(client, f"/p/{proposal.id}/report")
    response = report_as(client, proposal, "It shows a private phone number.")
    assert response.status_code == 302
    assert "will look at your report" in page(client, f"/p/{proposal.id}")

    queue = page(login_as(moderator), f"/c/{compound.id}/moderation")
    assert "Repair the lamp at gate 2" in queue and "It shows a private phone number." in queue
    assert "Reported by Careful Neighbour:" in queue
    assert client.get(f"/c/{compound.id}/moderation").status_code == 403
    community_page = page(login_as(moderator), f"/c/{compound.id}")
    assert f"/c/{compound.id}/moderation" in community_page


def test_member_reports_a_comment_and_the_queue_quotes_it(
    db, compound, proposal, moderator, make_member, login_as
):
    rude = comment(make_member(compound), proposal, "You are all idiots.", "against")
    client = login_as(make_member(compound))
    assert report_as(client, proposal, "Insult.", comment=rude).status_code == 302
    queue = page(login_as(moderator), f"/c/{compound.id}/moderation")
    assert "Comment on" in queue and "You are all idiots." in queue and "Insult." in queue
    assert f'href="/p/{proposal.id}#comment-{rude.id}"' in queue


def test_a_report_needs_a_reason(db, compound, proposal, make_member, login_as):
    response = report_as(login_as(make_member(compound)), proposal, "   ")
    assert response.status_code == 400
    assert count(Report) == 0


# ---------------------------------------------------------------- hide and restore


def test_moderator_hides_a_proposal_and_a_tombstone_with_the_reason_stays(
    db, compound, proposal, moderator, make_member, login_as
):
    services.report(make_member(compound), proposal, "Private phone number")
    db.session.commit()
    mod = login_as(moderator)
    reason = "It published a private phone number."
    assert moderate_as(mod, proposal, "hide", reason).status_code == 302

    resident = login_as(make_member(compound))
    text = page(resident, f"/p/{proposal.id}")
    assert HIDDEN + reason in text
    assert "13800000000" not in text and "<em>secret</em>" not in text
    assert "I support this" not in text
    assert HIDDEN + reason in page(resident, f"/c/{compound.id}/proposals")
    own = page(login_as(proposal.author), f"/p/{proposal.id}")
    assert HIDDEN + reason in own and "13800000000" in own  # the author still sees it

    assert "No reports are waiting." in page(mod, f"/c/{compound.id}/moderation")
    report = db.session.scalar(select(Report))
    assert (report.resolution, report.resolved_by_id) == ("hidden", moderator.id)
    hidden = fresh(proposal)
    assert hidden.hidden_reason == reason and hidden.body.startswith("Call 13800000000")
    support = post_form(resident, f"/p/{proposal.id}/support", {}, token_from="/")
    assert support.status_code == 409 and count(Support) == 0
    assert moderate_as(mod, proposal, "hide", "Again").status_code == 409


def test_moderator_restores_a_hidden_proposal_with_a_reason(
    db, compound, proposal, moderator, make_member, login_as
):
    mod = login_as(moderator)
    moderate_as(mod, proposal, "hide", "Looked like advertising.")
    assert "Restore the proposal" in page(mod, f"/p/{proposal.id}")
    assert moderate_as(mod, proposal, "restore", "It is a real proposal.").status_code == 302
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert HIDDEN not in text and "13800000000" in text
    log = page(login_as(make_member(compound)), f"/c/{compound.id}/moderation-log")
    assert "Looked like advertising." in log and "It is a real proposal." in log
    assert log.index("It is a real proposal.") < log.index("Looked like advertising.")


def test_moderator_hides_a_comment_and_replies_keep_their_place(
    db, compound, proposal, moderator, make_member, login_as
):
    rude = comment(make_member(compound), proposal, "You are all idiots.", "against")
    comment(make_member(compound), proposal, "Please stay polite.", "neutral", parent=rude)
    assert moderate_as(login_as(moderator), rude, "hide", "Insults a neighbour.").status_code == 302

    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "You are all idiots." not in text
    assert text.index(HIDDEN + "Insults a neighbour.") < text.index("Please stay polite.")
    assert "Against: 0" in text
    assert fresh(rude).body == "You are all idiots."  # kept for the record
    assert count(Comment) == 2


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, f"Spam {BIDI}"])
def test_hiding_needs_a_short_plain_public_reason(
    db, compound, proposal, moderator, login_as, reason
):
    response = moderate_as(login_as(moderator), proposal, "hide", reason)
    assert response.status_code == 400
    assert fresh(proposal).hidden_at is None
    assert count(ModerationEntry) == 0


# ---------------------------------------------------------------- locking


def test_locked_discussion_refuses_posts_until_unlocked(
    db, compound, proposal, moderator, make_member, login_as
):
    member = make_member(compound)
    earlier = comment(member, proposal, "Posted before the lock.", "for")
    client = login_as(member)
    mod = login_as(moderator)
    assert moderate_as(mod, proposal, "lock", "Heated; cooling off for a day.").status_code == 302

    text = page(client, f"/p/{proposal.id}")
    assert "The discussion is locked by the neighborhood committee." in text
    assert 'id="new-comment"' not in text
    path = f"/p/{proposal.id}"
    refused = post_form(
        client, f"{path}/comments", {"stance": "for", "body": "Let me in"}, token_from=path
    )
    assert refused.status_code == 409
    assert "The discussion is locked" in refused.get_data(as_text=True)
    edit = post_form(client, f"/comments/{earlier.id}/edit", {"body": "Changed"}, token_from="/")
    assert edit.status_code == 409
    assert count(Comment) == 1 and fresh(earlier).body == "Posted before the lock."
    assert moderate_as(mod, proposal, "lock", "Twice").status_code == 409

    assert moderate_as(mod, proposal, "unlock", "Calm again.").status_code == 302
    allowed = post_form(
        client, f"{path}/comments", {"stance": "for", "body": "Thanks"}, token_from=path
    )
    assert allowed.status_code == 302
    log = page(client, f"/c/{compound.id}/moderation-log")
    assert "locked the discussion" in log and "unlocked the discussion" in log


# ---------------------------------------------------------------- suspension


def test_suspended_member_can_read_but_not_write(
    db, compound, proposal, moderator, make_member, login_as
):
    troll = make_member(compound, name="Noisy Neighbour")
    target = membership(troll, compound)
    mod = login_as(moderator)
    path = f"/c/{compound.id}/members/{target.id}/suspend"
    assert "Suspend Noisy Neighbour from writing" in page(mod, path)
    response = post_form(mod, path, {"days": "7", "reason": "Repeated insults."}, token_from=path)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/c/{compound.id}/moderation-log")
    until = membership(troll, compound).suspended_until
    assert timedelta(days=6, hours=23) < until - fresh(proposal).created_at < timedelta(days=8)

    earlier = comment(make_member(compound), proposal, "Someone else's words.", "for")
    client = login_as(troll)
    assert "Repair the lamp at gate 2" in page(client, f"/p/{proposal.id}")
    assert "Repair the lamp at gate 2" in page(client, f"/c/{compound.id}/proposals")
    pid = proposal.id
    attempts = {
        "propose": post_form(
            client,
            f"/c/{compound.id}/proposals/new",
            {"title": "Mine", "body": "Words", "category": "other", "action": "publish"},
            token_from="/",
        ),
        "support": post_form(client, f"/p/{pid}/support", {}, token_from="/"),
        "comment": post_form(
            client, f"/p/{pid}/comments", {"stance": "for", "body": "Hi"}, token_from="/"
        ),
        "helpful": post_form(client, f"/comments/{earlier.id}/helpful", {}, token_from="/"),
    }
    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 403)
    assert count(Proposal) == 1 and count(Support) == 0 and count(Comment) == 1
    assert fresh(earlier).helpful_count == 0
    log = page(client, f"/c/{compound.id}/moderation-log")
    assert "suspended from writing" in log and "Noisy Neighbour" in log
    assert "Repeated insults." in log

    with time_machine.travel(until + timedelta(minutes=1), tick=False):
        later = login_as(troll)
        path = f"/p/{pid}"
        back = post_form(later, f"{path}/support", {}, token_from=path)
    assert back.status_code == 302 and count(Support) == 1


@pytest.mark.parametrize("days", ["0", "366", "seven"])
def test_a_suspension_lasts_between_1_and_365_days(
    db, compound, moderator, make_member, login_as, days
):
    target = membership(make_member(compound), compound)
    path = f"/c/{compound.id}/members/{target.id}/suspend"
    response = post_form(
        login_as(moderator), path, {"days": days, "reason": "Spam"}, token_from=path
    )
    assert response.status_code == 400
    assert membership(target.user, compound).suspended_until is None


def test_a_member_of_another_community_cannot_be_suspended_here(
    db, compound, moderator, make_member, make_community, login_as
):
    outsider = make_member(make_community("Maple Court"))
    foreign = membership(outsider, outsider.memberships[0].community)
    path = f"/c/{compound.id}/members/{foreign.id}/suspend"
    response = post_form(login_as(moderator), path, {"days": "3", "reason": "x"}, token_from="/")
    assert response.status_code == 404
    assert membership(outsider, foreign.community).suspended_until is None


# ---------------------------------------------------------------- dismissing


def test_moderator_dismisses_a_report_and_the_content_stays(
    db, compound, proposal, moderator, make_member, login_as
):
    services.report(make_member(compound), proposal, "I just do not like it.")
    db.session.commit()
    report = db.session.scalar(select(Report))
    mod = login_as(moderator)
    response = post_form(
        mod, f"/reports/{report.id}/dismiss", {"reason": "Disagreement is not abuse."}, "/"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/c/{compound.id}/moderation")
    assert "No reports are waiting." in page(mod, f"/c/{compound.id}/moderation")
    report = fresh(report)
    assert (report.resolution, report.resolved_by_id) == ("dismissed", moderator.id)
    assert fresh(proposal).hidden_at is None
    log = page(login_as(make_member(compound)), f"/c/{compound.id}/moderation-log")
    assert "kept visible after a report" in log and "Disagreement is not abuse." in log

    again = post_form(mod, f"/reports/{report.id}/dismiss", {"reason": "Twice"}, "/")
    assert again.status_code == 409
    assert post_form(mod, "/reports/999999/dismiss", {"reason": "x"}, "/").status_code == 404


def test_moderation_deletes_nothing(db, compound, proposal, moderator, make_member):
    member = make_member(compound)
    words = comment(member, proposal, "Borderline words.", "against")
    services.report(member, proposal, "Check it", comment=words)
    services.report(member, proposal, "Check this too")
    db.session.commit()
    for step in (
        lambda: services.hide_comment(moderator, words, "Borderline"),
        lambda: services.restore_comment(moderator, words, "On reflection fine"),
        lambda: services.hide_proposal(moderator, proposal, "Duplicate"),
        lambda: services.restore_proposal(moderator, proposal, "Not a duplicate"),
        lambda: services.set_locked(moderator, proposal, True, "Pause"),
    ):
        step()
        db.session.commit()
    assert (count(Proposal), count(Comment), count(Report)) == (1, 1, 2)
    assert count(ModerationEntry) == 5
    assert fresh(words).body == "Borderline words." and fresh(proposal).hidden_at is None


# ---------------------------------------------------------------- the public log


def test_public_log_shows_who_what_when_and_why_to_members(
    app, db, compound, proposal, moderator, make_member, make_user, make_community, login_as
):
    services.hide_proposal(moderator, proposal, "Private phone number shown.")
    db.session.commit()
    entry = db.session.scalar(select(ModerationEntry))
    with app.test_request_context(), force_locale("en"):
        when = format_datetime(entry.created_at, "short")  # as the members' pages show it
    for reader in (
        make_member(compound),
        make_member(compound.parent),  # a member of the community above
        make_member(make_community("Building 3", kind="building", parent=compound)),
    ):
        log = page(login_as(reader), f"/c/{compound.id}/moderation-log")
        assert "Moderator Chen" in log and "hid" in log
        assert "Repair the lamp at gate 2" in log and "Private phone number shown." in log
        assert f"<td>{when}</td>" in log
    outsider = login_as(make_member(make_community("Maple Court")))
    assert outsider.get(f"/c/{compound.id}/moderation-log").status_code == 403
    assert login_as(make_user()).get(f"/c/{compound.id}/moderation-log").status_code == 403


# ---------------------------------------------------------------- not one's own content


def test_moderator_cannot_moderate_their_own_content(
    db, compound, moderator, make_member, login_as
):
    require_support(compound, 10)
    own = propose(moderator, compound, title="Moderator's own idea")
    own_comment = comment(moderator, own, "My own words.", "for")
    services.report(make_member(compound), own, "Self-serving")
    services.report(make_member(compound), own, "Rude", comment=own_comment)
    db.session.commit()
    reports = db.session.scalars(select(Report).order_by(Report.id)).all()
    mod = login_as(moderator)
    outcomes = {
        "hide proposal": moderate_as(mod, own, "hide", "x").status_code,
        "hide comment": moderate_as(mod, own_comment, "hide", "x").status_code,
        "lock": moderate_as(mod, own, "lock", "x").status_code,
    }
    for report in reports:  # keeping one's own content visible is moderating it too
        dismiss = f"/reports/{report.id}/dismiss"
        outcomes[dismiss] = post_form(mod, dismiss, {"reason": "x"}, "/").status_code
    own_membership = membership(moderator, compound)
    path = f"/c/{compound.id}/members/{own_membership.id}/suspend"
    outcomes["suspend self"] = post_form(
        mod, path, {"days": "3", "reason": "x"}, token_from="/"
    ).status_code
    assert outcomes == dict.fromkeys(outcomes, 403)
    assert fresh(own).hidden_at is None and own.locked is False
    assert fresh(own_comment).hidden_at is None
    assert membership(moderator, compound).suspended_until is None
    assert count(ModerationEntry) == 0
    assert [fresh(report).resolved_at for report in reports] == [None, None]
    assert "Hide the proposal" not in page(mod, f"/p/{own.id}")


# ---------------------------------------------------------------- stored XSS (T36)


def test_xss_in_reports_and_reasons_is_inert_in_the_queue_and_the_log(
    db, compound, moderator, make_member, login_as
):
    require_support(compound, 10)
    member = make_member(compound, name="<script>alert(1)</script>")
    target = propose(make_member(compound), compound, title=XSS_TITLE)
    words = comment(member, target, "\n\n".join(XSS.values()), "against")
    client = login_as(member)
    for value in XSS.values():
        assert report_as(client, target, value).status_code == 302
        assert report_as(client, target, value, comment=words).status_code == 302
    mod = login_as(moderator)
    queue = page(mod, f"/c/{compound.id}/moderation")
    assert_inert(queue, "queue")
    assert "&lt;img src=x onerror=alert(1)&gt;" in queue and "{{7*7}}" in queue

    reason = " ".join(XSS.values())
    assert moderate_as(mod, words, "hide", reason).status_code == 302
    assert moderate_as(mod, target, "lock", reason).status_code == 302
    suspend = f"/c/{compound.id}/members/{membership(member, compound).id}/suspend"
    assert post_form(mod, suspend, {"days": "1", "reason": reason}, "/").status_code == 302
    reports = db.session.scalars(select(Report).where(Report.comment_id.is_(None))).all()
    dismissal = post_form(mod, f"/reports/{reports[0].id}/dismiss", {"reason": reason}, "/")
    assert dismissal.status_code == 302

    reader = login_as(make_member(compound))
    views = {
        "log": page(reader, f"/c/{compound.id}/moderation-log"),
        "page": page(reader, f"/p/{target.id}"),
        "queue after": page(mod, f"/c/{compound.id}/moderation"),
    }
    for name, html in views.items():
        assert_inert(html, name)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in views["log"]
    assert HIDDEN + "&lt;script&gt;alert(1)&lt;/script&gt;" in views["page"]
