"""The voting pages as a resident uses them: round page, one question per screen, review,
cast, receipt; results only after the close."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine

from tests.ballots.conftest import T0, T1, close, yes_no
from tests.conftest import csrf_token

NONCE = re.compile(r'name="nonce" value="([0-9a-f]{32})"')


def _step(client, round_id, data):
    return client.post(f"/r/{round_id}/vote", data=data)


def test_resident_votes_step_by_step_and_gets_a_receipt(
    db, estate, make_round, login_as, monkeypatch
):
    from ballots.services import QuestionDraft

    round_ = make_round(
        [
            yes_no(),
            QuestionDraft(
                title="Which colour?", method="single", options=["Green", "Blue", "Grey"]
            ),
        ]
    )
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        client = login_as(estate.voters[0])
        page = client.get(f"/r/{round_.id}")
        assert page.status_code == 200
        assert "Vote now" in page.get_data(as_text=True)
        first = client.get(f"/r/{round_.id}/vote")
        html = first.get_data(as_text=True)
        assert "Question 1 of 2" in html and "Paint the fence?" in html
        token = csrf_token(client, f"/r/{round_.id}/vote")
        nonce = NONCE.search(html).group(1)
        second = _step(
            client, round_.id, {"csrf_token": token, "nonce": nonce, "step": "0", "a_q1": "yes"}
        )
        assert second.status_code == 200
        assert "Which colour?" in second.get_data(as_text=True)
        missing = _step(client, round_.id, {"csrf_token": token, "nonce": nonce, "step": "0"})
        assert missing.status_code == 400
        assert "Please choose one answer." in missing.get_data(as_text=True)
        review = _step(
            client,
            round_.id,
            {"csrf_token": token, "nonce": nonce, "step": "1", "a_q1": "yes", "a_q2": "o2"},
        )
        text = review.get_data(as_text=True)
        assert "Review your ballot" in text and "Blue" in text
        cast = client.post(
            f"/r/{round_.id}/cast",
            data={"csrf_token": token, "nonce": nonce, "a_q1": "yes", "a_q2": "o2"},
        )
        assert cast.status_code == 303
        receipt = client.get(cast.headers["Location"])
        assert receipt.status_code == 200
        assert "Your ballot is recorded" in receipt.get_data(as_text=True)
        again = client.post(
            f"/r/{round_.id}/cast",
            data={"csrf_token": token, "nonce": nonce, "a_q1": "yes", "a_q2": "o2"},
        )
        assert again.headers["Location"] == cast.headers["Location"], "same POST, same receipt"
        hidden = client.get(f"/r/{round_.id}/results.csv")
        assert hidden.status_code == 403
        board = client.get(f"/r/{round_.id}/board.json")
        assert board.status_code == 403
    close(db, round_)
    with time_machine.travel(T1, tick=False):
        client = login_as(estate.voters[0])
        page = client.get(f"/r/{round_.id}").get_data(as_text=True)
        assert "Preliminary result" in page
        assert client.get(f"/r/{round_.id}/results.csv").status_code == 200
        assert client.get(f"/r/{round_.id}/results.json").status_code == 200
        download = client.get(f"/r/{round_.id}/board.json")
        assert download.status_code == 200
        assert client.get(f"/r/{round_.id}/notice").status_code == 200
    _verified_on_its_text(download.get_data(), monkeypatch)


def _verified_on_its_text(data: bytes, monkeypatch) -> None:
    """The board download is in the form the verifier checks on its text: only the entries
    that are neither credentials nor online ballots are parsed again."""
    import json

    from tests.crypto.text_checks import checked_in_full

    report, again = checked_in_full(data, monkeypatch)
    assert report.ok, report.problems
    entries = json.loads(data)["entries"]
    assert {e["type"] for e in entries} >= {"credential", "ballot"}
    assert sorted(again) == sorted(
        e["type"] for e in entries if e["type"] not in ("credential", "ballot")
    )


def test_committee_creates_a_round_through_the_form(db, estate, login_as):
    from ballots.models import Round

    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        client = login_as(estate.committee)
        assert client.get(f"/c/{estate.community.id}/rounds/new").status_code == 200
        token = csrf_token(client, f"/c/{estate.community.id}/rounds/new")
        response = client.post(
            f"/c/{estate.community.id}/rounds/new",
            data={
                "csrf_token": token,
                "title": "Lift for building 3",
                "opens_at": "2026-12-01T08:00",
                "closes_at": "2026-12-08T20:00",
                "electorate": "owners",
                "secrecy": "named",
                "objection_days": "7",
                "questions-0-title": "Install the lift?",
                "questions-0-method": "yes_no_abstain",
                "questions-0-rule": "art278_major",
                "questions-0-max_choices": "1",
                "questions-0-proposal": "",
                "questions-1-title": "",
                "questions-2-title": "",
            },
        )
        assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    round_ = db.session.query(Round).one()
    assert round_.opens_at.isoformat() == "2026-12-01T00:00:00+00:00"  # 08:00 in Shanghai
    assert [q.rule for q in round_.questions] == ["art278_major"]
