"""Voting rounds: creating and editing them, opening, casting, paper ballots, closing and
tallying, objections, the final result, reminders, receipts and the board.

Plain values in, domain errors out. Every change of a round's state is a conditional
UPDATE (`… WHERE status = 'open'`), and everything that appends to a round's board first
locks the round's row (SELECT … FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds
the database's write lock already), so a cast and the close are serialized: no ballot is
accepted at or after the close, and the close tallies a frozen board (RELIABILITY.md
I1–I3). The close recounts from the board entries exactly as the public verifier does."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from ballots import keys
from ballots.models import (
    Ballot,
    BoardEntry,
    Channel,
    Credential,
    Electorate,
    Objection,
    Question,
    Round,
    RoundStatus,
    Secrecy,
    Voter,
)
from community import audit
from community.identity import unit_key
from community.models import Community, Membership, User, utcnow
from community.permissions import MembershipStatus
from community.services import can, can_read, membership_of, require
from crypto import board, tally, writer
from deliberation import services as deliberation
from deliberation.lifecycle import Status as ProposalStatus
from deliberation.models import Proposal
from web.database import begin_writing, insert_unique, written_row
from web.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from web.extensions import db
from web.i18n import LANGUAGES
from web.logs import security_event

METHODS = tally.METHODS
RULES = tally.RULES
ART278 = ("art278_ordinary", "art278_major")
YES_NO_OPTIONS = [
    {"id": "yes", "label": "同意 Yes"},
    {"id": "no", "label": "反对 No"},
    {"id": "abstain", "label": "弃权 Abstain"},
]
MAX_QUESTIONS = 10
MAX_OPTIONS = 20
MAX_OBJECTION_DAYS = 30
REMIND_BEFORE = timedelta(hours=24)
_HEX = re.compile(r"\A[0-9a-f]+\Z")


class NotEligible(PermissionDenied):
    default_message = _l("You are not on the list of voters of this round.")


class RoundNotOpen(Conflict):
    default_message = _l("This round is not open for voting.")


class RoundClosed(Conflict):
    default_message = _l("Voting in this round has closed. Ballots are no longer accepted.")


class BadSignature(InvalidInput):
    default_message = _l("The ballot's signature did not verify. Please try again.")


class CountedOnPaper(Conflict):
    default_message = _l(
        "Your vote in this round was recorded on paper by the owners' committee, so it cannot "
        "also be cast online."
    )


class VotedOnline(Conflict):
    default_message = _l(
        "This voter has already voted online; a paper or proxy ballot cannot be added."
    )


class ResultsNotPublished(PermissionDenied):
    default_message = _l("Results are published when the round closes. Nobody can see them before.")


class NotEditable(Conflict):
    default_message = _l("A round can be changed only until it opens.")


# ---------------------------------------------------------------- loading and reading

# The statements of the ballot page and the cast are built once, with bound parameters:
# building a statement (and its cache key) on every call cost more CPU than running it.
_ROUND = (
    select(Round)
    .join(Round.community)
    .options(contains_eager(Round.community))
    .where(Round.id == bindparam("round_id"))
)
_ROUND_AND_MEMBERSHIP = _ROUND.add_columns(Membership).outerjoin(
    Membership,
    and_(
        Membership.community_id == Round.community_id,
        Membership.user_id == bindparam("user_id"),
    ),
)
_VOTER = select(Voter).where(
    Voter.round_id == bindparam("round_id"), Voter.slot == bindparam("slot")
)
_BALLOT_WITH_NONCE = select(Ballot.id).where(
    Ballot.round_id == bindparam("round_id"), Ballot.nonce == bindparam("nonce")
)
_VOTER_AND_NONCE = _VOTER.add_columns(_BALLOT_WITH_NONCE.scalar_subquery())


def get_round(user: User | None, round_id: int) -> Round:
    """The round, when `user` may read its community's pages; otherwise not found."""
    return get_round_and_membership(user, round_id)[0]


def get_round_and_membership(user: User | None, round_id: int) -> tuple[Round, Membership | None]:
    """The round with its community, and `user`'s own membership in that community (None
    when there is none), in one query; not found when `user` may not read the community's
    pages. The membership is for the eligibility checks of the same request."""
    if user is not None and getattr(user, "is_authenticated", False):
        row = db.session.execute(_ROUND_AND_MEMBERSHIP, {"round_id": round_id, "user_id": user.id})
        found, membership = row.first() or (None, None)
    else:
        found, membership = db.session.scalar(_ROUND, {"round_id": round_id}), None
    if found is None:
        raise NotFound()
    if not can_read(user, found.community, membership):
        raise NotFound()
    return found, membership


def rounds_of(community: Community) -> list[Round]:
    return list(
        db.session.scalars(
            select(Round).where(Round.community_id == community.id).order_by(Round.opens_at.desc())
        )
    )


def rounds_deciding(proposal: Proposal) -> list[Round]:
    """The rounds with a question on this proposal (for the proposal's page)."""
    return list(
        db.session.scalars(
            select(Round)
            .join(Question, Question.round_id == Round.id)
            .where(Question.proposal_id == proposal.id)
            .order_by(Round.opens_at)
        )
    )


def can_run(user: User | None, community: Community) -> bool:
    return can(user, "run_rounds", community)


def open_rounds_for(user: User) -> list[Round]:
    """Open rounds in which `user` holds a place in the electorate (for the home page)."""
    memberships = db.session.scalars(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.status == MembershipStatus.VERIFIED,
            Membership.unit.is_not(None),
        )
    ).all()
    if not memberships:
        return []
    # Each household slot only in the community of that membership.
    places = [
        and_(
            Round.community_id == m.community_id,
            Voter.slot.in_((f"u:{user.id}", f"h:{unit_key(m.unit)}")),
        )
        for m in memberships
    ]
    return list(
        db.session.scalars(
            select(Round)
            .join(Voter, Voter.round_id == Round.id)
            .where(Round.status == RoundStatus.OPEN, or_(*places))
            .order_by(Round.closes_at)
            .distinct()
        )
    )


@dataclass(frozen=True)
class Turnout:
    voted: int
    voters: int

    @property
    def share(self) -> Fraction | None:
        return Fraction(self.voted, self.voters) if self.voters else None


def turnout(round_: Round) -> Turnout:
    """How many voters have voted: the one figure shown while a round is open."""
    voted, voters = db.session.execute(
        select(func.count(Voter.voted_at), func.count(Voter.id)).where(Voter.round_id == round_.id)
    ).one()
    return Turnout(int(voted), int(voters))


# ---------------------------------------------------------------- the electorate


