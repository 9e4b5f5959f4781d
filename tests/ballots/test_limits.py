"""Limits on answers, and on a round's life once it opened (RELIABILITY.md T04, T16).

T04: approval questions ("choose up to k") under concurrent casts. A ballot over a limit is
refused whole, with a message, and writes nothing; every ballot within the limits is
counted; the tally, recounted from the board by the verifier, never gives one ballot more
than k choices. Budget allocation is not offered: the round editor and the service refuse
it (`crypto.tally.METHODS` has no such method).

T16: extending or reopening a round is not offered. Its closing time cannot be changed once
it opened, no route, service, sweep or command reopens a closed round, and closing,
finalizing and annulling each happen once: a result is never published twice.

Races use `race` from test_concurrency: real threads, each with its own app context and
database session, released together by a barrier."""

from __future__ import annotations

import html
import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from tests.ballots.conftest import T0, T1, close, yes_no
from tests.ballots.test_concurrency import (
    DURING,
    approval,
    ballots_of,
    board_report,
    cast_job,
    entries_of,
    fresh,
    live_round,
    no_errors,
    race,
    row_counts,
    voter_id_of,
)
from tests.ballots.test_rounds_admin import form as round_form
from tests.conftest import csrf_token

BEFORE = T0 - timedelta(days=2)  # the committee prepares the round
LIMITS = {"q1": 2, "q2": 3}  # "choose up to": trees up to 2 of 4, benches up to 3 of 5
OVER_LIMIT_MESSAGE = "Question %(n)d: please choose at most %(k)d options."
NOT_EDITABLE = "A round can be changed only until it opens."
NOT_ANNULLABLE = "A round can be annulled only during its objection period."
# An accepted proposal, perhaps moved on at once into implementation.
ACCEPTED = ("accepted", "implementation")


def over_limit(answers: dict) -> dict:
    """The refusal names the first question over its limit: its number and the limit.
    `answers` by question id, or by form field (a_q1)."""
    for n, key in enumerate(("q1", "q2"), start=1):
        chosen = answers.get(key, answers.get(f"a_{key}"))
        if len(chosen) > LIMITS[key]:
            return {"n": n, "k": LIMITS[key]}
    raise AssertionError(f"within the limits: {answers}")


def message(english: str, **values) -> str:
    """A service's message as it reads outside a request: in the default locale."""
    from flask_babel import gettext

    return gettext(english, **values)


def at(moment):
    return time_machine.travel(moment, tick=False)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def trees_and_benches():
    from ballots.services import QuestionDraft

    benches = QuestionDraft(
        title="Where do new benches go?",
        method="approval",
        options=["Gate", "Pond", "Playground", "Car park", "Garden"],
        max_choices=LIMITS["q2"],
    )
    return [approval(), benches]


def within_limits(answers: dict) -> bool:
    return all(len(answers[key]) <= limit for key, limit in LIMITS.items())


def notified(kind: str) -> list[int]:
    from deliberation.models import Notification

    return sorted(fresh().scalars(select(Notification.user_id).where(Notification.kind == kind)))


def board_state(round_id: int) -> list[tuple[int, str, str]]:
    return [(e.n, e.type, e.hash) for e in entries_of(round_id)]


def closer(round_id: int, now):
    """A job for `race`: run the close (as a sweep would) and commit."""

    def job(arrive) -> bool:
        from ballots import services
        from web.extensions import db

        arrive()
        closed = services.close_round(round_id, now)
        db.session.commit()
        return closed

    return job


def finalizer(round_id: int, now):
    def job(arrive) -> bool:
        from ballots import services
        from web.extensions import db

        arrive()
        final = services.finalize_round(round_id, now)
        db.session.commit()
        return final

    return job


@pytest.fixture
def proposal(db, estate):
    """The fence proposal, published and scheduled for a vote."""
    from deliberation import services as deliberation

    created = deliberation.submit_proposal(
        estate.voters[0],
        estate.community,
        deliberation.ProposalDraft(
            title="Repaint the fence", body="It is peeling.", category="other"
        ),
        publish=True,
    )
    created.status = "scheduled"
    db.session.commit()
    return created


# ---------------------------------------------------------------- T04: approval limits


