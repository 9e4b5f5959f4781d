"""A round's life through the services: open, cast, re-cast, close, tally, final."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.ballots.conftest import T1, close, yes_no


def test_round_opens_with_a_frozen_electorate_and_a_signed_manifest(db, estate, make_round):
    from ballots.models import BoardEntry, Voter
    from crypto import board

    round_ = make_round(electorate="owners")
    assert round_.status == "open"
    assert round_.electorate_voters == 5
    assert round_.electorate_weight == 9000 + 8000 + 10050 + 12000 + 6025
    assert db.session.scalar(select(func.count(Voter.id)).where(Voter.round_id == round_.id)) == 5
    setup = db.session.scalar(select(BoardEntry).where(BoardEntry.n == 0))
    manifest = setup.as_json()["payload"]["manifest"]
    assert board.round_hash(manifest).hex() == round_.round_hash
    assert board.verify(
        round_.public_key, "manifest", manifest, setup.as_json()["payload"]["signature"]
    )


def test_second_ballot_replaces_first(db, estate, make_round, cast):
    from ballots.models import Ballot

    round_ = make_round()
    voter = estate.voters[0]
    first = cast(voter, round_, {"q1": ["yes"]})
    second = cast(voter, round_, {"q1": ["no"]})
    current = db.session.scalars(select(Ballot).where(Ballot.is_current.is_(True))).all()
    assert [b.id for b in current] == [second.id]
    assert first.board_n < second.board_n
    close(db, round_)
    result = round_.result_data["questions"][0]
    assert result["counts"] == {"yes": 0, "no": 1, "abstain": 0}


def test_close_tallies_publishes_and_the_final_result_moves_on(db, estate, make_round, cast):
    from ballots import services

    round_ = make_round()
    for voter, answer in zip(estate.voters, ("yes", "yes", "no", "abstain"), strict=True):
        cast(voter, round_, {"q1": [answer]})
    assert close(db, round_)
    assert round_.status == "closed"
    result = round_.result_data["questions"][0]
    assert result["passed"] is True
    assert result["counts"] == {"yes": 2, "no": 1, "abstain": 1}
    assert not close(db, round_), "a second close changes nothing"
    assert services.finalize_round(round_.id, T1 + timedelta(days=6)) is False
    assert services.finalize_round(round_.id, T1 + timedelta(days=7)) is True
    db.session.commit()
    db.session.refresh(round_)
    assert round_.status == "final"


def test_the_board_of_a_closed_round_verifies(db, estate, make_round, cast):
    from ballots import services
    from crypto.verify import verify_board

    round_ = make_round([yes_no(), yes_no("Plant trees?", rule="two_thirds")])
    cast(estate.voters[0], round_, {"q1": ["yes"], "q2": ["no"]})
    cast(estate.voters[1], round_, {"q1": ["no"], "q2": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["yes"], "q2": ["yes"]})
    close(db, round_)
    report = verify_board(services.board_document(round_))
    assert report.ok, report.problems


def test_no_ballot_at_or_after_the_close(db, estate, make_round, cast):
    import pytest

    from ballots.services import RoundClosed

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]}, now=T1 - timedelta(milliseconds=1))
    with pytest.raises(RoundClosed):
        cast(estate.voters[1], round_, {"q1": ["yes"]}, now=T1)
    db.session.rollback()
    with pytest.raises(RoundClosed):
        cast(estate.voters[2], round_, {"q1": ["yes"]}, now=T1 + timedelta(seconds=1))


def test_a_used_ballot_form_with_other_answers_is_refused_not_dropped(db, estate, make_round, cast):
    """Back to the review page after casting, change an answer, cast again with the same
    form: the voter is told to start again instead of getting the old receipt."""
    import pytest

    from ballots.models import Ballot
    from ballots.services import new_nonce
    from web.errors import Conflict

    round_ = make_round()
    nonce = new_nonce()
    first = cast(estate.voters[0], round_, {"q1": ["yes"]}, nonce=nonce)
    assert cast(estate.voters[0], round_, {"q1": ["yes"]}, nonce=nonce).id == first.id
    with pytest.raises(Conflict):
        cast(estate.voters[0], round_, {"q1": ["no"]}, nonce=nonce)
    db.session.rollback()
    assert db.session.query(Ballot).count() == 1
