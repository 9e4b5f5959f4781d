"""Voting rounds, their questions and electorate, credentials, ballots and the board.

The board (`BoardEntry`) is the record of truth: the close tallies from it, exactly as the
public verifier does. The other tables index it and hold what the board must not show
(who a credential belongs to, the custodial keys, the witnesses of paper ballots)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from community.models import Community, User, UTCDateTime, utcnow
from web.extensions import db


class RoundStatus(StrEnum):
    SCHEDULED = "scheduled"  # created, editable until it opens
    OPEN = "open"
    CLOSED = "closed"  # tallied: preliminary result, objection period running
    FINAL = "final"  # final result published
    ANNULLED = "annulled"  # annulled by the committee with a stated reason


class Electorate(StrEnum):
    RESIDENTS = "residents"  # every verified member with a unit
    OWNERS = "owners"  # verified members with a private area, weighted by it
    HOUSEHOLDS = "households"  # one vote per unit


class Secrecy(StrEnum):
    SECRET = "secret"  # noqa: S105  (a kind of ballot, not a password)
    NAMED = "named"


class Channel(StrEnum):
    ONLINE = "online"
    PAPER = "paper"
    PROXY = "proxy"


class Round(db.Model):
    __tablename__ = "rounds"
    __table_args__ = (
        Index("ix_rounds_status_opens", "status", "opens_at"),
        Index("ix_rounds_status_closes", "status", "closes_at"),
        CheckConstraint("closes_at > opens_at", name="closes_after_opening"),
        CheckConstraint("objection_days >= 0", name="objection_days_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(120))
    explanation: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(String(200), default="")  # e.g. which buildings
    electorate: Mapped[str] = mapped_column(String(20), default=Electorate.RESIDENTS.value)
    secrecy: Mapped[str] = mapped_column(String(10), default=Secrecy.SECRET.value)
    status: Mapped[str] = mapped_column(String(20), default=RoundStatus.SCHEDULED.value)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    objection_days: Mapped[int] = mapped_column(Integer, default=7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The round key (Ed25519): its seed stays here, sealed (ballots/keys.py), its public
    # key goes into the manifest.
    key_seed: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(String(64))
    # Frozen when the round opens.
    manifest: Mapped[str | None] = mapped_column(Text)  # canonical JSON
    round_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    electorate_voters: Mapped[int | None] = mapped_column(Integer)
    electorate_weight: Mapped[int | None] = mapped_column(Integer)  # 0.01 m²
    # The board's head: the last entry's position and chain hash.
    head_n: Mapped[int] = mapped_column(Integer, default=-1)
    head_hash: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)  # canonical JSON of the signed statement
    objections_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    annul_reason: Mapped[str | None] = mapped_column(Text)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    community: Mapped[Community] = relationship()
    created_by: Mapped[User] = relationship()
    questions: Mapped[list[Question]] = relationship(
        back_populates="round", order_by="Question.position", cascade="all, delete-orphan"
    )

    @property
    def manifest_data(self) -> dict | None:
        return json.loads(self.manifest) if self.manifest else None

    @property
    def result_data(self) -> dict | None:
        return json.loads(self.result) if self.result else None

    @property
    def is_open(self) -> bool:
        return self.status == RoundStatus.OPEN

    @property
    def is_tallied(self) -> bool:
        return self.status in (RoundStatus.CLOSED, RoundStatus.FINAL, RoundStatus.ANNULLED)


class Question(db.Model):
    __tablename__ = "round_questions"
    __table_args__ = (
        UniqueConstraint("round_id", "key", name="uq_round_questions_key"),
        CheckConstraint("max_choices >= 1", name="max_choices_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(10))  # "q1", "q2", … in the manifest
    title: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20))
    max_choices: Mapped[int] = mapped_column(Integer, default=1)
    rule: Mapped[str] = mapped_column(String(20))
    quorum_num: Mapped[int | None] = mapped_column(Integer)
    quorum_den: Mapped[int | None] = mapped_column(Integer)
    options: Mapped[str] = mapped_column(Text)  # JSON: [{"id": "a", "label": "…"}, …]
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), index=True)

    round: Mapped[Round] = relationship(back_populates="questions")

    @property
    def quorum(self) -> Fraction | None:
        return Fraction(self.quorum_num, self.quorum_den) if self.quorum_num else None

    @property
    def option_list(self) -> list[dict]:
        return json.loads(self.options)


class Voter(db.Model):
    """One place in a round's electorate, frozen when the round opens: a member (residents,
    owners) or a household unit (households; any verified member living there may vote)."""

    __tablename__ = "round_voters"
    __table_args__ = (
        UniqueConstraint("round_id", "slot", name="uq_round_voters_slot"),
        CheckConstraint("weight >= 0", name="weight_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    # "u:<user id>" or "h:<unit key>"; "x:<id>" once the member deleted their account
    slot: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    unit: Mapped[str | None] = mapped_column(String(80))
    weight: Mapped[int] = mapped_column(Integer, default=0)  # private area in 0.01 m²
    # The channel of the voter's first ballot: a voter counted on paper stays on paper.
    channel: Mapped[str | None] = mapped_column(String(10))
    voted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Credential(db.Model):
    __tablename__ = "round_credentials"
    __table_args__ = (
        UniqueConstraint("round_id", "public_key", name="uq_round_credentials_key"),
        # One live credential per voter: the database, not the code, guarantees it.
        Index(
            "uq_round_credentials_live",
            "voter_id",
            unique=True,
            sqlite_where=text("revoked = 0"),
            postgresql_where=text("revoked = false"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("round_voters.id"))
    public_key: Mapped[str] = mapped_column(String(64))
    # Custodial credentials only, sealed (ballots/keys.py).
    seed: Mapped[str | None] = mapped_column(String(128))
    custodial: Mapped[bool] = mapped_column(Boolean, default=True)
    board_n: Mapped[int] = mapped_column(Integer)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Ballot(db.Model):
    __tablename__ = "ballots"
    __table_args__ = (
        UniqueConstraint("round_id", "nonce", name="uq_ballots_nonce"),
        UniqueConstraint("round_id", "board_n", name="uq_ballots_position"),
        # I1: one current ballot per voter and round.
        Index(
            "uq_ballots_current",
            "round_id",
            "voter_id",
            unique=True,
            sqlite_where=text("is_current = 1"),
            postgresql_where=text("is_current = true"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("round_voters.id"), index=True)
    cast_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    credential_id: Mapped[int] = mapped_column(ForeignKey("round_credentials.id"))
    nonce: Mapped[str] = mapped_column(String(32))
    board_n: Mapped[int] = mapped_column(Integer)
    ballot_hash: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(10), default=Channel.ONLINE.value)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    witness: Mapped[str | None] = mapped_column(String(80))
    proxy_note: Mapped[str | None] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    receipt: Mapped[str] = mapped_column(Text)  # canonical JSON, signed by the round key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    credential: Mapped[Credential] = relationship()

    @property
    def receipt_data(self) -> dict:
        return json.loads(self.receipt)


class BoardEntry(db.Model):
    __tablename__ = "board_entries"
    __table_args__ = (UniqueConstraint("round_id", "n", name="uq_board_entries_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    n: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(12))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    hash: Mapped[str] = mapped_column(String(64))

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "type": self.type,
            "payload": json.loads(self.payload),
            "hash": self.hash,
        }


class Objection(db.Model):
    """An objection to the preliminary result, answered publicly by the committee."""

    __tablename__ = "round_objections"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    author: Mapped[User] = relationship(foreign_keys=[author_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])