def test_concurrent_over_limit_approval_ballots_are_refused_and_the_tally_stays_within_limits(
    app, db, estate, make_member, make_round, cast
):
    """T04: twelve casts at once, by ten voters (one re-voting three times, one whose
    counted ballot is followed by an over-limit re-vote), half of them over a limit on
    one question or both. Each over-limit cast is refused with the message and leaves no
    ballot, board entry or credential; every other one is counted; after the close the
    tally and the verifier's recount give no ballot more than k choices."""
    from web.errors import InvalidInput

    extra = [make_member(estate.community, role="owner", area=Decimal("50.00")) for _ in range(5)]
    round_ = make_round(trees_and_benches())
    steady = extra[4]
    counted_before = cast(steady, round_, {"q1": ["o1"], "q2": ["o1", "o2"]})
    re_voter = estate.committee
    plan = [
        (estate.voters[0], {"q1": ["o1", "o2"], "q2": ["o1", "o2", "o3"]}),  # at both limits
        (estate.voters[1], {"q1": ["o1", "o2", "o3"], "q2": ["o1"]}),  # over on trees
        (estate.voters[2], {"q1": ["o3"], "q2": ["o1", "o2", "o3", "o4"]}),  # over on benches
        (estate.voters[3], {"q1": [], "q2": []}),  # blank answers
        (extra[0], {"q1": ["o1", "o2", "o3", "o4"], "q2": ["o1", "o2", "o3", "o4", "o5"]}),
        (extra[1], {"q1": ["o4"], "q2": ["o5"]}),
        (extra[2], {"q1": ["o2", "o4"], "q2": ["o3", "o4", "o5"]}),
        (extra[3], {"q1": ["o1", "o2", "o3"], "q2": ["o1", "o2", "o3", "o4"]}),
        (re_voter, {"q1": ["o1", "o4"], "q2": ["o2"]}),
        (re_voter, {"q1": ["o1", "o2", "o4"], "q2": ["o2"]}),
        (re_voter, {"q1": ["o3"], "q2": ["o1", "o4", "o5"]}),
        (steady, {"q1": ["o1", "o3", "o4"], "q2": ["o1", "o2"]}),  # over: the first one stays
    ]
    assert sum(not within_limits(answers) for _user, answers in plan) == 6
    before = row_counts()

    outcomes = race(app, [cast_job(user.id, round_.id, answers) for user, answers in plan])

    no_errors(outcomes)
    accepted = []
    for (user, answers), outcome in zip(plan, outcomes, strict=True):
        if within_limits(answers):
            assert outcome.kind == "ok", (answers, outcome)
            assert outcome.value.answers == answers
            accepted.append((user, outcome.value))
        else:
            assert outcome.kind == "refused", (answers, outcome)
            assert isinstance(outcome.value, InvalidInput) and outcome.value.status == 400
            assert str(outcome.value.message) == message(OVER_LIMIT_MESSAGE, **over_limit(answers))
    # Nothing of a refused cast was written: only the accepted ballots and the credentials
    # of the voters who voted for the first time.
    first_timers = {user.id for user, _c in accepted}
    after = row_counts()
    assert after == {
        "ballots": before["ballots"] + len(accepted),
        "board_entries": before["board_entries"] + len(accepted) + len(first_timers),
        "credentials": before["credentials"] + len(first_timers),
        "voted": before["voted"] + len(first_timers),
    }
    assert sorted(b.id for b in ballots_of(round_.id)) == sorted(
        [counted_before.id] + [c.ballot_id for _u, c in accepted]
    )
    for user in (estate.voters[1], estate.voters[2], extra[0], extra[3]):
        assert ballots_of(round_.id, voter_id_of(user, round_)) == [], user.display_name
    [still_current] = [
        b for b in ballots_of(round_.id, voter_id_of(steady, round_)) if b.is_current
    ]
    assert still_current.id == counted_before.id, "a refused re-vote leaves the counted ballot"
    for entry in entries_of(round_.id, "ballot"):
        assert within_limits(json.loads(entry.payload)["ballot"]["answers"]), entry.n

    assert close(db, round_)

    last = {steady.id: (counted_before.board_n, {"q1": ["o1"], "q2": ["o1", "o2"]})}
    for user, done in accepted:
        if user.id not in last or done.board_n > last[user.id][0]:
            last[user.id] = (done.board_n, done.answers)
    current = [answers for _n, answers in last.values()]
    statement = round_.result_data
    assert statement["counted"] == len(current) == 6
    for question in statement["questions"]:
        key, counts = question["id"], question["counts"]
        assert counts == {o: sum(o in a[key] for a in current) for o in counts}, key
        assert question["participants"] == len(current)
        assert sum(counts.values()) <= LIMITS[key] * question["participants"], key
        assert max(counts.values()) <= question["participants"], key
    receipts = [json.loads(c.receipt) for _u, c in accepted]
    report = board_report(round_.id, receipts)
    assert report.ok, report.problems
    assert report.summary["questions"] == statement["questions"], "the verifier's recount"


