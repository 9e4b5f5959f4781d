"""Support (co-signing): once per member, taken back while collecting, the threshold moving
a proposal to deliberation at once, expiry by the scheduled sweep exactly once, and
concurrent supports counting exactly once (RELIABILITY.md I1/T01 for support)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from community.models import User
from deliberation import services
from deliberation.models import Notification, Proposal, Support
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
from web.database import write_intent
from web.extensions import db
from web.scheduler import run_all_due


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


def support_as(client, proposal, action: str = "support", **kwargs):
    path = f"/p/{proposal.id}"
    return post_form(client, f"{path}/support", {"action": action}, token_from=path, **kwargs)


def notified(kind: str, proposal) -> Counter:
    """How many notifications of `kind` about `proposal` each user got."""
    db.session.commit()
    return Counter(
        db.session.scalars(
            select(Notification.user_id).where(
                Notification.kind == kind, Notification.proposal_id == proposal.id
            )
        )
    )


# ---------------------------------------------------------------- supporting


def test_member_supports_once_and_can_take_it_back(db, compound, make_member, login_as):
    proposal = propose(make_member(compound), compound)
    require_support(compound, 10)
    client = login_as(make_member(compound))

    response = support_as(client, proposal)
    assert response.status_code == 302 and response.headers["Location"].endswith("#support")
    text = page(client, f"/p/{proposal.id}")
    assert "1 supporter" in text and "You support this proposal." in text
    assert "9 more needed to start the discussion" in text

    assert support_as(client, proposal).status_code == 302  # a double click
    assert fresh(proposal).support_count == 1
    assert count(Support, Support.proposal_id == proposal.id) == 1

    assert support_as(client, proposal, action="withdraw").status_code == 302
    assert fresh(proposal).support_count == 0
    assert count(Support) == 0
    assert "I support this" in page(client, f"/p/{proposal.id}")


def test_htmx_support_answers_with_the_support_fragment(db, compound, make_member, login_as):
    proposal = propose(make_member(compound), compound)
    require_support(compound, 10)
    client = login_as(make_member(compound))
    response = support_as(client, proposal, headers=HX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text and text.lstrip().startswith('<section id="support"')
    assert "1 supporter" in text and "Take back my support" in text

    back = support_as(client, proposal, action="withdraw", headers=HX).get_data(as_text=True)
    assert "<html" not in back and "0 supporters" in back and "I support this" in back


def test_reaching_a_number_threshold_starts_deliberation_at_once(
    db, compound, make_member, login_as
):
    author = make_member(compound)
    proposal = propose(author, compound)
    require_support(compound, 2)
    follower = make_member(compound)
    follow = post_form(
        login_as(follower), f"/p/{proposal.id}/follow", {"action": "follow"}, f"/p/{proposal.id}"
    )
    assert follow.status_code == 302
    first, second, late = (make_member(compound) for _ in range(3))

    assert support_as(login_as(first), proposal).status_code == 302
    assert fresh(proposal).status == "collecting"
    assert support_as(login_as(second), proposal).status_code == 302
    assert fresh(proposal).status == "deliberation"
    text = page(login_as(late), f"/p/{proposal.id}")
    assert "In deliberation" in text and "Enough support: the proposal is in deliberation." in text
    assert "I support this" not in text

    refused = support_as(login_as(late), proposal)
    assert refused.status_code == 409
    assert "only while a proposal collects support" in refused.get_data(as_text=True)
    assert fresh(proposal).support_count == 2
    assert notified("threshold_reached", proposal) == Counter(
        {author.id: 1, follower.id: 1, first.id: 1, second.id: 1}
    )


def test_a_percent_threshold_counts_verified_members(db, compound, make_member, login_as):
    author = make_member(compound)
    first, second = make_member(compound), make_member(compound)
    for _ in range(6):
        make_member(compound)
    make_member(compound, role="moderator")  # staff are verified members too
    for _ in range(5):
        make_member(compound, status="pending")  # not counted
    require_support(compound, percent=20)  # 20 % of 10 verified members
    proposal = propose(author, compound)
    assert services.required_support(compound) == 2
    client = login_as(first)
    assert "2 more needed to start the discussion" in page(client, f"/p/{proposal.id}")
    support_as(client, proposal)
    assert fresh(proposal).status == "collecting"
    support_as(login_as(second), proposal)
    assert fresh(proposal).status == "deliberation"


def test_a_percent_threshold_rounds_up(db, compound, make_member):
    for _ in range(11):
        make_member(compound)
    require_support(compound, percent="12.5")  # 12.5 % of 11 = 1.375
    assert services.required_support(compound) == 2


def test_the_support_window_comes_from_the_settings(db, compound, make_member):
    require_support(compound, 3, days=7)
    proposal = propose(make_member(compound), compound)
    assert proposal.support_deadline - proposal.published_at == timedelta(days=7)


# ---------------------------------------------------------------- expiry by the sweep


def test_proposal_without_enough_support_expires_once_by_the_sweep(
    app, db, compound, make_member, login_as
):
    author = make_member(compound)
    require_support(compound, 5)
    proposal = propose(author, compound)
    supporter = make_member(compound)
    services.support(supporter, proposal)
    db.session.commit()
    deadline = proposal.support_deadline

    with time_machine.travel(deadline - timedelta(minutes=1), tick=False):
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 0
    assert fresh(proposal).status == "collecting"

    with time_machine.travel(deadline + timedelta(minutes=1), tick=False):
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 1
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 0
        text = page(login_as(supporter), f"/p/{proposal.id}")
    assert fresh(proposal).status == "expired"
    assert "Expired" in text and "I support this" not in text
    assert notified("expired", proposal) == Counter({author.id: 1, supporter.id: 1})


def test_the_sweep_catches_up_on_proposals_due_while_it_did_not_run(app, db, compound, make_member):
    require_support(compound, 5, days=1)
    proposals = [propose(make_member(compound), compound, title=f"Idea {n}") for n in range(3)]
    with time_machine.travel(datetime.now(UTC) + timedelta(days=40), tick=False):
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 3
    assert {fresh(p).status for p in proposals} == {"expired"}


def test_proposal_in_deliberation_never_expires(app, db, compound, make_member):
    require_support(compound, 1)
    proposal = propose(make_member(compound), compound)
    services.support(make_member(compound), proposal)
    db.session.commit()
    with time_machine.travel(proposal.support_deadline + timedelta(days=1), tick=False):
        assert run_all_due(app, datetime.now(UTC))["expire_proposals"] == 0
    assert fresh(proposal).status == "deliberation"


def test_support_after_the_deadline_is_refused_even_before_the_sweep(
    db, compound, make_member, login_as
):
    require_support(compound, 5)
    proposal = propose(make_member(compound), compound)
    member = make_member(compound)
    services.support(member, proposal)
    db.session.commit()
    with time_machine.travel(proposal.support_deadline, tick=False):
        newcomer = login_as(make_member(compound))
        assert support_as(newcomer, proposal).status_code == 409
        taking_back = support_as(login_as(member), proposal, action="withdraw")
        assert taking_back.status_code == 409
    assert fresh(proposal).support_count == 1
    assert count(Support) == 1


# ---------------------------------------------------------------- at the same instant


def race(app, proposal, user_ids: list[int]) -> tuple[list, list]:
    """Each user supports `proposal` from a thread of its own (own app context, session
    and connection); all are released together by a barrier. Returns (results, errors)."""
    barrier = threading.Barrier(len(user_ids))
    results, errors = [], []

    def run(user_id: int) -> None:
        token = write_intent.set(True)  # as a POST request: BEGIN IMMEDIATE on SQLite
        try:
            with app.app_context():
                try:
                    user = db.session.get(User, user_id)
                    target = db.session.get(Proposal, proposal.id)
                    assert target.status == "collecting" and user.id == user_id
                    db.session.commit()  # hold no write lock while waiting at the barrier
                    barrier.wait(timeout=10)
                    results.append(services.support(user, target))
                    db.session.commit()
                except Exception as error:
                    db.session.rollback()
                    errors.append(error)
                finally:
                    db.session.remove()
        finally:
            write_intent.reset(token)

    threads = [threading.Thread(target=run, args=(uid,)) for uid in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


def test_two_members_supporting_at_the_same_instant_both_count(app, db, compound, make_member):
    require_support(compound, 10)
    proposal = propose(make_member(compound), compound)
    first, second = make_member(compound), make_member(compound)
    results, errors = race(app, proposal, [first.id, second.id])
    assert errors == [] and results == [True, True]
    assert fresh(proposal).support_count == 2
    assert count(Support, Support.proposal_id == proposal.id) == 2


def test_one_member_supporting_twice_at_once_counts_once(app, db, compound, make_member):
    require_support(compound, 10)
    proposal = propose(make_member(compound), compound)
    member = make_member(compound)
    results, errors = race(app, proposal, [member.id, member.id])
    assert errors == [] and sorted(results) == [False, True]
    assert fresh(proposal).support_count == 1
    assert count(Support, Support.proposal_id == proposal.id) == 1


def test_concurrent_supports_crossing_the_threshold_move_it_once(app, db, compound, make_member):
    require_support(compound, 3)
    author = make_member(compound)
    proposal = propose(author, compound)
    early = make_member(compound)
    services.support(early, proposal)
    db.session.commit()
    first, second = make_member(compound), make_member(compound)

    results, errors = race(app, proposal, [first.id, second.id])
    assert errors == [] and results == [True, True]
    assert (fresh(proposal).status, proposal.support_count) == ("deliberation", 3)
    assert notified("threshold_reached", proposal) == Counter(
        {author.id: 1, early.id: 1, first.id: 1, second.id: 1}
    )


def test_a_support_racing_the_move_to_deliberation_is_refused(app, db, compound, make_member):
    """Three supports at once where two reach the threshold: the third must not be counted
    on a proposal that is no longer collecting (a conditional update, on both engines)."""
    require_support(compound, 3)
    proposal = propose(make_member(compound), compound)
    services.support(make_member(compound), proposal)
    db.session.commit()
    racers = [make_member(compound).id for _ in range(3)]

    results, errors = race(app, proposal, racers)
    assert results == [True, True] and len(errors) == 1
    assert isinstance(errors[0], services.Conflict)
    assert (fresh(proposal).status, proposal.support_count) == ("deliberation", 3)
    assert count(Support, Support.proposal_id == proposal.id) == 3