@dataclass(frozen=True)
class Place:
    slot: str
    user_id: int | None
    unit: str | None
    weight: int  # 0.01 m²


def _area_units(area: Decimal | None) -> int:
    return int((area or Decimal(0)) * 100)


def electorate_places(community: Community, kind: str) -> list[Place]:
    """Who may vote in a round of this community right now, with their weights."""
    members = db.session.execute(
        select(Membership.user_id, Membership.unit, Membership.private_area)
        .where(
            Membership.community_id == community.id,
            Membership.status == MembershipStatus.VERIFIED,
            Membership.unit.is_not(None),
        )
        .order_by(Membership.id)
    ).all()
    if kind == Electorate.HOUSEHOLDS:
        households: dict[str, Place] = {}
        for _user_id, unit, area in members:
            key = unit_key(unit)
            if not key:
                continue
            known = households.get(key)
            weight = max(_area_units(area), known.weight if known else 0)
            households[key] = Place(f"h:{key}", None, known.unit if known else unit, weight)
        return list(households.values())
    places = []
    for user_id, unit, area in members:
        if kind == Electorate.OWNERS and not area:
            continue
        places.append(Place(f"u:{user_id}", user_id, unit, _area_units(area)))
    return places


@dataclass(frozen=True)
class ElectorateSize:
    voters: int
    weight: int  # 0.01 m²

    @property
    def area(self) -> Decimal:
        return Decimal(self.weight) / 100


def electorate_size(round_: Round) -> ElectorateSize:
    """Frozen figures once the round opened; the current figures before."""
    if round_.electorate_voters is not None:
        return ElectorateSize(round_.electorate_voters, round_.electorate_weight or 0)
    places = electorate_places(round_.community, round_.electorate)
    return ElectorateSize(len(places), sum(p.weight for p in places))


def _membership_or_refuse(
    user: User, community: Community, now: datetime, known: Membership | None = None
) -> Membership:
    """The user's membership in `community` when it lets them vote. `known` is that
    membership as the caller read it in this request (see `get_round_and_membership`)."""
    if known is not None and known.user_id == user.id and known.community_id == community.id:
        membership = known
    else:
        membership = membership_of(user, community)
    if membership is None or membership.status != MembershipStatus.VERIFIED:
        raise NotEligible(_("Only verified members of this community can vote here."))
    if membership.is_suspended(now):
        raise NotEligible(_("Your membership is suspended for now, so you cannot vote."))
    if not membership.unit:
        raise NotEligible(
            _("Only residents with a home (unit) in this community are on the list of voters.")
        )
    return membership


