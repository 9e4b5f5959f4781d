"""The discussion of a proposal: comments with a stance, replies three levels deep,
"helpful" marks and the strongest comment on each side, editing for 15 minutes, deletion
leaving a tombstone, and htmx fragments next to plain form posts."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from deliberation import services
from deliberation.models import Comment, HelpfulMark, Proposal
from tests.conftest import post_form
from tests.deliberation.test_proposals import (
    HX,
    build_compound,
    count,
    fresh,
    page,
    propose,
    require_support,
)
from web.extensions import db


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


@pytest.fixture
def proposal(db, compound, make_member):
    require_support(compound, 10)
    return propose(make_member(compound, name="Author Zhang"), compound)


def comment_as(client, proposal, body: str, stance: str = "neutral", parent=None, **kwargs):
    data = {"stance": stance, "body": body}
    if parent is not None:
        data["parent_id"] = str(parent.id)
    path = f"/p/{proposal.id}"
    return post_form(client, f"{path}/comments", data, token_from=path, **kwargs)


def mark_helpful(client, comment, **kwargs):
    path = f"/p/{comment.proposal_id}"
    return post_form(client, f"/comments/{comment.id}/helpful", {}, token_from=path, **kwargs)


def write(author, proposal, body: str, stance: str = "neutral", parent=None) -> Comment:
    comment = services.post_comment(author, proposal, body, stance, parent)
    db.session.commit()
    return comment


# ---------------------------------------------------------------- comments and replies


def test_members_comment_with_a_stance_and_see_the_counts(
    db, compound, proposal, make_member, login_as
):
    client = login_as(make_member(compound, name="Wang Shifu"))
    response = comment_as(client, proposal, "Good idea, the gate is dark.", "for")
    comment = db.session.scalar(select(Comment))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/p/{proposal.id}#comment-{comment.id}")
    for body, stance in [
        ("Yes please.", "for"),
        ("Too expensive.", "against"),
        ("Who maintains it?", "question"),
        ("Just noting the date.", "neutral"),
    ]:
        assert comment_as(client, proposal, body, stance).status_code == 302

    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "Good idea, the gate is dark." in text and "Wang Shifu" in text
    assert "For: 2" in text and "Against: 1" in text
    assert "Questions: 1" in text and "Neutral: 1" in text
    assert fresh(proposal).comment_count == 5
    assert "5 comments" in page(client, f"/c/{compound.id}/proposals")


@pytest.mark.parametrize(
    ("stance", "body"), [("maybe", "A real comment"), ("for", "   "), ("for", "x" * 5001)]
)
def test_a_comment_without_stance_or_words_is_refused(
    db, compound, proposal, make_member, login_as, stance, body
):
    response = comment_as(login_as(make_member(compound)), proposal, body, stance)
    assert response.status_code == 400
    assert count(Comment) == 0


def test_replies_go_three_levels_deep_and_no_further(db, compound, proposal, make_member, login_as):
    client = login_as(make_member(compound))
    parent = None
    for level in range(3):
        response = comment_as(client, proposal, f"Level {level}", parent=parent)
        assert response.status_code == 302, level
        parent = db.session.scalar(select(Comment).order_by(Comment.id.desc()))
        assert parent.depth == level

    text = page(client, f"/p/{proposal.id}")
    assert text.index("Level 0") < text.index("Level 1") < text.index("Level 2")
    assert 'class="comment depth-2"' in text
    assert f'name="parent_id" value="{parent.id}"' not in text  # no reply form offered

    response = comment_as(client, proposal, "Level 3", parent=parent)
    assert response.status_code == 400
    assert "Replies go at most three levels deep." in response.get_data(as_text=True)
    htmx = comment_as(client, proposal, "Level 3", parent=parent, headers=HX)
    assert htmx.status_code == 400 and "<html" not in htmx.get_data(as_text=True)
    assert count(Comment) == 3


def test_a_reply_must_stay_in_its_own_discussion(db, compound, proposal, make_member, login_as):
    member = make_member(compound)
    elsewhere = write(member, propose(make_member(compound), compound, title="Other"), "There")
    response = comment_as(login_as(member), proposal, "Here", parent=elsewhere)
    assert response.status_code == 400
    assert count(Comment, Comment.proposal_id == proposal.id) == 0


def test_parent_id_that_is_not_a_number_is_refused(db, compound, proposal, make_member, login_as):
    client = login_as(make_member(compound))
    path = f"/p/{proposal.id}"
    data = {"stance": "for", "body": "Hello", "parent_id": "1 OR 1=1"}
    assert post_form(client, f"{path}/comments", data, token_from=path).status_code == 400
    assert count(Comment) == 0


# ---------------------------------------------------------------- helpful marks


def test_helpful_is_one_mark_per_member_and_marking_again_takes_it_back(
    db, compound, proposal, make_member, login_as
):
    writer = make_member(compound)
    comment = write(writer, proposal, "Use LED lamps, they last longer.", "for")
    neighbour = login_as(make_member(compound))

    assert mark_helpful(neighbour, comment).status_code == 302
    assert fresh(comment).helpful_count == 1
    assert 'aria-pressed="true">Helpful (1)' in page(neighbour, f"/p/{proposal.id}")
    assert mark_helpful(neighbour, comment).status_code == 302
    assert fresh(comment).helpful_count == 0
    assert count(HelpfulMark) == 0

    for _ in range(2):
        mark_helpful(login_as(make_member(compound)), comment)
    assert fresh(comment).helpful_count == 2 == count(HelpfulMark)


def test_own_comment_cannot_be_marked_helpful(db, compound, proposal, make_member, login_as):
    writer = make_member(compound)
    comment = write(writer, proposal, "My own idea.", "for")
    client = login_as(writer)
    response = mark_helpful(client, comment)
    assert response.status_code == 400
    assert "You cannot mark your own comment as helpful." in response.get_data(as_text=True)
    assert fresh(comment).helpful_count == 0
    assert "Helpful (0)" not in page(client, f"/p/{proposal.id}")  # no button offered


def test_htmx_helpful_answers_with_the_button_fragment(
    db, compound, proposal, make_member, login_as
):
    comment = write(make_member(compound), proposal, "Agreed.", "for")
    response = mark_helpful(login_as(make_member(compound)), comment, headers=HX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text and f'id="helpful-{comment.id}"' in text
    assert 'aria-pressed="true">Helpful (1)' in text


def test_the_strongest_comment_on_each_side_is_shown_first(
    db, compound, proposal, make_member, login_as
):
    writers = [make_member(compound) for _ in range(4)]
    strong_for = write(writers[0], proposal, "Safety at night matters most.", "for")
    weak_for = write(writers[1], proposal, "Nice to have.", "for")
    against = write(writers[2], proposal, "The budget is empty this year.", "against")
    write(writers[3], proposal, "Which lamp model?", "question")
    markers = [make_member(compound) for _ in range(3)]
    for marker, comment in [
        (markers[0], strong_for),
        (markers[1], strong_for),
        (markers[2], weak_for),
        (markers[0], against),
    ]:
        services.mark_helpful(marker, comment)
    db.session.commit()

    thread = services.thread(fresh(proposal))
    assert thread.strongest["for"].id == strong_for.id
    assert thread.strongest["against"].id == against.id
    assert thread.strongest["question"] is None  # nobody marked it

    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    box = text[text.index("Most helpful on each side") : text.index('<ol class="thread"')]
    assert "Safety at night matters most." in box and "2 found this helpful" in box
    assert "The budget is empty this year." in box
    assert "Nice to have." not in box and "Which lamp model?" not in box


# ---------------------------------------------------------------- editing and deleting


def test_author_edits_within_15_minutes_and_the_comment_is_marked_edited(
    db, compound, proposal, make_member, login_as
):
    writer = make_member(compound)
    comment = write(writer, proposal, "The lamp is at gate 3.", "neutral")
    client = login_as(writer)
    path = f"/comments/{comment.id}/edit"
    assert "The lamp is at gate 3." in page(client, path)
    with time_machine.travel(comment.created_at + timedelta(minutes=14), tick=False):
        response = post_form(client, path, {"body": "The lamp is at gate 2."}, token_from=path)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"#comment-{comment.id}")
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "The lamp is at gate 2." in text and "gate 3" not in text
    assert "· edited" in text


def test_editing_after_15_minutes_is_refused(db, compound, proposal, make_member, login_as):
    writer = make_member(compound)
    comment = write(writer, proposal, "Original words.", "for")
    client = login_as(writer)
    path = f"/comments/{comment.id}/edit"
    with time_machine.travel(comment.created_at + timedelta(minutes=16), tick=False):
        response = post_form(client, path, {"body": "Rewritten history."}, token_from=path)
    assert response.status_code == 409
    assert "Comments can be edited only for 15 minutes." in response.get_data(as_text=True)
    comment = fresh(comment)
    assert (comment.body, comment.edited_at) == ("Original words.", None)


def test_only_the_author_edits_or_deletes_a_comment(db, compound, proposal, make_member, login_as):
    comment = write(make_member(compound), proposal, "Mine.", "for")
    other = login_as(make_member(compound))
    path = f"/comments/{comment.id}/edit"
    assert other.get(path).status_code == 403
    assert post_form(other, path, {"body": "Yours now."}, token_from="/").status_code == 403
    deleting = post_form(other, f"/comments/{comment.id}/delete", {}, token_from="/")
    assert deleting.status_code == 403
    comment = fresh(comment)
    assert (comment.body, comment.deleted_at) == ("Mine.", None)


def test_deleting_leaves_a_tombstone_and_replies_keep_their_place(
    db, compound, proposal, make_member, login_as
):
    writer, replier = make_member(compound), make_member(compound)
    root = write(writer, proposal, "Regrettable words.", "against")
    reply = write(replier, proposal, "A reply that stays.", "neutral", parent=root)
    write(writer, proposal, "A later comment.", "for")

    client = login_as(writer)
    response = post_form(client, f"/comments/{root.id}/delete", {}, token_from=f"/p/{proposal.id}")
    assert response.status_code == 302
    text = page(login_as(make_member(compound)), f"/p/{proposal.id}")
    assert "Regrettable words." not in text
    tombstone = text.index("This comment was deleted by its author.")
    assert tombstone < text.index("A reply that stays.") < text.index("A later comment.")
    assert "Against: 0" in text and "Neutral: 1" in text
    root = fresh(root)
    assert root.deleted_at is not None and root.body == ""
    assert fresh(reply).parent_id == root.id
    assert count(Comment) == 3  # nothing removed

    edit = post_form(client, f"/comments/{root.id}/edit", {"body": "Back"}, token_from="/")
    assert edit.status_code == 409


# ---------------------------------------------------------------- htmx and plain posts


def test_htmx_comment_answers_with_the_thread_fragment(
    db, compound, proposal, make_member, login_as
):
    client = login_as(make_member(compound))
    response = comment_as(client, proposal, "Posted with htmx.", "question", headers=HX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text and text.lstrip().startswith('<section id="discussion"')
    assert "Posted with htmx." in text and "Questions: 1" in text


def test_htmx_comment_with_errors_answers_with_the_form_fragment(
    db, compound, proposal, make_member, login_as
):
    response = comment_as(login_as(make_member(compound)), proposal, "  ", "for", headers=HX)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<html" not in text and 'id="new-comment"' in text
    assert count(Comment) == 0


def test_comments_on_drafts_and_hidden_proposals_are_refused(db, compound, make_member, login_as):
    author = make_member(compound)
    draft = propose(author, compound, publish=False)
    assert comment_as(login_as(make_member(compound)), draft, "Hi").status_code == 404
    assert comment_as(login_as(author), draft, "Note to self").status_code == 409

    hidden = propose(make_member(compound), compound, title="Hidden one")
    services.hide_proposal(make_member(compound, role="moderator"), hidden, "Advertising")
    db.session.commit()
    assert comment_as(login_as(make_member(compound)), hidden, "Hi").status_code == 409
    assert count(Comment) == 0
    assert db.session.get(Proposal, hidden.id).comment_count == 0
