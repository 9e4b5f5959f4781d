"""Voting rounds for tests: a compound with a committee member and voters, and a round
created, opened and closed through the services with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # rounds open here ...
T1 = T0 + timedelta(days=7)  # ... and close here


@dataclass
class Estate:
    community: object
    committee: object
    voters: list = field(default_factory=list)


@pytest.fixture
def estate(make_community, make_member) -> Estate:
    """Sunny Garden: a committee member (an owner too) and four owners with areas."""
    community = make_community("Sunny Garden")
    committee = make_member(community, role="committee", area=Decimal("90.00"), name="Chair Wang")
    voters = [
        make_member(community, role="owner", area=Decimal(area), name=f"Owner {i}")
        for i, area in enumerate(("80.00", "100.50", "120.00", "60.25"), start=1)
    ]
    return Estate(community, committee, voters)


def yes_no(title: str = "Paint the fence?", rule: str = "simple_majority", **extra):
    from ballots.services import QuestionDraft

    return QuestionDraft(title=title, method="yes_no_abstain", rule=rule, **extra)


@pytest.fixture
def make_round(db, estate):
    """Create (and by default open) a round in the estate; returns the Round."""
    from ballots import services

    def factory(
        questions=None,
        *,
        electorate="residents",
        secrecy="secret",
        opened: bool = True,
        opens_at: datetime = T0,
        closes_at: datetime = T1,
        objection_days: int = 7,
        community=None,
        actor=None,
    ):
        draft = services.RoundDraft(
            title="Spring decisions",
            opens_at=opens_at,
            closes_at=closes_at,
            electorate=electorate,
            secrecy=secrecy,
            objection_days=objection_days,
            questions=list(questions or [yes_no()]),
        )
        round_ = services.create_round(
            actor or estate.committee,
            community or estate.community,
            draft,
            now=opens_at - timedelta(days=1),
        )
        db.session.commit()
        if opened:
            assert services.open_round(round_.id, opens_at)
            db.session.commit()
        db.session.refresh(round_)
        return round_

    return factory


@pytest.fixture
def cast(db):
    """Cast through the service and commit, like the cast view does."""
    from ballots import services

    def factory(user, round_, answers, *, now=None, nonce=None, **kwargs):
        ballot = services.cast_ballot(
            user,
            round_,
            answers,
            nonce or services.new_nonce(),
            now=now or T0 + timedelta(hours=1),
            **kwargs,
        )
        db.session.commit()
        return ballot

    return factory


def close(db, round_, now=T1):
    from ballots import services

    closed = services.close_round(round_.id, now)
    db.session.commit()
    db.session.refresh(round_)
    return closed
