"""The committee's side of a round: creating it through the form (times in the community's
zone), the validation messages, proposals on questions, editing until it opens,
objections and their answers, annulment, and form fields that must be ignored."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import func, select

from tests.ballots.conftest import T0, T1, close, yes_no
from tests.conftest import csrf_token

BEFORE = T0 - timedelta(days=2)
TITLE = "Lift for building 3"


def at(moment):
    return time_machine.travel(moment, tick=False)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def form(**changes) -> dict:
    """The round form as a committee member fills it in (three question blocks)."""
    data = {
        "title": TITLE,
        "explanation": "The lift would serve all 18 floors.",
        "scope": "Building 3",
        "opens_at": "2026-12-01T08:00",
        "closes_at": "2026-12-08T20:00",
        "electorate": "owners",
        "secrecy": "secret",
        "objection_days": "7",
        "questions-0-title": "Install the lift?",
        "questions-0-method": "yes_no_abstain",
        "questions-0-option_labels": "",
        "questions-0-max_choices": "1",
        "questions-0-rule": "simple_majority",
        "questions-0-quorum": "",
        "questions-0-proposal": "",
        "questions-1-title": "",
        "questions-2-title": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def post(client, path: str, data: dict):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, path)})


def rounds(db):
    from ballots.models import Round

    return db.session.scalars(select(Round).order_by(Round.id)).all()


def new_path(community) -> str:
    return f"/c/{community.id}/rounds/new"


@pytest.fixture
def proposal(db, estate):
    """A proposal of the estate, published and then scheduled for a vote."""
    from deliberation import services as deliberation

    def factory(title="Repaint the fence", status="scheduled", community=None, author=None):
        created = deliberation.submit_proposal(
            author or estate.voters[0],
            community or estate.community,
            deliberation.ProposalDraft(title=title, body="It is peeling.", category="other"),
            publish=True,
        )
        created.status = status
        db.session.commit()
        return created

    return factory


# ---------------------------------------------------------------- creating


def test_a_round_with_every_field_in_shanghai_time(db, estate, login_as, proposal):
    scheduled = proposal()
    with at(BEFORE):
        client = login_as(estate.committee)
        page = text(client.get(new_path(estate.community)))
        assert "Times are in the community's time zone (Asia/Shanghai)." in page
        response = post(
            client,
            new_path(estate.community),
            form(
                secrecy="named",
                objection_days="5",
                **{
                    "questions-0-rule": "art278_major",
                    "questions-0-proposal": str(scheduled.id),
                    "questions-1-title": "Which company?",
                    "questions-1-method": "single",
                    "questions-1-option_labels": "Otis\nKone\nSchindler\n",
                    "questions-1-rule": "two_thirds",
                    "questions-1-quorum": "50",
                    "questions-2-title": "Which extras?",
                    "questions-2-method": "approval",
                    "questions-2-option_labels": "Mirror\nSeat\nMusic\nCamera",
                    "questions-2-max_choices": "2",
                    "questions-2-rule": "three_quarters",
                },
            ),
        )
    assert response.status_code == 303, text(response)[-3000:]
    (round_,) = rounds(db)
    assert response.headers["Location"] == f"/r/{round_.id}"
    assert round_.status == "scheduled"
    assert (round_.title, round_.scope) == (TITLE, "Building 3")
    assert round_.explanation == "The lift would serve all 18 floors."
    assert (round_.electorate, round_.secrecy, round_.objection_days) == ("owners", "named", 5)
    # 08:00 and 20:00 in Shanghai (UTC+8).
    assert round_.opens_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert round_.closes_at == datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    lift, company, extras = round_.questions
    assert (lift.key, lift.method, lift.rule, lift.proposal_id) == (
        "q1",
        "yes_no_abstain",
        "art278_major",
        scheduled.id,
    )
    assert [o["id"] for o in lift.option_list] == ["yes", "no", "abstain"]
    assert company.option_list == [
        {"id": "o1", "label": "Otis"},
        {"id": "o2", "label": "Kone"},
        {"id": "o3", "label": "Schindler"},
    ]
    assert (company.method, company.max_choices, company.rule) == ("single", 1, "two_thirds")
    assert (company.quorum_num, company.quorum_den) == (1, 2)
    assert (extras.method, extras.max_choices, extras.rule) == ("approval", 2, "three_quarters")
    assert [o["label"] for o in extras.option_list] == ["Mirror", "Seat", "Music", "Camera"]
    assert extras.quorum_num is None


def test_a_round_in_berlin_time_across_the_summer_time_change(
    db, make_community, make_member, login_as
):
    community = make_community("Lindenhof", timezone="Europe/Berlin")
    committee = make_member(community, role="committee", area=Decimal("75"))
    with at(BEFORE):
        client = login_as(committee)
        response = post(
            client,
            new_path(community),
            form(opens_at="2027-03-20T08:00", closes_at="2027-04-02T20:00"),
        )
        assert response.status_code == 303, text(response)[-3000:]
        (round_,) = rounds(db)
        # 08:00 CET (UTC+1) and 20:00 CEST (UTC+2): the offset of each moment.
        assert round_.opens_at == datetime(2027, 3, 20, 7, 0, tzinfo=UTC)
        assert round_.closes_at == datetime(2027, 4, 2, 18, 0, tzinfo=UTC)
        edit = text(client.get(f"/r/{round_.id}/edit"))
        assert "Times are in the community's time zone (Europe/Berlin)." in edit
        assert 'value="2027-03-20T08:00"' in edit and 'value="2027-04-02T20:00"' in edit
        page = text(client.get(f"/r/{round_.id}"))
    assert "Mar 20, 2027, 8:00:00" in page and "Apr 2, 2027, 8:00:00" in page


INVALID = {
    "closes before it opens": (
        {"closes_at": "2026-11-30T08:00"},
        "The round must close at least 10 minutes after it opens.",
    ),
    "opens in the past": (
        {"opens_at": "2026-11-20T08:00", "closes_at": "2026-11-27T08:00"},
        "The opening time is in the past.",
    ),
    "no question": ({"questions-0-title": ""}, "Please add at least one question."),
    "single choice with one option": (
        {"questions-0-method": "single", "questions-0-option_labels": "Otis"},
        "Question 1 needs from 2 to 20 options.",
    ),
    "the same option twice": (
        {"questions-0-method": "single", "questions-0-option_labels": "Otis\nKone\notis"},
        "Question 1 has the same option twice.",
    ),
    "approval of more than the options": (
        {
            "questions-0-method": "approval",
            "questions-0-option_labels": "Mirror\nSeat",
            "questions-0-max_choices": "3",
        },
        "In question 1, voters may choose from 1 up to all options.",
    ),
    "art278 with residents": (
        {"electorate": "residents", "questions-0-rule": "art278_ordinary"},
        "The owners' double majority needs an electorate of owners or households.",
    ),
    "art278 with a quorum": (
        {"questions-0-rule": "art278_major", "questions-0-quorum": "50"},
        "The owners' double majority has its own participation rule; no quorum.",
    ),
    "quorum above 100": ({"questions-0-quorum": "150"}, "Number must be between 0 and 100."),
    "quorum of 0": (
        {"questions-0-quorum": "0"},
        "A quorum is a percentage above 0 and at most 100.",
    ),
}


@pytest.mark.parametrize("changes, message", INVALID.values(), ids=INVALID.keys())
def test_a_refused_round_keeps_what_was_typed(db, estate, login_as, changes, message):
    with at(BEFORE):
        client = login_as(estate.committee)
        response = post(client, new_path(estate.community), form(**changes))
    assert response.status_code == 400
    page = text(response)
    assert message in page
    assert f'value="{TITLE}"' in page
    assert "The lift would serve all 18 floors." in page
    assert 'value="Building 3"' in page
    for value in changes.values():
        if "\n" in value:
            assert value in page, "the options are kept"
    assert rounds(db) == []


def test_proposals_that_cannot_be_put_to_the_vote(
    db, estate, make_community, make_member, login_as, proposal
):
    collecting = proposal("Plant trees", status="collecting")
    other = make_community("Elsewhere")
    foreign = proposal("Their fence", community=other, author=make_member(other, role="owner"))
    taken = proposal("Fix the gate")
    with at(BEFORE):
        client = login_as(estate.committee)
        first = post(
            client, new_path(estate.community), form(**{"questions-0-proposal": str(taken.id)})
        )
        assert first.status_code == 303
        for wanted, message in (
            (collecting, "Only proposals scheduled for a vote can be put to the vote."),
            (foreign, "That proposal is not one of this community's."),
            (taken, "That proposal is already on another voting round."),
        ):
            response = post(
                client,
                new_path(estate.community),
                form(title="Second round", **{"questions-0-proposal": str(wanted.id)}),
            )
            assert response.status_code == 400, wanted.title
            assert message in text(response)
            assert 'value="Second round"' in text(response)
    assert len(rounds(db)) == 1


def test_a_scheduled_proposal_is_decided_by_its_question(db, estate, login_as, proposal, cast):
    from ballots import jobs, services
    from deliberation.models import Proposal

    fence = proposal()
    with at(BEFORE):
        client = login_as(estate.committee)
        page = text(client.get(f"{new_path(estate.community)}?proposal={fence.id}"))
        assert f'<option selected value="{fence.id}">Repaint the fence</option>' in page
        response = post(
            client,
            new_path(estate.community),
            form(**{"questions-0-proposal": str(fence.id), "questions-0-title": "Repaint?"}),
        )
        assert response.status_code == 303
        round_ = rounds(db)[0]
        page = text(client.get(f"/r/{round_.id}"))
    assert f'href="/p/{fence.id}">the proposal</a>' in page
    assert round_.questions[0].proposal_id == fence.id
    assert jobs.open_rounds(T0) == 1
    db.session.refresh(fence)
    assert fence.status == "voting"
    for voter in estate.voters[:3]:
        cast(voter, round_, {"q1": ["yes"]})
    assert close(db, round_, now=round_.closes_at)
    assert services.finalize_round(round_.id, round_.objections_until)
    db.session.commit()
    assert (
        db.session.get(Proposal, fence.id).status == "implementation"
    )  # accepted, and so carried out


# ---------------------------------------------------------------- editing


def test_a_round_can_be_changed_until_it_opens(db, estate, make_round, login_as):
    from ballots import jobs

    round_ = make_round(opened=False)
    path = f"/r/{round_.id}/edit"
    changed = form(
        title="Autumn decisions",
        electorate="residents",
        closes_at="2026-12-10T20:00",
        **{
            "questions-0-title": "Paint the fence green?",
            "questions-1-title": "Which day?",
            "questions-1-method": "single",
            "questions-1-option_labels": "Saturday\nSunday",
        },
    )
    with at(BEFORE):
        client = login_as(estate.committee)
        page = text(client.get(path))
        assert 'value="Spring decisions"' in page
        assert 'value="2026-12-01T08:00"' in page and 'value="2026-12-08T08:00"' in page
        assert 'value="Paint the fence?"' in page
        response = post(client, path, changed)
        assert response.status_code == 303
        page = text(client.get(path))
    assert 'value="Autumn decisions"' in page and 'value="Which day?"' in page
    assert "Saturday\nSunday" in page
    db.session.refresh(round_)
    assert round_.title == "Autumn decisions"
    assert round_.closes_at == datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    assert [q.title for q in round_.questions] == ["Paint the fence green?", "Which day?"]

    with at(T0 + timedelta(minutes=1)):
        late = post(login_as(estate.committee), path, form(title="Too late"))
    assert late.status_code == 409
    assert "A round can be changed only until it opens." in text(late)
    db.session.refresh(round_)
    assert round_.title == "Autumn decisions"

    assert jobs.open_rounds(T0 + timedelta(minutes=1)) == 1
    with at(T0 + timedelta(minutes=2)):
        client = login_as(estate.committee)
        assert client.get(path).status_code == 409
        token = csrf_token(client, f"/r/{round_.id}")
        refused = client.post(path, data={**form(title="Too late"), "csrf_token": token})
    assert refused.status_code == 409
    db.session.refresh(round_)
    assert (round_.title, round_.status) == ("Autumn decisions", "open")


def test_residents_cannot_create_or_change_rounds(db, estate, make_round, login_as):
    round_ = make_round(opened=False)
    with at(BEFORE):
        client = login_as(estate.voters[0])
        assert client.get(new_path(estate.community)).status_code == 403
        assert client.get(f"/r/{round_.id}/edit").status_code == 403
        token = csrf_token(client, f"/r/{round_.id}")
        assert (
            client.post(
                new_path(estate.community), data={**form(), "csrf_token": token}
            ).status_code
            == 403
        )
        assert (
            client.post(f"/r/{round_.id}/edit", data={**form(), "csrf_token": token}).status_code
            == 403
        )
    assert len(rounds(db)) == 1
    db.session.refresh(round_)
    assert round_.title == "Spring decisions"


def test_extra_form_fields_are_ignored(db, estate, make_round, login_as):
    from ballots import keys
    from crypto import board

    forged = {
        "status": "open",
        "round_hash": "ab" * 32,
        "key_seed": "00" * 32,
        "public_key": "cd" * 32,
        "manifest": "{}",
        "result": "{}",
        "created_by_id": str(estate.voters[0].id),
        "community_id": "999",
        "head_n": "7",
    }
    with at(BEFORE):
        client = login_as(estate.committee)
        response = post(client, new_path(estate.community), {**form(), **forged})
    assert response.status_code == 303
    (round_,) = rounds(db)
    assert round_.status == "scheduled"
    assert round_.round_hash is None and round_.manifest is None and round_.result is None
    assert round_.key_seed != "00" * 32
    assert round_.public_key == board.public_key(keys.round_seed(round_))
    assert round_.created_by_id == estate.committee.id
    assert round_.community_id == estate.community.id
    assert round_.head_n == -1
    seed = round_.key_seed
    with at(BEFORE):
        client = login_as(estate.committee)
        response = post(client, f"/r/{round_.id}/edit", {**form(title="Edited"), **forged})
    assert response.status_code == 303
    db.session.refresh(round_)
    assert (round_.title, round_.status, round_.key_seed) == ("Edited", "scheduled", seed)
    assert round_.round_hash is None and round_.head_n == -1


# ---------------------------------------------------------------- objections and annulment


def test_objections_during_the_objection_period(db, estate, make_round, cast, login_as):
    from ballots.models import Objection

    round_ = make_round(objection_days=3)
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    with at(T0 + timedelta(hours=2)):
        early = post(
            login_as(estate.voters[1]), f"/r/{round_.id}/objections", {"body": "Too early"}
        )
    assert early.status_code == 409
    close(db, round_)
    with at(T1 + timedelta(hours=1)):
        member = login_as(estate.voters[1])
        raised = post(member, f"/r/{round_.id}/objections", {"body": "Building 2 got no notice."})
        assert raised.status_code == 303
        assert raised.headers["Location"].endswith(f"/r/{round_.id}#objections")
        page = text(member.get(f"/r/{round_.id}"))
        assert "Building 2 got no notice." in page and "Owner 2" in page
        objection = db.session.scalars(select(Objection)).one()
        answer_path = f"/objections/{objection.id}/answer"
        assert 'name="answer"' not in page, "only the committee answers"
        refused = post(member, answer_path, {"answer": "Resident's answer"})
        assert refused.status_code == 403
        committee = login_as(estate.committee)
        answered = post(committee, answer_path, {"answer": "The notice was posted on 20 Nov."})
        assert answered.status_code == 303
        page = text(member.get(f"/r/{round_.id}"))
    assert "<strong>The committee answered:</strong> The notice was posted on 20 Nov." in page
    assert "Resident's answer" not in page
    db.session.refresh(objection)
    assert objection.answered_by_id == estate.committee.id

    with at(T1 + timedelta(days=3, minutes=1)):
        member = login_as(estate.voters[1])
        page = text(member.get(f"/r/{round_.id}"))
        assert "Raise the objection" not in page
        late = post(member, f"/r/{round_.id}/objections", {"body": "Too late"})
    assert late.status_code == 409
    assert "Objections can be raised only during the objection period." in text(late)
    assert db.session.scalar(select(func.count(Objection.id))) == 1


def test_annulment_with_a_reason(db, estate, make_round, cast, login_as, proposal):
    from ballots import services
    from deliberation.models import Proposal

    fence = proposal()
    round_ = make_round([yes_no("Repaint the fence?", proposal_id=fence.id)], objection_days=7)
    for voter in estate.voters:
        cast(voter, round_, {"q1": ["yes"]})
    close(db, round_)
    assert db.session.get(Proposal, fence.id).status == "voting"
    reason = "Two buildings were left off the list of voters."
    with at(T1 + timedelta(days=1)):
        resident = login_as(estate.voters[0])
        assert "Annul this round" not in text(resident.get(f"/r/{round_.id}"))
        refused = post(resident, f"/r/{round_.id}/annul", {"reason": reason})
        assert refused.status_code == 403
        db.session.refresh(round_)
        assert round_.status == "closed" and round_.annul_reason is None
        assert db.session.get(Proposal, fence.id).status == "voting"

        committee = login_as(estate.committee)
        assert "Annul this round" in text(committee.get(f"/r/{round_.id}"))
        blank = post(committee, f"/r/{round_.id}/annul", {"reason": ""})
        assert blank.status_code == 400
        annulled = post(committee, f"/r/{round_.id}/annul", {"reason": reason})
        assert annulled.status_code == 303
        page = text(resident.get(f"/r/{round_.id}"))
        notice = text(resident.get(f"/r/{round_.id}/notice"))
    db.session.refresh(round_)
    assert round_.status == "annulled" and round_.annul_reason == reason
    db.session.expire_all()
    assert db.session.get(Proposal, fence.id).status == "scheduled"
    assert "Annulled" in page and "Result (annulled)" in page
    assert f"The committee annulled this round: {reason}" in page
    assert f"Annulled: {reason}" in notice
    final = [e for e in services.board_document(round_)["entries"] if e["type"] == "final"]
    assert [e["payload"]["outcome"] for e in final] == ["annulled"]
    assert final[0]["payload"]["reason"] == reason
    assert not services.finalize_round(round_.id, T1 + timedelta(days=30))
