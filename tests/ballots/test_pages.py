"""What a resident and the committee see on the voting pages: the round page before, while
and after voting, the one-question-per-screen ballot, receipts and their check, paper
ballots, the home page, and ballots signed in the voter's browser."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from babel.dates import format_datetime
from sqlalchemy import func, select

from ballots.forms import RULE_LABELS
from tests.ballots.conftest import T0, T1, close, yes_no
from tests.conftest import csrf_token

NONCE = re.compile(r'name="nonce" value="([0-9a-f]{32})"')
PAPER_NONCE = re.compile(r'name="nonce" type="hidden" value="([0-9a-f]{32})"')
DURING = T0 + timedelta(hours=2)
BEFORE = T0 - timedelta(days=1)


def english(label) -> str:
    from flask_babel import force_locale

    with force_locale("en"):
        return str(label)


def at(moment):
    return time_machine.travel(moment, tick=False)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{value}">'


def checked(name: str, value: str) -> re.Pattern:
    return re.compile(rf'name="{name}" value="{value}" checked')


def medium(moment, zone="Asia/Shanghai") -> str:
    return format_datetime(moment, "medium", tzinfo=ZoneInfo(zone), locale="en")


def questions():
    from ballots.services import QuestionDraft

    return [
        yes_no(),
        QuestionDraft(title="Which colour?", method="single", options=["Green", "Blue", "Grey"]),
        QuestionDraft(
            title="Which playground items?",
            method="approval",
            options=["Swings", "Slide", "Sandpit", "Benches"],
            max_choices=2,
        ),
    ]


def count(db, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.session.scalar(query)


def voter_row(db, round_, user):
    from ballots.models import Voter

    return db.session.scalar(
        select(Voter).where(Voter.round_id == round_.id, Voter.user_id == user.id)
    )


def entries(db, round_, entry_type: str) -> list[dict]:
    from ballots.models import BoardEntry

    rows = db.session.scalars(
        select(BoardEntry)
        .where(BoardEntry.round_id == round_.id, BoardEntry.type == entry_type)
        .order_by(BoardEntry.n)
    )
    return [row.as_json()["payload"] for row in rows]


class Ballot:
    """A browser going through the ballot: the token, the nonce and the POSTs."""

    def __init__(self, client, round_id: int):
        self.client, self.round_id = client, round_id
        first = client.get(f"/r/{round_id}/vote")
        assert first.status_code == 200, first.status_code
        self.nonce = NONCE.search(first.get_data(as_text=True)).group(1)
        self.token = csrf_token(client, f"/r/{round_id}")

    def step(self, step: int, answers: dict, **extra):
        data = {"csrf_token": self.token, "nonce": self.nonce, "step": str(step), **extra}
        for key, value in answers.items():
            data[f"a_{key}"] = value
        return self.client.post(f"/r/{self.round_id}/vote", data=data)

    def cast(self, answers: dict, **extra):
        data = {"csrf_token": self.token, "nonce": self.nonce, **extra}
        for key, value in answers.items():
            data[f"a_{key}"] = value
        return self.client.post(f"/r/{self.round_id}/cast", data=data)


# ---------------------------------------------------------------- the round page


def test_round_page_before_opening_is_the_vote_notice(db, estate, make_round, login_as):
    round_ = make_round(
        [yes_no(rule="art278_major"), yes_no("Plant trees?")], electorate="owners", opened=False
    )
    round_.scope = "Buildings 1 to 6"
    db.session.commit()
    with at(BEFORE):
        page = login_as(estate.voters[0]).get(f"/r/{round_.id}")
    assert page.status_code == 200
    body = text(page)
    assert "Vote notice" in body and "Scheduled" in body
    assert f"{medium(T0)} to {medium(T1)}" in body
    assert "8:00" in medium(T0), "the period is shown in the community's zone"
    assert "Buildings 1 to 6" in body
    assert "Owners only (weighted by private area where the rule needs it)" in body
    # Four owners and the committee member: 90 + 80 + 100.50 + 120 + 60.25 m².
    assert "5 · total private area 450.75 m²" in body
    assert "(fixed when the round opens)" in body
    assert "Paint the fence?" in body and "Plant trees?" in body
    assert english(RULE_LABELS["art278_major"]) in body
    assert "Vote now" not in body and "Vote again" not in body
    assert f"/r/{round_.id}/vote" not in body
    assert "Turnout" not in body
    with at(BEFORE):
        assert login_as(estate.voters[0]).get(f"/r/{round_.id}/vote").status_code == 409


def test_round_page_shows_a_questions_quorum(estate, make_round, login_as):
    round_ = make_round([yes_no(quorum_percent=Decimal("50"))], opened=False)
    with at(BEFORE):
        page = login_as(estate.voters[0]).get(f"/r/{round_.id}")
    assert page.status_code == 200
    assert "quorum 50.0%" in text(page)


def test_round_page_while_open_shows_turnout_and_no_counts(
    db, estate, make_round, make_member, cast, login_as
):
    round_ = make_round(electorate="owners")
    first = cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    not_an_owner = make_member(estate.community, role="resident", area=None)
    with at(DURING):
        fresh = text(login_as(estate.voters[2]).get(f"/r/{round_.id}"))
        voted = text(login_as(estate.voters[0]).get(f"/r/{round_.id}"))
        committee = text(login_as(estate.committee).get(f"/r/{round_.id}"))
        outsider = text(login_as(not_an_owner).get(f"/r/{round_.id}"))
    for body in (fresh, voted, committee, outsider):
        assert "Open for voting" in body
        assert "Turnout so far: 2 of 5 voters (40.0%)." in body
        assert "Nobody, not even the committee, can see any count before the round closes." in body
        for sign_of_a_count in ("Preliminary result", "Took part", "carried", "<table", "<svg"):
            assert sign_of_a_count not in body
        assert "results.csv" not in body and "board.json" not in body
    assert "Vote now" in fresh and "Vote again" not in fresh
    assert "Vote again" in voted and "Vote now" not in voted
    assert "You have voted. You may vote again until the close; only your last ballot counts." in (
        voted
    )
    assert f'href="/r/{round_.id}/receipts/{first.id}"' in voted
    assert "Vote now" not in outsider and "Vote again" not in outsider
    assert "Record a paper or proxy ballot" in committee
    assert "Record a paper or proxy ballot" not in fresh


# ---------------------------------------------------------------- the ballot, screen by screen


def test_one_question_per_screen_with_back_change_review_and_receipt(
    db, estate, make_round, login_as
):
    from ballots.models import Ballot as BallotRow

    round_ = make_round(questions())
    with at(DURING):
        client = login_as(estate.voters[0])
        ballot = Ballot(client, round_.id)
        first = text(client.get(f"/r/{round_.id}/vote"))
        assert "Question 1 of 3" in first and "Paint the fence?" in first
        assert 'type="radio" name="a_q1" value="yes"' in first

        blank = ballot.step(0, {})
        assert blank.status_code == 400
        assert "Please choose one answer." in text(blank)

        second = text(ballot.step(0, {"q1": "yes"}))
        assert "Question 2 of 3" in second and "Which colour?" in second
        assert hidden("a_q1", "yes") in second

        two_colours = ballot.step(1, {"q1": "yes", "q2": ["o1", "o2"]})
        assert two_colours.status_code == 400
        assert "Please choose one answer." in text(two_colours)

        third = text(ballot.step(1, {"q1": "yes", "q2": "o2"}))
        assert "Question 3 of 3" in third and "Choose up to 2." in third
        assert hidden("a_q1", "yes") in third and hidden("a_q2", "o2") in third
        assert "Review my ballot" in third

        too_many = ballot.step(2, {"q1": "yes", "q2": "o2", "q3": ["o1", "o2", "o3"]})
        assert too_many.status_code == 400
        page = text(too_many)
        assert "Please choose at most 2 options." in page
        assert "Question 3 of 3" in page
        assert hidden("a_q1", "yes") in page and hidden("a_q2", "o2") in page
        assert all(checked("a_q3", o).search(page) for o in ("o1", "o2", "o3"))

        back = text(ballot.step(2, {"q1": "yes", "q2": "o2", "q3": ["o1", "o3"]}, back="1"))
        assert "Question 2 of 3" in back
        assert checked("a_q2", "o2").search(back)
        assert not checked("a_q2", "o1").search(back)
        assert hidden("a_q1", "yes") in back
        assert hidden("a_q3", "o1") in back and hidden("a_q3", "o3") in back

        forward = text(ballot.step(1, {"q1": "yes", "q2": "o2", "q3": ["o1", "o3"]}))
        assert "Question 3 of 3" in forward
        assert checked("a_q3", "o1").search(forward) and checked("a_q3", "o3").search(forward)
        assert not checked("a_q3", "o2").search(forward)

        review = ballot.step(2, {"q1": "yes", "q2": "o2", "q3": ["o1", "o3"]})
        assert review.status_code == 200
        page = text(review)
        assert "Review your ballot" in page
        for title in ("Paint the fence?", "Which colour?", "Which playground items?"):
            assert title in page
        assert "<strong>Yes</strong>" in page
        assert "<strong>Blue</strong>" in page
        assert "<strong>Swings, Sandpit</strong>" in page
        assert page.count(">Change</button>") == 3

        change = text(ballot.step(0, {"q1": "yes", "q2": "o2", "q3": ["o1", "o3"]}, goto="1"))
        assert "Question 2 of 3" in change
        assert checked("a_q2", "o2").search(change)
        assert hidden("a_q1", "yes") in change
        assert hidden("a_q3", "o1") in change and hidden("a_q3", "o3") in change

        changed = text(ballot.step(1, {"q1": "yes", "q2": "o3", "q3": ["o1", "o3"]}))
        assert "Question 3 of 3" in changed
        final = text(ballot.step(2, {"q1": "yes", "q2": "o3", "q3": ["o1", "o3"]}))
        assert "<strong>Grey</strong>" in final and "Blue" not in final

        cast = ballot.cast({"q1": "yes", "q2": "o3", "q3": ["o1", "o3"]})
        assert cast.status_code == 303
        receipt_url = cast.headers["Location"]
        receipt = client.get(receipt_url)
        assert receipt.status_code == 200
        page = text(receipt)
        stored = db.session.scalars(select(BallotRow)).one()
        data = stored.receipt_data
        assert data["n"] == stored.board_n
        assert "Your ballot is recorded" in page
        assert f"<dd>{data['n']}</dd>" in page
        assert data["ballot"] in page and data["head"] in page and round_.public_key in page
        assert 'src="data:image/svg+xml;base64,' in page
        assert "only your last ballot counts" in page

        assert login_as(estate.voters[1]).get(receipt_url).status_code == 404
        assert login_as(estate.committee).get(receipt_url).status_code == 404
    assert stored.ballot_hash == data["ballot"]
    assert json.loads(json.dumps(stored.receipt_data)) == data


def test_a_re_vote_shows_on_the_round_page(db, estate, make_round, login_as):
    from ballots.models import Ballot as BallotRow

    round_ = make_round()
    with at(DURING):
        client = login_as(estate.voters[0])
        first = Ballot(client, round_.id).cast({"q1": "yes"})
        assert first.status_code == 303
        page = text(client.get(f"/r/{round_.id}"))
        assert "Vote again" in page and first.headers["Location"] in page
        second = Ballot(client, round_.id).cast({"q1": "no"})
        assert second.status_code == 303
        assert second.headers["Location"] != first.headers["Location"]
        page = text(client.get(f"/r/{round_.id}"))
        assert "You have voted." in page
        assert second.headers["Location"] in page and first.headers["Location"] not in page
        assert "Turnout so far: 1 of 5 voters (20.0%)." in page
        # The earlier receipt stays the voter's own.
        assert client.get(first.headers["Location"]).status_code == 200
    current = db.session.scalars(select(BallotRow).where(BallotRow.is_current.is_(True))).all()
    assert [f"/r/{round_.id}/receipts/{b.id}" for b in current] == [second.headers["Location"]]


def test_the_home_page_lists_open_votes_for_eligible_voters_only(
    db, estate, make_round, make_member, make_community, login_as
):
    scheduled = make_round(electorate="owners", opened=False, opens_at=T0 + timedelta(days=1))
    scheduled.title = "Next month's matters"
    round_ = make_round(electorate="owners")
    not_an_owner = make_member(estate.community, role="resident", area=None)
    elsewhere = make_member(make_community("Elsewhere"), role="owner", area=Decimal("70"))
    db.session.commit()
    with at(DURING):
        owner = text(login_as(estate.voters[0]).get("/"))
        resident = text(login_as(not_an_owner).get("/"))
        stranger = text(login_as(elsewhere).get("/"))
    assert "Votes open for you" in owner
    assert f'href="/r/{round_.id}"' in owner and f'href="/r/{round_.id}/vote"' in owner
    assert "Next month's matters" not in owner
    for body in (resident, stranger):
        assert "Votes open for you" not in body
        assert f"/r/{round_.id}" not in body
    close(db, round_)
    with at(T1 + timedelta(hours=1)):
        assert "Votes open for you" not in text(login_as(estate.voters[0]).get("/"))


# ---------------------------------------------------------------- checking a receipt


def _check(client, round_id, receipt: str):
    token = csrf_token(client, f"/r/{round_id}/verify")
    return client.post(f"/r/{round_id}/verify", data={"csrf_token": token, "receipt": receipt})


def test_the_receipt_check(db, estate, make_round, cast, login_as):
    from crypto import board

    round_ = make_round()
    other = make_round()
    first = cast(estate.voters[0], round_, {"q1": ["yes"]})
    second = cast(estate.voters[0], round_, {"q1": ["no"]}, now=T0 + timedelta(hours=1, minutes=5))
    foreign = cast(estate.voters[0], other, {"q1": ["yes"]})
    with at(DURING):
        client = login_as(estate.voters[0])
        page = client.get(f"/r/{round_.id}/verify")
        assert page.status_code == 200 and "Check a receipt" in text(page)

        current = _check(client, round_.id, second.receipt)
        assert current.status_code == 200
        assert f"Your ballot is on the board at position {second.board_n}." in text(current)
        assert "It is your current ballot and counts." in text(current)

        replaced = _check(client, round_.id, first.receipt)
        assert replaced.status_code == 200
        assert f"Your ballot is on the board at position {first.board_n}." in text(replaced)
        assert "A later ballot of yours replaced it." in text(replaced)
        assert "It is your current ballot and counts." not in text(replaced)

        for garbage in ("hello", "{}", "[1, 2]", '"text"', "1.5", "{" + first.receipt[1:30]):
            response = _check(client, round_.id, garbage)
            assert 400 <= response.status_code < 500, garbage
            assert "This is not a Yishi receipt. Please paste all of it." in text(response)
        with_bool = dict(first.receipt_data, n=True)
        response = _check(client, round_.id, json.dumps(with_bool))
        assert response.status_code == 422
        assert "This is not a Yishi receipt." in text(response)

        empty = client.post(
            f"/r/{round_.id}/verify",
            data={"csrf_token": csrf_token(client, f"/r/{round_.id}/verify"), "receipt": ""},
        )
        assert empty.status_code == 400

        wrong_round = _check(client, round_.id, foreign.receipt)
        assert wrong_round.status_code == 422
        assert "This receipt belongs to another voting round." in text(wrong_round)

        for change in ({"n": first.board_n + 1}, {"ballot": second.receipt_data["ballot"]}):
            tampered = dict(first.receipt_data, **change)
            response = _check(client, round_.id, board.canonical(tampered).decode())
            assert response.status_code == 422, change
            assert "This receipt's signature is not valid." in text(response)
            assert "on the board" not in text(response)


def test_a_deeply_nested_paste_is_not_a_server_error(estate, make_round, login_as):
    round_ = make_round()
    with at(DURING):
        client = login_as(estate.voters[0])
        response = _check(client, round_.id, "[" * 1999 + "]" * 1999)
    assert response.status_code == 422
    assert "This is not a Yishi receipt." in text(response)


# ---------------------------------------------------------------- paper and proxy ballots


def _paper(client, round_id, voter_id, answers: dict, **fields):
    page = client.get(f"/r/{round_id}/paper")
    assert page.status_code == 200, page.status_code
    body = page.get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(client, f"/r/{round_id}/paper"),
        "nonce": PAPER_NONCE.search(body).group(1),
        "voter": str(voter_id),
        "channel": "paper",
        "witness": "Neighbour Li",
        **fields,
    }
    for key, value in answers.items():
        data[f"a_{key}"] = value
    return client.post(f"/r/{round_id}/paper", data=data)


def test_a_paper_ballot_keeps_the_voter_off_the_online_ballot(db, estate, make_round, login_as):
    from ballots.models import Ballot as BallotRow

    round_ = make_round()
    paper_voter = voter_row(db, round_, estate.voters[1])
    with at(DURING):
        committee = login_as(estate.committee)
        recorded = _paper(committee, round_.id, paper_voter.id, {"q1": "no"})
        assert recorded.status_code == 303, text(recorded)[-2000:]
        assert "The paper ballot was recorded on the board." in text(
            committee.get(recorded.headers["Location"])
        )

        voter = login_as(estate.voters[1])
        refused = Ballot(voter, round_.id).cast({"q1": "yes"})
        assert refused.status_code == 409
        assert "recorded on paper" in text(refused)
    ballot = entries(db, round_, "ballot")[-1]
    assert ballot["channel"] == "paper"
    assert ballot["entered_by"] == "Chair Wang"
    stored = db.session.scalars(select(BallotRow)).one()
    assert (stored.witness, stored.entered_by_id) == ("Neighbour Li", estate.committee.id)
    assert count(db, BallotRow) == 1


def test_no_paper_ballot_for_a_voter_who_voted_online(db, estate, make_round, cast, login_as):
    from ballots import services
    from ballots.models import Ballot as BallotRow
    from ballots.models import BoardEntry

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    online = voter_row(db, round_, estate.voters[0])
    board_before = count(db, BoardEntry)
    with at(DURING):
        committee = login_as(estate.committee)
        form = text(committee.get(f"/r/{round_.id}/paper"))
        assert f'value="{online.id}"' not in form, "not offered on the paper form"
        refused = _paper(committee, round_.id, online.id, {"q1": "no"})
        assert refused.status_code in (400, 409)
    assert count(db, BallotRow) == 1 and count(db, BoardEntry) == board_before
    with pytest.raises(services.VotedOnline):
        services.record_paper_ballot(
            estate.committee,
            round_,
            online.id,
            {"q1": ["no"]},
            channel="paper",
            witness="Neighbour Li",
            nonce=services.new_nonce(),
            now=DURING,
        )
    db.session.rollback()


def test_a_proxy_needs_a_note_and_residents_get_no_paper_form(db, estate, make_round, login_as):
    from ballots.models import Ballot as BallotRow

    round_ = make_round()
    proxy_voter = voter_row(db, round_, estate.voters[2])
    with at(DURING):
        committee = login_as(estate.committee)
        missing = _paper(committee, round_.id, proxy_voter.id, {"q1": "yes"}, channel="proxy")
        assert missing.status_code == 400
        assert "Please describe the written proxy authorization." in text(missing)
        assert count(db, BallotRow) == 0
        given = _paper(
            committee,
            round_.id,
            proxy_voter.id,
            {"q1": "yes"},
            channel="proxy",
            proxy_note="Signed authorization for her son, Room 12",
        )
        assert given.status_code == 303
        resident = login_as(estate.voters[0])
        assert resident.get(f"/r/{round_.id}/paper").status_code == 403
    assert entries(db, round_, "ballot")[-1]["channel"] == "proxy"
    assert db.session.scalars(select(BallotRow)).one().proxy_note.startswith("Signed")


# ---------------------------------------------------------------- signed in the browser


def _js_canonical(value) -> str:
    """canonical() of static/js/ballot-sign.js: sorted keys, no whitespace."""
    if isinstance(value, list):
        return "[" + ",".join(_js_canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(k)}:{_js_canonical(value[k])}" for k in sorted(value))
            + "}"
        )
    return json.dumps(value)


def _browser_cast(client, round_id: int, answers: dict, *, tamper: bool = False):
    """Walk to the review page and sign there, as ballot-sign.js does with WebCrypto."""
    from nacl.signing import SigningKey

    from crypto import board, writer

    ballot = Ballot(client, round_id)
    first = client.get(f"/r/{round_id}/vote").get_data(as_text=True)
    for step in range(int(re.search(r"Question 1 of (\d+)", first).group(1))):
        page = ballot.step(step, answers)
        assert page.status_code == 200, page.status_code
    review = page.get_data(as_text=True)
    assert "Review your ballot" in review
    form = review[review.index('id="cast-form"') :]
    round_hash = re.search(r'data-round-hash="([0-9a-f]{64})"', form).group(1)
    nonce = re.search(r'data-nonce="([0-9a-f]{32})"', form).group(1)
    ids = re.search(r'data-questions="([^"]*)"', form).group(1).split()
    signed: dict[str, list[str]] = {qid: [] for qid in ids}
    for qid, value in re.findall(r'value="([^"]+)" data-question="([^"]+)"', form):
        signed[value].append(qid)
    signed = {qid: sorted(choices) for qid, choices in signed.items()}
    key = SigningKey.generate()
    credential = key.verify_key.encode().hex()
    body = writer.ballot_body(round_hash, credential, nonce, signed)
    message = ("yishi-v1/ballot\n" + _js_canonical(body)).encode()
    assert message == board.signed_message("ballot", body)
    signature = key.sign(message).signature.hex()
    if tamper:
        signature = signature[:-2] + ("00" if signature[-2:] != "00" else "01")
    ballot.nonce = nonce
    response = ballot.cast(answers, credential=credential, signature=signature)
    return response, credential


def test_a_ballot_signed_in_the_browser(db, estate, make_round, login_as):
    from ballots.models import BoardEntry, Credential

    round_ = make_round(questions())
    # Two of the playground items, and in a second ballot none (a blank answer).
    answers = {"q1": "yes", "q2": "o2", "q3": ["o3", "o1"]}
    with at(DURING):
        client = login_as(estate.voters[0])
        accepted, key = _browser_cast(client, round_.id, answers)
        assert accepted.status_code == 303
        assert client.get(accepted.headers["Location"]).status_code == 200
    credential = entries(db, round_, "credential")[-1]
    assert credential["key"] == key
    assert credential["custodial"] is False and credential["revokes"] is None
    stored = db.session.scalars(select(Credential)).one()
    assert stored.custodial is False and stored.seed is None
    ballot = entries(db, round_, "ballot")[-1]
    assert ballot["ballot"]["credential"] == key and ballot["channel"] == "online"
    assert ballot["ballot"]["answers"] == {"q1": ["yes"], "q2": ["o2"], "q3": ["o1", "o3"]}

    with at(DURING):
        blank, _key = _browser_cast(login_as(estate.voters[2]), round_.id, {"q1": "no", "q2": "o1"})
    assert blank.status_code == 303
    assert entries(db, round_, "ballot")[-1]["ballot"]["answers"]["q3"] == []

    board_before = count(db, BoardEntry)
    with at(DURING):
        bad, _key = _browser_cast(login_as(estate.voters[1]), round_.id, answers, tamper=True)
    assert bad.status_code == 400
    assert "The ballot's signature did not verify." in text(bad)
    assert count(db, BoardEntry) == board_before
    assert count(db, Credential) == 2
    assert voter_row(db, round_, estate.voters[1]).voted_at is None


def _two_browser_ballots(db, estate, round_, login_as) -> tuple[str, str]:
    with at(DURING):
        client = login_as(estate.voters[0])
        first, old_key = _browser_cast(client, round_.id, {"q1": "yes"})
        second, new_key = _browser_cast(client, round_.id, {"q1": "no"})
        assert (first.status_code, second.status_code) == (303, 303)
        other, _key = _browser_cast(login_as(estate.voters[1]), round_.id, {"q1": "no"})
        assert other.status_code == 303
    return old_key, new_key


def test_a_browser_re_vote_revokes_the_earlier_key(db, estate, make_round, login_as):
    from ballots.models import Credential

    round_ = make_round()
    old_key, new_key = _two_browser_ballots(db, estate, round_, login_as)
    credentials = entries(db, round_, "credential")
    assert [c["key"] for c in credentials] == [old_key, new_key, credentials[2]["key"]]
    assert credentials[1]["revokes"] == old_key
    assert credentials[2]["revokes"] is None
    revoked = db.session.scalars(select(Credential).where(Credential.revoked.is_(True))).all()
    assert [c.public_key for c in revoked] == [old_key]
    close(db, round_)
    assert round_.result_data["questions"][0]["counts"] == {"yes": 0, "no": 2, "abstain": 0}


def test_the_board_with_browser_ballots_verifies(db, estate, make_round, login_as):
    from ballots import services
    from crypto.verify import verify_board

    round_ = make_round()
    _two_browser_ballots(db, estate, round_, login_as)
    close(db, round_)
    report = verify_board(services.board_document(round_))
    assert report.ok, report.problems


def test_the_round_page_of_a_voter_counted_on_paper(db, estate, make_round, login_as):
    round_ = make_round()
    paper_voter = voter_row(db, round_, estate.voters[1])
    with at(DURING):
        assert (
            _paper(login_as(estate.committee), round_.id, paper_voter.id, {"q1": "no"}).status_code
            == 303
        )
        client = login_as(estate.voters[1])
        page = text(client.get(f"/r/{round_.id}"))
        links = re.findall(rf'href="(/r/{round_.id}/receipts/\d+)"', page)
        assert all(client.get(link).status_code == 200 for link in links)
        assert "Vote again" not in page and "Vote now" not in page