OVER_LIMIT = {
    "three trees": {"a_q1": ["o1", "o2", "o3"], "a_q2": ["o1"]},
    "four benches": {"a_q1": ["o1"], "a_q2": ["o1", "o2", "o3", "o4"]},
    "everything": {"a_q1": ["o1", "o2", "o3", "o4"], "a_q2": ["o1", "o2", "o3", "o4", "o5"]},
}


def fields(answers: dict) -> list[tuple[str, str]]:
    return [(name, value) for name, values in answers.items() for value in values]


@pytest.mark.parametrize("answers", OVER_LIMIT.values(), ids=OVER_LIMIT.keys())
def test_an_over_limit_ballot_posted_to_cast_gets_400_and_writes_nothing(
    db, estate, make_round, login_as, answers, caplog
):
    """T04 over HTTP: the cast URL refuses the ballot with a message naming the question
    and its limit (400), logs the refusal (T47) and writes nothing; the voting step names
    the limit; the same voter's ballot within the limits is then accepted."""
    from ballots import services

    caplog.set_level(logging.INFO, logger="yishi.security")
    round_ = live_round(make_round, trees_and_benches())
    client = login_as(estate.voters[0])
    token = csrf_token(client, f"/r/{round_.id}/vote")
    before = row_counts()

    response = client.post(
        f"/r/{round_.id}/cast",
        data=MultiDict([("csrf_token", token), ("nonce", services.new_nonce()), *fields(answers)]),
    )

    assert response.status_code == 400
    assert OVER_LIMIT_MESSAGE % over_limit(answers) in text(response)
    assert row_counts() == before
    refusals = [r.getMessage() for r in caplog.records if "ballot_refused" in r.getMessage()]
    assert len(refusals) == 1 and '"reason": "invalid ballot"' in refusals[0], refusals
    over = next(name for name in ("a_q1", "a_q2") if len(answers[name]) > LIMITS[name[2:]])
    step = {"a_q1": 0, "a_q2": 1}[over]
    page = client.post(
        f"/r/{round_.id}/vote",
        data=MultiDict(
            [("csrf_token", token), ("nonce", services.new_nonce()), ("step", str(step))]
            + fields(answers)
        ),
    )
    assert page.status_code == 400
    assert f"Please choose at most {LIMITS[over[2:]]} options." in text(page)
    assert row_counts() == before

    within = {"a_q1": ["o1", "o2"], "a_q2": ["o3", "o4", "o5"]}
    accepted = client.post(
        f"/r/{round_.id}/cast",
        data=MultiDict([("csrf_token", token), ("nonce", services.new_nonce()), *fields(within)]),
    )
    assert accepted.status_code == 303
    [ballot] = ballots_of(round_.id)
    [entry] = entries_of(round_.id, "ballot")
    assert json.loads(entry.payload)["ballot"]["answers"] == {
        "q1": ["o1", "o2"],
        "q2": ["o3", "o4", "o5"],
    }
    assert ballot.board_n == entry.n


def test_an_over_limit_paper_ballot_is_refused_and_writes_nothing(db, estate, make_round, login_as):
    """T04 for the committee's paper ballots: the same limit, the same message, 400."""
    from ballots import services

    round_ = live_round(make_round, trees_and_benches())
    client = login_as(estate.committee)
    path = f"/r/{round_.id}/paper"
    token = csrf_token(client, path)
    voter_id = voter_id_of(estate.voters[1], round_)
    before = row_counts()

    response = client.post(
        path,
        data=MultiDict(
            [
                ("csrf_token", token),
                ("voter", str(voter_id)),
                ("channel", "paper"),
                ("witness", "Li Na"),
                ("nonce", services.new_nonce()),
                *fields(OVER_LIMIT["three trees"]),
            ]
        ),
    )

    assert response.status_code == 400
    assert OVER_LIMIT_MESSAGE % over_limit(OVER_LIMIT["three trees"]) in text(response)
    assert row_counts() == before
    assert ballots_of(round_.id, voter_id) == []