def voter_of(
    user: User | None,
    round_: Round,
    now: datetime | None = None,
    membership: Membership | None = None,
) -> Voter:
    """The user's place in an open (or closed) round's electorate, or NotEligible.
    `membership`: the user's membership in the round's community, if already read."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotEligible()
    membership = _membership_or_refuse(user, round_.community, now or utcnow(), membership)
    return _place_of(user, membership, round_)


def _slot(user: User, membership: Membership, round_: Round) -> str:
    if round_.electorate == Electorate.HOUSEHOLDS:
        return f"h:{unit_key(membership.unit)}"
    return f"u:{user.id}"


def _place_of(user: User, membership: Membership, round_: Round, fresh: bool = False) -> Voter:
    voter = db.session.scalar(
        _VOTER,
        {"round_id": round_.id, "slot": _slot(user, membership, round_)},
        execution_options={"populate_existing": fresh},
    )
    return _placed(voter, round_)


def _place_and_nonce(
    user: User, membership: Membership, round_: Round, nonce: str
) -> tuple[Voter, int | None]:
    """Under the round's lock, in one query: the user's place read afresh (a paper ballot
    entered meanwhile is seen), and the ballot already cast with `nonce`, if any."""
    row = db.session.execute(
        _VOTER_AND_NONCE,
        {"round_id": round_.id, "slot": _slot(user, membership, round_), "nonce": nonce},
        execution_options={"populate_existing": True},
    ).first()
    voter, earlier_id = row if row is not None else (None, None)
    return _placed(voter, round_), earlier_id


def _placed(voter: Voter | None, round_: Round) -> Voter:
    if voter is None:
        if round_.electorate == Electorate.OWNERS:
            raise NotEligible(
                _("Only owners (with a private area on the roll) vote in this round.")
            )
        raise NotEligible()
    return voter


def place_of(
    user: User | None, round_: Round, membership: Membership | None = None
) -> Voter | None:
    """The user's place in the round's electorate, or None (for showing pages)."""
    try:
        return voter_of(user, round_, membership=membership)
    except NotEligible:
        return None


def current_ballot(voter: Voter) -> Ballot | None:
    return db.session.scalar(
        select(Ballot).where(Ballot.voter_id == voter.id, Ballot.is_current.is_(True))
    )


# ---------------------------------------------------------------- creating and editing


@dataclass
class QuestionDraft:
    title: str
    method: str = "yes_no_abstain"
    options: list[str] = field(default_factory=list)  # labels (single, approval)
    max_choices: int = 1
    rule: str = "simple_majority"
    quorum_percent: Decimal | None = None
    proposal_id: int | None = None


@dataclass
class RoundDraft:
    title: str
    opens_at: datetime
    closes_at: datetime
    explanation: str = ""
    scope: str = ""
    electorate: str = Electorate.RESIDENTS.value
    secrecy: str = Secrecy.SECRET.value
    objection_days: int = 7
    questions: list[QuestionDraft] = field(default_factory=list)


def _text(value: str, limit: int, message: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(message)
    if len(value) > limit:
        raise InvalidInput(_("Please use at most %(n)d characters.", n=limit))
    return value


def _checked_round(community: Community, draft: RoundDraft, now: datetime, round_id=None):
    title = _text(draft.title, 120, _("Please give the round a title."))
    explanation = _text(draft.explanation, 10_000, "", required=False)
    scope = _text(draft.scope, 200, "", required=False)
    if draft.electorate not in set(Electorate):
        raise InvalidInput(_("Please choose who may vote."))
    if draft.secrecy not in set(Secrecy):
        raise InvalidInput(_("Please choose whether the ballot is secret or named."))
    for moment in (draft.opens_at, draft.closes_at):
        if moment is None or moment.tzinfo is None:
            raise InvalidInput(_("Please give the opening and closing time."))
    if draft.opens_at < now - timedelta(minutes=5):
        raise InvalidInput(_("The opening time is in the past."))
    if draft.closes_at <= draft.opens_at + timedelta(minutes=10):
        raise InvalidInput(_("The round must close at least 10 minutes after it opens."))
    if draft.closes_at > draft.opens_at + timedelta(days=92):
        raise InvalidInput(_("A round can be open for at most three months."))
    if not 0 <= int(draft.objection_days) <= MAX_OBJECTION_DAYS:
        raise InvalidInput(_("The objection period is from 0 to %(n)d days.", n=MAX_OBJECTION_DAYS))
    if not draft.questions:
        raise InvalidInput(_("Please add at least one question."))
    if len(draft.questions) > MAX_QUESTIONS:
        raise InvalidInput(_("A round has at most %(n)d questions.", n=MAX_QUESTIONS))
    questions = [
        _checked_question(community, draft, q, i + 1, round_id)
        for i, q in enumerate(draft.questions)
    ]
    proposals = [q["proposal_id"] for q in questions if q["proposal_id"]]
    if len(proposals) != len(set(proposals)):
        raise InvalidInput(_("Each proposal can be put to the vote in only one question."))
    return title, explanation, scope, questions


def _checked_question(community, draft: RoundDraft, q: QuestionDraft, position: int, round_id):
    title = _text(q.title, 200, _("Please write question %(n)d.", n=position))
    if q.method not in METHODS:
        raise InvalidInput(_("Please choose how question %(n)d is answered.", n=position))
    if q.rule not in RULES:
        raise InvalidInput(_("Please choose the decision rule of question %(n)d.", n=position))
    if q.method == "yes_no_abstain":
        options, max_choices = YES_NO_OPTIONS, 1
    else:
        labels = [label.strip() for label in q.options if label and label.strip()]
        if not 2 <= len(labels) <= MAX_OPTIONS:
            raise InvalidInput(
                _("Question %(n)d needs from 2 to %(max)d options.", n=position, max=MAX_OPTIONS)
            )
        if any(len(label) > 100 for label in labels):
            raise InvalidInput(_("Please keep each option under 100 characters."))
        if len({label.casefold() for label in labels}) != len(labels):
            raise InvalidInput(_("Question %(n)d has the same option twice.", n=position))
        options = [{"id": f"o{i + 1}", "label": label} for i, label in enumerate(labels)]
        max_choices = 1 if q.method == "single" else int(q.max_choices or 1)
        if not 1 <= max_choices <= len(options):
            raise InvalidInput(
                _("In question %(n)d, voters may choose from 1 up to all options.", n=position)
            )
    quorum = None
    if q.rule in ART278:
        if draft.electorate == Electorate.RESIDENTS:
            raise InvalidInput(
                _("The owners' double majority needs an electorate of owners or households.")
            )
        if q.quorum_percent:
            raise InvalidInput(
                _("The owners' double majority has its own participation rule; no quorum.")
            )
    elif q.quorum_percent is not None:
        percent = Fraction(str(q.quorum_percent))
        if not 0 < percent <= 100:
            raise InvalidInput(_("A quorum is a percentage above 0 and at most 100."))
        quorum = percent / 100
    proposal_id = None
    if q.proposal_id:
        proposal = db.session.get(Proposal, int(q.proposal_id))
        if proposal is None or proposal.community_id != community.id:
            raise InvalidInput(_("That proposal is not one of this community's."))
        if proposal.status != ProposalStatus.SCHEDULED:
            raise InvalidInput(_("Only proposals scheduled for a vote can be put to the vote."))
        taken = db.session.scalar(
            select(Question.id)
            .join(Round, Round.id == Question.round_id)
            .where(
                Question.proposal_id == proposal.id,
                Round.status.in_((RoundStatus.SCHEDULED, RoundStatus.OPEN)),
                Round.id != (round_id or 0),
            )
        )
        if taken:
            raise InvalidInput(_("That proposal is already on another voting round."))
        proposal_id = proposal.id
    return {
        "position": position,
        "key": f"q{position}",
        "title": title,
        "method": q.method,
        "max_choices": max_choices,
        "rule": q.rule,
        "quorum_num": quorum.numerator if quorum else None,
        "quorum_den": quorum.denominator if quorum else None,
        "options": json.dumps(options, ensure_ascii=False),
        "proposal_id": proposal_id,
    }


def schedulable_proposals(community: Community, round_: Round | None = None) -> list[Proposal]:
    """Proposals a question may decide: those scheduled for a vote, and (when editing) the
    ones the round's questions already decide."""
    choosable = (Proposal.status == ProposalStatus.SCHEDULED) & Proposal.hidden_at.is_(None)
    if round_ is not None:
        linked = [q.proposal_id for q in round_.questions if q.proposal_id]
        choosable = choosable | Proposal.id.in_(linked)
    return list(
        db.session.scalars(
            select(Proposal)
            .where(Proposal.community_id == community.id, choosable)
            .order_by(Proposal.status_changed_at)
        )
    )


def create_round(
    actor: User, community: Community, draft: RoundDraft, now: datetime | None = None
) -> Round:
    require(actor, "run_rounds", community)
    now = now or utcnow()
    title, explanation, scope, questions = _checked_round(community, draft, now)
    key_seed, public_key = keys.new_round_key()
    round_ = Round(
        community_id=community.id,
        created_by_id=actor.id,
        title=title,
        explanation=explanation,
        scope=scope,
        electorate=draft.electorate,
        secrecy=draft.secrecy,
        opens_at=draft.opens_at,
        closes_at=draft.closes_at,
        objection_days=int(draft.objection_days),
        key_seed=key_seed,
        public_key=public_key,
        created_at=now,
        updated_at=now,
    )
    round_.questions = [Question(**q) for q in questions]
    db.session.add(round_)
    db.session.flush()
    security_event("round_created", round_id=round_.id, community_id=community.id)
    audit.record(
        "round.created",
        actor=actor,
        community_id=community.id,
        subject=("round", round_.id),
        now=now,
    )
    return round_


def update_round(actor: User, round_: Round, draft: RoundDraft, now: datetime | None = None):
    require(actor, "run_rounds", round_.community)
    now = now or utcnow()
    locked = _lock(round_.id)
    if locked.status != RoundStatus.SCHEDULED or now >= locked.opens_at:
        raise NotEditable()
    title, explanation, scope, questions = _checked_round(
        locked.community, draft, now, round_id=locked.id
    )
    locked.title, locked.explanation, locked.scope = title, explanation, scope
    locked.electorate, locked.secrecy = draft.electorate, draft.secrecy
    locked.opens_at, locked.closes_at = draft.opens_at, draft.closes_at
    locked.objection_days = int(draft.objection_days)
    locked.updated_at = now
    locked.questions.clear()
    db.session.flush()
    locked.questions.extend(Question(**q) for q in questions)
    db.session.flush()
    security_event("round_edited", round_id=locked.id)
    audit.record(
        "round.edited",
        actor=actor,
        community_id=locked.community_id,
        subject=("round", locked.id),
        now=now,
    )
    return locked