def test_budget_allocation_is_not_offered_by_the_round_editor(db, estate, make_round, login_as):
    """T04: there is no budget method. The service refuses it with a message, the form
    offers only yes/no/abstain, one option and "choose up to", a posted "budget" gets a
    400 and no round, and a scheduled round cannot be changed into one."""
    from ballots import services
    from ballots.models import Round
    from crypto import tally
    from web.errors import InvalidInput

    assert tally.METHODS == ("yes_no_abstain", "single", "approval")
    budget = services.QuestionDraft(
        title="Share 100 000 yuan", method="budget", options=["Lift", "Lights"], max_choices=100
    )
    draft = services.RoundDraft(
        title="Budget", opens_at=T0, closes_at=T1, questions=[yes_no(), budget]
    )
    with pytest.raises(InvalidInput) as refused:
        services.create_round(estate.committee, estate.community, draft, now=BEFORE)
    assert str(refused.value.message) == message(
        "Please choose how question %(n)d is answered.", n=2
    )
    db.session.rollback()
    assert db.session.scalar(select(func.count(Round.id))) == 0

    path = f"/c/{estate.community.id}/rounds/new"
    posted = round_form(
        **{
            "questions-0-method": "budget",
            "questions-0-option_labels": "Lift\nLights",
            "questions-0-max_choices": "20",
        }
    )
    with at(BEFORE):
        client = login_as(estate.committee)
        page = client.get(path).get_data(as_text=True)
        response = client.post(path, data={**posted, "csrf_token": csrf_token(client, path)})
    methods = {"yes_no_abstain", "single", "approval"}
    assert 'value="budget"' not in page
    assert all(f'value="{method}"' in page for method in methods)
    assert response.status_code == 400
    assert "Not a valid choice." in text(response)
    assert db.session.scalar(select(func.count(Round.id))) == 0

    scheduled = make_round(opened=False)
    edit = f"/r/{scheduled.id}/edit"
    with at(BEFORE):
        client = login_as(estate.committee)
        response = client.post(edit, data={**posted, "csrf_token": csrf_token(client, edit)})
    assert response.status_code == 400
    assert "Not a valid choice." in text(response)
    db.session.refresh(scheduled)
    assert [q.method for q in scheduled.questions] == ["yes_no_abstain"]
    with pytest.raises(InvalidInput):
        services.update_round(estate.committee, scheduled, draft, now=BEFORE)
    db.session.rollback()
    db.session.refresh(scheduled)
    assert [q.method for q in scheduled.questions] == ["yes_no_abstain"]


# ---------------------------------------------------------------- T16: no extend, no reopen


def _advance(db, round_, stage: str):
    """Bring an open round to `stage` ("open", "closed" or "final"); the moment it is then."""
    from ballots import services

    if stage == "open":
        return DURING
    assert close(db, round_)
    if stage == "closed":
        return T1 + timedelta(hours=1)
    assert services.finalize_round(round_.id, round_.objections_until)
    db.session.commit()
    db.session.refresh(round_)
    return round_.objections_until + timedelta(hours=1)


@pytest.mark.parametrize("stage", ["open", "closed", "final"])
def test_the_closing_time_cannot_be_changed_once_the_round_opened(
    db, estate, make_round, cast, login_as, stage
):
    """T16: extending the close is refused, by the service (NotEditable) and over HTTP
    (409 with the message), and changes nothing: not the round, not its board. An open
    round still closes at its old closing time."""
    from ballots import services

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    now = _advance(db, round_, stage)
    fields_before = (round_.status, round_.closes_at, round_.manifest, round_.result)
    board_before = board_state(round_.id)
    later = services.RoundDraft(
        title=round_.title,
        opens_at=round_.opens_at,
        closes_at=T1 + timedelta(days=7),
        questions=[yes_no()],
    )

    with pytest.raises(services.NotEditable):
        services.update_round(estate.committee, round_, later, now=now)
    db.session.rollback()
    path = f"/r/{round_.id}/edit"
    extended = round_form(title=round_.title, electorate="residents", closes_at="2026-12-15T08:00")
    with at(now):
        client = login_as(estate.committee)
        shown = client.get(path)
        token = csrf_token(client, f"/r/{round_.id}")
        refused = client.post(path, data={**extended, "csrf_token": token})

    assert shown.status_code == 409
    assert refused.status_code == 409
    assert NOT_EDITABLE in text(refused)
    db.session.refresh(round_)
    assert (round_.status, round_.closes_at, round_.manifest, round_.result) == fields_before
    assert round_.closes_at == T1
    assert board_state(round_.id) == board_before
    if stage == "open":
        with pytest.raises(services.RoundClosed):
            cast(estate.voters[1], round_, {"q1": ["no"]}, now=T1)
        db.session.rollback()
        assert close(db, round_, now=T1)
        assert round_.closed_at == T1
        assert round_.result_data["counted"] == 1