def question_draft(question: Question) -> QuestionDraft:
    quorum = None
    if question.quorum_num:
        quorum = Decimal(question.quorum_num * 100) / Decimal(question.quorum_den)
    return QuestionDraft(
        title=question.title,
        method=question.method,
        options=[o["label"] for o in question.option_list]
        if question.method != "yes_no_abstain"
        else [],
        max_choices=question.max_choices,
        rule=question.rule,
        quorum_percent=quorum,
        proposal_id=question.proposal_id,
    )


# ---------------------------------------------------------------- the board


_LOCKED_ROUND = select(Round).where(Round.id == bindparam("round_id")).with_for_update()
_INSERT_ENTRY = insert(BoardEntry.__table__)


def _lock(round_id: int) -> Round:
    """Lock the round's row for this transaction (on SQLite: the database's write lock)
    and read it afresh."""
    begin_writing()
    found = db.session.scalar(
        _LOCKED_ROUND, {"round_id": round_id}, execution_options={"populate_existing": True}
    )
    if found is None:
        raise NotFound()
    return found


_RT = Round.__table__
# What can change while a round is open; the rest is fixed when it opens.
_LOCKED_STATE = (
    select(_RT.c.status, _RT.c.closes_at, _RT.c.head_n, _RT.c.head_hash)
    .where(_RT.c.id == bindparam("round_id"))
    .with_for_update()
)


def _lock_open(round_: Round) -> Round:
    """`_lock` for a round read in this request while it was open: only the columns that
    can change while it is open are read again under the lock."""
    begin_writing()
    row = db.session.connection().execute(_LOCKED_STATE, {"round_id": round_.id}).first()
    if row is None:
        raise NotFound()
    for column, value in row._mapping.items():
        set_committed_value(round_, column, value)
    return round_


_WRITE_HEAD = (
    update(Round.__table__)
    .where(Round.__table__.c.id == bindparam("round_id"))
    .values(head_n=bindparam("n"), head_hash=bindparam("hash"))
)


def _append(
    round_: Round, entry_type: str, payload: dict, *, held: list[dict] | None = None
) -> board.Entry:
    """Append to the board of a locked round. The entry and the round's new head are
    written at once with plain statements (no unit-of-work flush). With `held`, the entry
    row is added to that list instead, for `_write_entries` to write with the next ones
    in one statement."""
    n = round_.head_n + 1
    previous = bytes.fromhex(round_.head_hash) if round_.head_hash else board.GENESIS
    entry = board.next_entry(previous, n, entry_type, payload)
    row = {
        "round_id": round_.id,
        "n": n,
        "type": entry_type,
        "payload": board.canonical(payload).decode("ascii"),
        "hash": entry.hash,
    }
    # What the database holds (or will, once the held rows are written): nothing for the
    # session to flush.
    set_committed_value(round_, "head_n", n)
    set_committed_value(round_, "head_hash", entry.hash)
    if held is not None:
        held.append(row)
    else:
        _write_entries(round_, [row])
    return entry


def _write_entries(round_: Round, rows: list[dict]) -> None:
    """Write board entries of a locked round, and its head (the last of them)."""
    # On the session's connection: pending rows are not flushed early by these statements.
    connection = db.session.connection()
    connection.execute(_INSERT_ENTRY, rows if len(rows) > 1 else rows[0])
    last = rows[-1]
    connection.execute(_WRITE_HEAD, {"round_id": round_.id, "n": last["n"], "hash": last["hash"]})


def _seed(round_: Round) -> bytes:
    return keys.round_seed(round_)


def build_manifest(round_: Round, size: ElectorateSize) -> dict:
    return {
        "version": board.FORMAT_VERSION,
        "round_id": round_.id,
        "community": round_.community.name,
        "title": round_.title,
        "explanation": round_.explanation,
        "scope": round_.scope,
        "opens_at": board.timestamp(round_.opens_at),
        "closes_at": board.timestamp(round_.closes_at),
        "secrecy": round_.secrecy,
        "electorate": {"kind": round_.electorate, "voters": size.voters, "weight": size.weight},
        "questions": [
            {
                "id": q.key,
                "title": q.title,
                "method": q.method,
                "max_choices": q.max_choices,
                "options": q.option_list,
                "rule": {
                    "kind": q.rule,
                    "quorum": [q.quorum_num, q.quorum_den] if q.quorum_num else None,
                },
                "proposal": q.proposal_id,
            }
            for q in round_.questions
        ],
        "round_key": round_.public_key,
    }


def due_round_ids(status: RoundStatus, now: datetime) -> list[int]:
    """Rounds with work due at `now`: to open, to close, or to finalize."""
    column = {
        RoundStatus.SCHEDULED: Round.opens_at,
        RoundStatus.OPEN: Round.closes_at,
        RoundStatus.CLOSED: Round.objections_until,
    }[status]
    return list(
        db.session.scalars(
            select(Round.id).where(Round.status == status, column <= now).order_by(column)
        )
    )