def test_closing_a_closed_round_again_adds_no_second_result(app, db, estate, make_round, cast):
    """T16: four closes at once and more later (the sweep, after downtime): one close
    returns True, the others False; one close entry, one result, one notification each."""
    from ballots import jobs

    round_ = make_round()
    for voter, choice in zip(estate.voters, ["yes", "yes", "no", "abstain"], strict=True):
        cast(voter, round_, {"q1": [choice]})

    outcomes = race(app, [closer(round_.id, T1) for _ in range(4)])

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [False, False, False, True], outcomes
    fresh().refresh(round_)
    result, closed_at, until = round_.result, round_.closed_at, round_.objections_until
    board_before = board_state(round_.id)
    assert round_.status == "closed" and closed_at == T1
    assert len(entries_of(round_.id, "close")) == len(entries_of(round_.id, "result")) == 1
    voters = sorted([estate.committee.id, *(v.id for v in estate.voters)])
    assert notified("round_closed") == voters

    assert not close(db, round_, now=T1 + timedelta(days=1))
    assert jobs.close_rounds(T1 + timedelta(days=3)) == 0

    fresh().refresh(round_)
    assert (round_.status, round_.result, round_.closed_at) == ("closed", result, closed_at)
    assert round_.objections_until == until
    assert board_state(round_.id) == board_before
    assert notified("round_closed") == voters
    assert round_.result_data["questions"][0]["counts"] == {"yes": 2, "no": 1, "abstain": 1}
    report = board_report(round_.id)
    assert report.ok, report.problems


REOPENING_PATHS = ["reopen", "open", "extend", "close", "status", "restart", "closes_at"]


def test_no_route_service_sweep_or_command_reopens_a_closed_round(
    app, db, estate, make_round, cast, login_as
):
    """T16: reopening is not offered. No round URL is about opening, closing or extending;
    a committee member's POSTs to such URLs get 404 (405 on the round page) and the round
    stays closed with the same board; opening it again through the service or the sweep
    does nothing; no command reopens; a ballot after the close is refused."""
    from ballots import jobs, services

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    assert close(db, round_)
    board_before = board_state(round_.id)
    result = round_.result

    ballot_rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("ballots.")]
    for rule in ballot_rules:
        last = rule.rstrip("/").rsplit("/", 1)[-1]
        assert not any(word in last for word in ("open", "extend", "close", "status")), rule
    group = app.cli.commands["ballots"]
    assert sorted(group.commands) == ["board", "sweep", "verify"]

    with at(T1 + timedelta(hours=1)):
        client = login_as(estate.committee)
        token = csrf_token(client, f"/r/{round_.id}")
        data = {"csrf_token": token, "closes_at": "2026-12-15T08:00", "status": "open"}
        replies = {
            name: client.post(f"/r/{round_.id}/{name}", data=data).status_code
            for name in REOPENING_PATHS
        }
        on_page = client.post(f"/r/{round_.id}", data=data).status_code
        page = text(client.get(f"/r/{round_.id}"))
    assert replies == dict.fromkeys(REOPENING_PATHS, 404)
    assert on_page == 405
    assert "Reopen" not in page and "Extend" not in page

    assert not services.open_round(round_.id, T1 + timedelta(days=1))
    db.session.commit()
    assert jobs.open_rounds(T1 + timedelta(days=1)) == 0
    with pytest.raises(services.RoundClosed):
        services.cast_ballot(estate.voters[1], round_, {"q1": ["no"]}, services.new_nonce(), now=T1)
    db.session.rollback()

    fresh().refresh(round_)
    assert (round_.status, round_.result) == ("closed", result)
    assert board_state(round_.id) == board_before
    assert len(entries_of(round_.id, "open")) == 1