def open_round(round_id: int, now: datetime) -> bool:
    """Open a due round exactly once: freeze the electorate, sign the manifest, start the
    board, and move its proposals to voting. False when someone else already did."""
    won = db.session.execute(
        update(Round)
        .where(Round.id == round_id, Round.status == RoundStatus.SCHEDULED, Round.opens_at <= now)
        .values(status=RoundStatus.OPEN.value, opened_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return False
    round_ = _lock(round_id)
    places = electorate_places(round_.community, round_.electorate)
    if places:
        db.session.execute(
            insert(Voter),
            [
                {
                    "round_id": round_.id,
                    "slot": p.slot,
                    "user_id": p.user_id,
                    "unit": p.unit,
                    "weight": p.weight,
                }
                for p in places
            ],
        )
    size = ElectorateSize(len(places), sum(p.weight for p in places))
    round_.electorate_voters, round_.electorate_weight = size.voters, size.weight
    manifest = build_manifest(round_, size)
    round_.manifest = board.canonical(manifest).decode("ascii")
    round_.round_hash = board.round_hash(manifest).hex()
    _append(round_, "setup", writer.setup_payload(manifest, _seed(round_)))
    _append(round_, "open", writer.open_payload(now))
    for question in round_.questions:
        if question.proposal_id:
            proposal = db.session.get(Proposal, question.proposal_id)
            deliberation.change_status(proposal, ProposalStatus.VOTING)
    security_event("round_opened", round_id=round_.id, voters=size.voters)
    return True


# ---------------------------------------------------------------- casting


def new_nonce() -> str:
    return secrets.token_hex(16)


def _hex_or_error(value: str | None, length: int, message) -> str:
    value = (value or "").strip().lower()
    if len(value) != length or not _HEX.match(value):
        raise InvalidInput(message)
    return value


def parse_answers(round_: Round, answers) -> dict[str, list[str]]:
    """Check a ballot's answers against the round's manifest: 400 with a message if bad."""
    manifest = round_.manifest_data
    if manifest is None:
        raise RoundNotOpen()
    if isinstance(answers, dict):
        answers = {
            key: sorted(value) if isinstance(value, list) else value
            for key, value in answers.items()
        }
    problem = tally.ballot_problem(manifest, answers)
    if problem:
        raise InvalidInput(_answers_message(manifest, answers))
    return answers


def _answers_message(manifest: dict, answers) -> str:
    """What is wrong with a refused ballot, in the voter's words: which question has too
    many (or no) choices, where that is the problem."""
    for n, question in enumerate(manifest["questions"], start=1):
        answer = answers.get(question["id"]) if isinstance(answers, dict) else None
        if not isinstance(answer, list) or tally.answer_problem(question, answer) is None:
            continue
        known = {option["id"] for option in question["options"]}
        if len(set(answer)) != len(answer) or not set(answer) <= known:
            break
        if question["method"] == "approval" and len(answer) > question["max_choices"]:
            return _(
                "Question %(n)d: please choose at most %(k)d options.",
                n=n,
                k=question["max_choices"],
            )
        if question["method"] != "approval":
            return _("Question %(n)d: please choose one answer.", n=n)
        break
    return _("This ballot is not complete or not valid. Please check it again.")


# Why a ballot was refused, for the security log (T47): the most specific class first.
_REFUSALS = (
    (RoundClosed, "closed"),
    (RoundNotOpen, "not open"),
    (CountedOnPaper, "counted on paper"),
    (NotEligible, "not eligible"),
    (Conflict, "conflict"),
    (BadSignature, "bad signature"),
    (InvalidInput, "invalid ballot"),
)


def cast_ballot(
    user: User,
    round_: Round,
    answers,
    nonce: str,
    *,
    credential: str | None = None,
    signature: str | None = None,
    now: datetime | None = None,
    membership: Membership | None = None,
) -> Ballot:
    """Cast (or re-cast) the user's online ballot. With `credential` and `signature` the
    voter's browser signed it with its own key; otherwise the server signs with a custodial
    credential. The same `nonce` again (a double click, a retry) returns the same ballot.
    `membership`: the user's membership in the round's community, if already read. Every
    refusal is logged once, with its reason."""
    try:
        return _cast(user, round_, answers, nonce, credential, signature, now, membership)
    except DomainError as error:
        reason = next((reason for kind, reason in _REFUSALS if isinstance(error, kind)), "refused")
        security_event("ballot_refused", round_id=round_.id, reason=reason)
        raise


def _cast(user, round_, answers, nonce, credential, signature, now, membership) -> Ballot:
    now = now or utcnow()
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotEligible()
    membership = _membership_or_refuse(user, round_.community, now, membership)
    if not round_.is_open:
        raise RoundClosed() if round_.is_tallied else RoundNotOpen()
    answers = parse_answers(round_, answers)
    nonce = _hex_or_error(nonce, 32, _("This ballot form is damaged. Please start again."))
    if credential is not None or signature is not None:
        credential = _hex_or_error(credential, 64, _("The ballot's key is not valid."))
        signature = _hex_or_error(signature, 128, _("The ballot's signature is not valid."))
        signed = _browser_signed(round_, credential, signature, nonce, answers)
    else:
        # Signed before the lock, so that the lock is held for the writing only; dropped
        # if the voter turns out to hold a custodial key already.
        signed = _new_custodial(round_, nonce, answers)
    locked = _lock_open(round_)
    if locked.status != RoundStatus.OPEN or now >= locked.closes_at:
        raise RoundClosed()
    voter, earlier_id = _place_and_nonce(user, membership, locked, nonce)
    again = _same_nonce(locked, earlier_id, voter, answers, credential)
    if again is not None:
        return again
    if voter.channel in (Channel.PAPER, Channel.PROXY):
        raise CountedOnPaper()
    return _record(
        locked,
        voter,
        answers,
        nonce,
        channel=Channel.ONLINE,
        cast_by=user,
        signed=signed,
        now=now,
    )


def _same_nonce(
    round_: Round,
    earlier_id: int | None,
    voter: Voter,
    answers: dict,
    credential: str | None = None,
) -> Ballot | None:
    """The ballot already cast with the same nonce (`earlier_id`, read under the round's
    lock, or None): the same ballot again (a double click, a retry) gets the same ballot
    back; anything else with a used nonce is refused, so new answers are never silently
    dropped."""
    if earlier_id is None:
        return None
    earlier = db.session.get(Ballot, earlier_id)
    payload = json.loads(
        db.session.scalar(
            select(BoardEntry.payload).where(
                BoardEntry.round_id == round_.id, BoardEntry.n == earlier.board_n
            )
        )
    )
    body = payload["ballot"]
    if (
        earlier.voter_id != voter.id
        or body["answers"] != answers
        or (credential is not None and body["credential"] != credential)
    ):
        raise Conflict(_("This ballot form was already used. Please start again."))
    return earlier


_INSERT_CREDENTIAL = insert(Credential.__table__)
_INSERT_BALLOT = insert(Ballot.__table__)
_USED = _l("This ballot or its key was already used. Please start again.")


def _register(
    round_: Round, voter: Voter, key: str, seed: str | None, live, held: list[dict]
) -> Credential:
    """Append a credential entry for `voter` (to `held`, written with the ballot's entry),
    revoking the voter's live credential. The credential's row is written at once; the
    database refuses a key used before (409)."""
    if live is not None:
        live.revoked = True
        db.session.flush()
    unit = voter.unit if round_.secrecy == Secrecy.NAMED else None
    entry = _append(
        round_,
        "credential",
        writer.credential_payload(
            key, voter.weight, unit, seed is not None, live.public_key if live else None
        ),
        held=held,
    )
    values = {
        "round_id": round_.id,
        "voter_id": voter.id,
        "public_key": key,
        "seed": seed,
        "custodial": seed is not None,
        "board_n": entry.n,
        "revoked": False,
    }
    new_id = insert_unique(_INSERT_CREDENTIAL, values, Conflict(str(_USED)))
    return written_row(Credential(id=new_id, **values))


@dataclass(frozen=True)
class _Signed:
    """A ballot body signed before the round's lock is taken: by the voter's browser
    (no `seed`), or with a new custodial credential (its seed, and the seed sealed)."""

    key: str
    body: dict
    signature: str
    seed: bytes | None = None
    sealed: str | None = None


def _browser_signed(round_: Round, key: str, signature: str, nonce: str, answers) -> _Signed:
    body = writer.ballot_body(round_.round_hash, key, nonce, answers)
    if not board.verify(key, "ballot", body, signature):
        raise BadSignature()
    return _Signed(key, body, signature)


def _new_custodial(round_: Round, nonce: str, answers) -> _Signed:
    seed = board.new_seed()
    key = board.public_key(seed)
    body = writer.ballot_body(round_.round_hash, key, nonce, answers)
    signature = board.sign(seed, "ballot", body)
    return _Signed(key, body, signature, seed, keys.seal_credential_seed(seed, key))


_MARK_VOTED = (
    update(Voter.__table__)
    .where(Voter.__table__.c.id == bindparam("voter_id"))
    .values(channel=bindparam("first_channel"), voted_at=bindparam("at"))
)


def _record(
    round_: Round,
    voter: Voter,
    answers: dict,
    nonce: str,
    *,
    channel: Channel,
    now: datetime,
    signed: _Signed | None = None,
    cast_by: User | None = None,
    entered_by: User | None = None,
    witness: str | None = None,
    proxy_note: str | None = None,
) -> Ballot:
    """Write a ballot to the locked round's board. `signed`: the body as signed before
    the lock (by the browser, or with a new custodial credential, which is dropped when
    the voter already holds one)."""
    live = None
    if voter.voted_at is not None:  # voted before: the earlier ballot is no longer current
        live = db.session.scalar(
            select(Credential).where(Credential.voter_id == voter.id, Credential.revoked.is_(False))
        )
        db.session.execute(
            update(Ballot)
            .where(Ballot.voter_id == voter.id, Ballot.is_current.is_(True))
            .values(is_current=False)
            .execution_options(synchronize_session=False)
        )
    entries: list[dict] = []  # the credential's entry, if any, then the ballot's
    if signed is not None and signed.seed is None:  # the browser's key
        if live is not None and live.public_key == signed.key:
            held = live
        else:
            held = _register(round_, voter, signed.key, None, live, entries)
        body, signature = signed.body, signed.signature
    elif live is not None and live.custodial:  # the server's key, held since the first ballot
        held = live
        body = writer.ballot_body(round_.round_hash, held.public_key, nonce, answers)
        signature = board.sign(keys.credential_seed(live), "ballot", body)
    else:  # a new key held by the server
        signed = signed or _new_custodial(round_, nonce, answers)
        held = _register(round_, voter, signed.key, signed.sealed, live, entries)
        body, signature = signed.body, signed.signature
    payload = writer.ballot_payload(
        body, signature, channel.value, entered_by.display_name if entered_by else None
    )
    entry = _append(round_, "ballot", payload, held=entries)
    _write_entries(round_, entries)
    digest = board.ballot_hash(payload).hex()
    receipt = writer.receipt(round_.round_hash, entry.n, digest, entry.hash, _seed(round_))
    values = {
        "round_id": round_.id,
        "voter_id": voter.id,
        "cast_by_id": cast_by.id if cast_by else None,
        "credential_id": held.id,
        "nonce": nonce,
        "board_n": entry.n,
        "ballot_hash": digest,
        "channel": channel.value,
        "entered_by_id": entered_by.id if entered_by else None,
        "witness": witness,
        "proxy_note": proxy_note,
        "is_current": True,
        "receipt": board.canonical(receipt).decode("ascii"),
        "created_at": now,
    }
    new_id = insert_unique(_INSERT_BALLOT, values, Conflict(str(_USED)))
    ballot = written_row(Ballot(id=new_id, **values))
    set_committed_value(ballot, "credential", held)
    db.session.connection().execute(
        _MARK_VOTED,
        {"voter_id": voter.id, "first_channel": voter.channel or channel.value, "at": now},
    )
    db.session.expire(voter, ["channel", "voted_at"])  # read again if anyone asks
    security_event("ballot_cast", round_id=round_.id, channel=channel.value)
    return ballot


def paper_voters(actor: User, round_: Round) -> list[tuple[Voter, str]]:
    """The round's voters with a label for the committee's list (unit · name), in one query."""
    require(actor, "run_rounds", round_.community)
    rows = db.session.execute(
        select(Voter, User.display_name)
        .outerjoin(User, User.id == Voter.user_id)
        .where(Voter.round_id == round_.id)
        .order_by(Voter.unit)
    )
    return [
        (voter, f"{voter.unit or ''} · {name}" if name else (voter.unit or ""))
        for voter, name in rows
    ]


def record_paper_ballot(
    actor: User,
    round_: Round,
    voter_id: int,
    answers,
    *,
    channel: str,
    witness: str,
    nonce: str,
    proxy_note: str = "",
    now: datetime | None = None,
) -> Ballot:
    """The owners' committee enters a paper ballot or a written proxy for a voter who cannot
    vote online. One rule, enforced here and in `cast_ballot`: a voter's first ballot sets
    the channel; a voter counted online gets no paper ballot, one counted on paper cannot
    vote online. A second paper ballot for the same voter replaces the first (a correction)."""
    require(actor, "run_rounds", round_.community)
    now = now or utcnow()
    if channel not in (Channel.PAPER, Channel.PROXY):
        raise InvalidInput(_("Please choose paper ballot or proxy."))
    witness = _text(witness, 80, _("Please name the witness."))
    proxy_note = _text(proxy_note, 1000, "", required=False)
    if channel == Channel.PROXY and not proxy_note:
        raise InvalidInput(_("Please describe the written proxy authorization."))
    if round_.status == RoundStatus.SCHEDULED:
        raise RoundNotOpen()
    answers = parse_answers(round_, answers)
    nonce = _hex_or_error(nonce, 32, _("This ballot form is damaged. Please start again."))
    locked = _lock(round_.id)
    if locked.status != RoundStatus.OPEN or now >= locked.closes_at:
        raise RoundClosed()
    voter = db.session.scalar(
        select(Voter)
        .where(Voter.id == int(voter_id), Voter.round_id == locked.id)
        .execution_options(populate_existing=True)
    )
    if voter is None:
        raise InvalidInput(_("Please choose a voter from the list."))
    earlier_id = db.session.scalar(_BALLOT_WITH_NONCE, {"round_id": locked.id, "nonce": nonce})
    again = _same_nonce(locked, earlier_id, voter, answers)
    if again is not None:
        return again
    if voter.channel == Channel.ONLINE:
        raise VotedOnline()
    ballot = _record(
        locked,
        voter,
        answers,
        nonce,
        channel=Channel(channel),
        now=now,
        entered_by=actor,
        witness=witness,
        proxy_note=proxy_note or None,
    )
    security_event("paper_ballot_entered", round_id=locked.id, channel=channel)
    audit.record(
        "round.ballot_entered",
        actor=actor,
        community_id=locked.community_id,
        subject=("round", locked.id),
        details={"voter": voter.id, "channel": channel},
        now=now,
    )
    return ballot


# ---------------------------------------------------------------- closing and tallying


def board_rows(round_: Round) -> Iterable[BoardEntry]:
    return db.session.scalars(
        select(BoardEntry).where(BoardEntry.round_id == round_.id).order_by(BoardEntry.n)
    )


def counted_ballots(round_id: int) -> tuple[int, list[tuple[dict, int]], int]:
    """From the board, as the verifier reads it: (unrevoked credentials, the counted
    ballots as (answers, weight), ballot entries in all)."""
    weights: dict[str, int] = {}
    revoked: set[str] = set()
    last: dict[str, dict] = {}
    ballots = 0
    rows = db.session.execute(
        select(BoardEntry.type, BoardEntry.payload)
        .where(BoardEntry.round_id == round_id, BoardEntry.type.in_(("credential", "ballot")))
        .order_by(BoardEntry.n)
    )
    for entry_type, text in rows:
        payload = json.loads(text)
        if entry_type == "credential":
            weights[payload["key"]] = payload["weight"]
            if payload["revokes"]:
                revoked.add(payload["revokes"])
        else:
            ballots += 1
            body = payload["ballot"]
            last[body["credential"]] = body["answers"]
    live = [key for key in weights if key not in revoked]
    counted = [(last[key], weights[key]) for key in live if key in last]
    return len(live), counted, ballots


def close_round(round_id: int, now: datetime) -> bool:
    """Close a due round exactly once, in one transaction: freeze the board, recount it,
    sign the result statement, publish the preliminary result and start the objection
    period. False when it was not due or someone else closed it."""
    won = db.session.execute(
        update(Round)
        .where(Round.id == round_id, Round.status == RoundStatus.OPEN, Round.closes_at <= now)
        .values(status=RoundStatus.CLOSED.value)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return False
    round_ = _lock(round_id)
    # Voting ended at the scheduled instant, whenever the job ran.
    round_.closed_at = round_.closes_at
    round_.objections_until = round_.closes_at + timedelta(days=round_.objection_days)
    credentials, counted, ballots = counted_ballots(round_.id)
    close = _append(round_, "close", writer.close_payload(round_.closed_at, ballots))
    questions = tally.tally(round_.manifest_data, counted)
    statement = writer.result_statement(
        round_.round_hash, close.n, close.hash, credentials, len(counted), questions
    )
    _append(round_, "result", writer.result_payload(statement, _seed(round_)))
    round_.result = board.canonical(statement).decode("ascii")
    _notify_electorate(round_, "round_closed")
    security_event("round_closed", round_id=round_.id, ballots=ballots, counted=len(counted))
    audit.record(
        "round.closed",
        community_id=round_.community_id,
        subject=("round", round_.id),
        details={"ballots": ballots, "counted": len(counted)},
        now=now,
    )
    return True


def finalize_round(round_id: int, now: datetime) -> bool:
    """At the end of the objection period: publish the final result and move the linked
    proposals to accepted or rejected, exactly once."""
    won = db.session.execute(
        update(Round)
        .where(
            Round.id == round_id,
            Round.status == RoundStatus.CLOSED,
            Round.objections_until <= now,
        )
        .values(status=RoundStatus.FINAL.value, final_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return False
    round_ = _lock(round_id)
    _append(round_, "final", writer.final_payload("final", now, ""))
    _decide_proposals(round_, now)
    _notify_electorate(round_, "round_final")
    security_event("round_final", round_id=round_.id)
    audit.record(
        "round.final", community_id=round_.community_id, subject=("round", round_.id), now=now
    )
    return True


def _decide_proposals(round_: Round, now: datetime) -> None:
    """Hand each linked proposal its verified outcome: the deliberation package records
    the decision and starts the implementation of an accepted one."""
    from ballots import results
    from deliberation import implementation

    manifest = round_.manifest_data
    electorate = manifest["electorate"]
    outcomes = {q["id"]: q for q in round_.result_data["questions"]}
    specs = {q["id"]: q for q in manifest["questions"]}
    for question in round_.questions:
        if not question.proposal_id:
            continue
        outcome = outcomes[question.key]
        turnout = (
            Fraction(outcome["participants"], electorate["voters"])
            if electorate["voters"]
            else None
        )
        summaries = {}
        for language in LANGUAGES:  # shown in the reader's language
            with force_locale(language):
                summaries[language] = results.verdict(specs[question.key], electorate, outcome)
        implementation.decide(
            db.session.get(Proposal, question.proposal_id),
            bool(outcome["passed"]),
            decided_at=now,
            summary=summaries,
            turnout=turnout,
            round_title=round_.title,
            round_url=f"/r/{round_.id}",
        )


def annul_round(actor: User, round_: Round, reason: str, now: datetime | None = None) -> Round:
    """The committee annuls a tallied round before its result is final, with a public
    reason; its proposals go back to "scheduled for a vote"."""
    require(actor, "run_rounds", round_.community)
    now = now or utcnow()
    reason = _text(reason, 2000, _("Please give the reason for annulling the round."))
    won = db.session.execute(
        update(Round)
        .where(
            Round.id == round_.id,
            Round.status == RoundStatus.CLOSED,
            Round.objections_until > now,
        )
        .values(status=RoundStatus.ANNULLED.value, final_at=now, annul_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        raise Conflict(_("A round can be annulled only during its objection period."))
    locked = _lock(round_.id)
    _append(locked, "final", writer.final_payload("annulled", now, reason))
    for question in locked.questions:
        if question.proposal_id:
            proposal = db.session.get(Proposal, question.proposal_id)
            deliberation.change_status(proposal, ProposalStatus.SCHEDULED, reason)
    _notify_electorate(locked, "round_annulled")
    security_event("round_annulled", round_id=locked.id)
    audit.record(
        "round.annulled",
        actor=actor,
        community_id=locked.community_id,
        subject=("round", locked.id),
        details={"reason": reason},
        now=now,
    )
    return locked


def _electorate_user_ids(round_: Round, not_voted_only: bool = False) -> set[int]:
    query = select(Voter.slot, Voter.user_id).where(Voter.round_id == round_.id)
    if not_voted_only:
        query = query.where(Voter.voted_at.is_(None))
    rows = db.session.execute(query).all()
    ids = {user_id for _slot, user_id in rows if user_id}
    household_keys = {slot[2:] for slot, _user_id in rows if slot.startswith("h:")}
    if household_keys:
        members = db.session.execute(
            select(Membership.user_id, Membership.unit).where(
                Membership.community_id == round_.community_id,
                Membership.status == MembershipStatus.VERIFIED,
                Membership.unit.is_not(None),
            )
        ).all()
        ids |= {uid for uid, unit in members if unit_key(unit) in household_keys}
    return ids


def _notify_electorate(round_: Round, kind: str, not_voted_only: bool = False) -> int:
    return deliberation.notify(
        _electorate_user_ids(round_, not_voted_only),
        kind,
        url=f"/r/{round_.id}",
        subject=round_.title,
    )


def remind_due_voters(now: datetime) -> int:
    """24 hours before the close: remind every voter who has not voted, exactly once."""
    due = db.session.scalars(
        select(Round.id).where(
            Round.status == RoundStatus.OPEN,
            Round.reminded_at.is_(None),
            Round.closes_at <= now + REMIND_BEFORE,
            Round.closes_at > now,
        )
    ).all()
    sent = 0
    for round_id in due:
        won = db.session.execute(
            update(Round)
            .where(Round.id == round_id, Round.reminded_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            sent += _notify_electorate(db.session.get(Round, round_id), "round_reminder", True)
    return sent


# ---------------------------------------------------------------- objections


def objections_of(round_: Round) -> list[Objection]:
    return list(
        db.session.scalars(
            select(Objection).where(Objection.round_id == round_.id).order_by(Objection.id)
        )
    )


def objections_open(round_: Round, now: datetime | None = None) -> bool:
    return (
        round_.status == RoundStatus.CLOSED
        and round_.objections_until is not None
        and (now or utcnow()) < round_.objections_until
    )


def raise_objection(user: User, round_: Round, body: str, now: datetime | None = None):
    require(user, "participate", round_.community)
    now = now or utcnow()
    if not objections_open(round_, now):
        raise Conflict(_("Objections can be raised only during the objection period."))
    body = _text(body, 4000, _("Please write your objection."))
    objection = Objection(round_id=round_.id, author_id=user.id, body=body, created_at=now)
    db.session.add(objection)
    db.session.flush()
    return objection


def get_objection(user: User | None, objection_id: int) -> Objection:
    objection = db.session.get(Objection, objection_id)
    if objection is None:
        raise NotFound()
    get_round(user, objection.round_id)
    return objection


def answer_objection(actor: User, objection: Objection, answer: str, now=None) -> Objection:
    round_ = db.session.get(Round, objection.round_id)
    require(actor, "run_rounds", round_.community)
    answer = _text(answer, 4000, _("Please write the answer."))
    # A published answer stays as it was: a second answer would silently rewrite it.
    won = db.session.execute(
        update(Objection)
        .where(Objection.id == objection.id, Objection.answer.is_(None))
        .values(answer=answer, answered_by_id=actor.id, answered_at=now or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        raise Conflict(_("This objection has already been answered."))
    db.session.refresh(objection)
    return objection


# ---------------------------------------------------------------- results, board, receipts


def published_result(round_: Round) -> dict:
    """The signed result statement: only once the round has closed, for everyone alike."""
    if not round_.is_tallied or round_.result is None:
        raise ResultsNotPublished()
    return round_.result_data


def result_signature(round_: Round) -> str | None:
    payload = db.session.scalar(
        select(BoardEntry.payload).where(
            BoardEntry.round_id == round_.id, BoardEntry.type == "result"
        )
    )
    return json.loads(payload)["signature"] if payload else None


def board_document(round_: Round, released_only: bool = True) -> dict:
    """The whole board with a signed head: released only after the close (operators may
    export it earlier with `released_only=False`)."""
    if released_only and not round_.is_tallied:
        raise ResultsNotPublished(_("The board is published when the round closes."))
    entries = [row.as_json() for row in board_rows(round_)]
    head = writer.head(round_.round_hash, round_.head_n, round_.head_hash, _seed(round_))
    return writer.document(round_.round_hash, entries, head)


@dataclass(frozen=True)
class ReceiptCheck:
    ok: bool
    message: str
    position: int | None = None
    counted: bool | None = None


def check_receipt(round_: Round, text: str) -> ReceiptCheck:
    """Is the ballot of this receipt on the board? Says nothing about its content."""
    not_a_receipt = ReceiptCheck(False, _("This is not a Yishi receipt. Please paste all of it."))
    try:
        receipt = board.parse(text)
        values = {k: receipt[k] for k in ("round", "n", "ballot", "head")}
        signature = receipt["signature"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return not_a_receipt
    if (
        type(values["n"]) is not int
        or not all(isinstance(values[k], str) for k in ("round", "ballot", "head"))
        or not isinstance(signature, str)
    ):
        return not_a_receipt
    if values["round"] != round_.round_hash:
        return ReceiptCheck(False, _("This receipt belongs to another voting round."))
    if not board.verify(round_.public_key, "receipt", values, signature):
        return ReceiptCheck(False, _("This receipt's signature is not valid."))
    entry = db.session.scalar(
        select(BoardEntry).where(BoardEntry.round_id == round_.id, BoardEntry.n == values["n"])
    )
    if (
        entry is None
        or entry.type != "ballot"
        or entry.hash != values["head"]
        or board.ballot_hash(json.loads(entry.payload)).hex() != values["ballot"]
    ):
        return ReceiptCheck(
            False,
            _(
                "The receipt is genuine, but its ballot is NOT on the board. Please tell the "
                "owners' committee and keep this receipt."
            ),
            values["n"],
        )
    counted = db.session.scalar(
        select(Ballot.is_current).where(Ballot.round_id == round_.id, Ballot.board_n == values["n"])
    )
    return ReceiptCheck(
        True,
        _("Your ballot is on the board at position %(n)d.", n=values["n"]),
        values["n"],
        bool(counted),
    )


def my_receipt(user: User, round_: Round, ballot_id: int) -> Ballot:
    ballot = db.session.get(Ballot, ballot_id)
    if ballot is None or ballot.round_id != round_.id or ballot.cast_by_id != user.id:
        raise NotFound()
    return ballot