def test_an_annulled_round_is_not_closed_finalized_or_annulled_again(
    db, estate, make_round, cast, login_as, proposal
):
    """T16: after the annulment, the close, the final result and a second annulment are
    all refused: one "annulled" entry on the board, no final result, and the proposal
    stays scheduled for a new vote."""
    from ballots import jobs, services
    from deliberation.models import Proposal
    from web.errors import Conflict

    round_ = make_round([yes_no("Repaint the fence?", proposal_id=proposal.id)])
    for voter in estate.voters:
        cast(voter, round_, {"q1": ["yes"]})
    assert close(db, round_)
    reason = "Building 2 was left off the list of voters."
    services.annul_round(estate.committee, round_, reason, now=T1 + timedelta(days=1))
    db.session.commit()
    board_before = board_state(round_.id)
    late = round_.objections_until + timedelta(days=1)

    assert not services.close_round(round_.id, late)
    assert not services.finalize_round(round_.id, late)
    db.session.commit()
    assert jobs.close_rounds(late) == jobs.finalize_rounds(late) == 0
    with pytest.raises(Conflict) as again:
        services.annul_round(estate.committee, round_, "Once more", now=T1 + timedelta(days=2))
    assert str(again.value.message) == message(NOT_ANNULLABLE)
    db.session.rollback()
    with at(T1 + timedelta(days=2)):
        client = login_as(estate.committee)
        token = csrf_token(client, f"/r/{round_.id}")
        refused = client.post(f"/r/{round_.id}/annul", data={"reason": "x", "csrf_token": token})
    assert refused.status_code == 409
    assert NOT_ANNULLABLE in text(refused)

    fresh().refresh(round_)
    assert (round_.status, round_.annul_reason) == ("annulled", reason)
    assert board_state(round_.id) == board_before
    [final] = entries_of(round_.id, "final")
    assert json.loads(final.payload)["outcome"] == "annulled"
    assert notified("round_final") == []
    assert fresh().get(Proposal, proposal.id).status == "scheduled"
    report = board_report(round_.id)
    assert report.ok, report.problems
    assert report.summary["outcome"] == "annulled"


def test_finalizing_twice_publishes_one_final_result_and_moves_the_proposal_once(
    app, db, estate, make_round, cast, proposal
):
    """T16: three finalizations at once, then the sweep later: one final entry, the
    proposal accepted once (one status change, one round of notifications), and the
    final result can no longer be annulled or closed again."""
    from ballots import jobs, services
    from deliberation.models import Notification, Proposal
    from web.errors import Conflict

    round_ = make_round([yes_no("Repaint the fence?", proposal_id=proposal.id)])
    for voter in estate.voters[:3]:
        cast(voter, round_, {"q1": ["yes"]})
    assert close(db, round_)
    due = round_.objections_until

    def status_notices() -> int:
        return fresh().scalar(
            select(func.count(Notification.id)).where(
                Notification.kind == "status_changed", Notification.proposal_id == proposal.id
            )
        )

    notices_before = status_notices()

    outcomes = race(app, [finalizer(round_.id, due) for _ in range(3)])

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [False, False, True], outcomes
    fence = fresh().get(Proposal, proposal.id)
    moved_at = fence.status_changed_at
    assert fence.status in ACCEPTED, fence.status
    assert moved_at == due
    assert status_notices() == notices_before + 1
    voters = sorted([estate.committee.id, *(v.id for v in estate.voters)])
    assert notified("round_final") == voters
    board_before = board_state(round_.id)

    later = due + timedelta(days=3)
    assert not services.finalize_round(round_.id, later)
    assert not services.close_round(round_.id, later)
    db.session.commit()
    assert jobs.finalize_rounds(later) == 0
    with pytest.raises(Conflict):
        services.annul_round(estate.committee, round_, "Too late", now=later)
    db.session.rollback()

    fresh().refresh(round_)
    assert round_.status == "final" and round_.final_at == due
    assert board_state(round_.id) == board_before
    [final] = entries_of(round_.id, "final")
    assert json.loads(final.payload)["outcome"] == "final"
    fence = fresh().get(Proposal, proposal.id)
    assert fence.status in ACCEPTED and fence.status_changed_at == moved_at
    assert status_notices() == notices_before + 1
    assert notified("round_final") == voters
    report = board_report(round_.id)
    assert report.ok, report.problems
    assert report.summary["outcome"] == "final"
