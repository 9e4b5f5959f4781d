"""The audit trail: every privileged action appended to one site-wide, hash-chained log
(crypto/audit.py, docs/audit-format.md), whose head the site key signs once a day.

Services call `record(...)` where they act; the entry is appended when the transaction
commits, under the lock of the log's head row (SELECT … FOR UPDATE on PostgreSQL; the
write lock of BEGIN IMMEDIATE on SQLite). Appending last means the head lock is never
held while waiting for another lock (no deadlocks), and the chain's order is the order
in which the actions committed; an action rolled back leaves no entry. Rows are never
updated or deleted here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from community import services as community_services
from community.models import User, UTCDateTime, utcnow
from crypto import audit as chain
from crypto import board
from web.errors import PermissionDenied
from web.extensions import db

_PENDING = "yishi_audit_pending"
MODERATION = "moderation."

ACTION_LABELS = {
    "community.created": _l("Community created"),
    "account.activated": _l("Account reactivated"),
    "account.deactivated": _l("Account deactivated"),
    "account.data_exported": _l("Personal data exported"),
    "account.deleted": _l("Account deleted"),
    "site.backup": _l("Backup taken (every member's data)"),
    "member.approved": _l("Join request approved"),
    "member.rejected": _l("Join request rejected"),
    "member.role": _l("Role changed"),
    "roll.imported": _l("Voter roll imported"),
    "roll.invites": _l("Invitation codes issued"),
    "moderation.hide": _l("Hidden"),
    "moderation.restore": _l("Restored"),
    "moderation.lock": _l("Discussion locked"),
    "moderation.unlock": _l("Discussion unlocked"),
    "moderation.dismiss": _l("Report dismissed"),
    "moderation.suspend": _l("Member suspended"),
    "round.created": _l("Voting round created"),
    "round.edited": _l("Voting round edited"),
    "round.ballot_entered": _l("Paper or proxy ballot entered"),
    "round.closed": _l("Round closed and tallied"),
    "round.final": _l("Final result published"),
    "round.annulled": _l("Round annulled"),
    "implementation.planned": _l("Implementation plan set"),
    "implementation.status": _l("Implementation status changed"),
}


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"
    __table_args__ = (CheckConstraint("n >= 0", name="n_not_negative"),)

    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(60), index=True)
    subject_kind: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    actor: Mapped[User | None] = relationship()

    @property
    def details_data(self) -> dict:
        return board.parse(self.details)

    @property
    def label(self) -> str:
        return str(ACTION_LABELS.get(self.action, self.action))


class AuditHead(db.Model):
    """The one row every append locks: the number and hash of the last entry."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadSignature(db.Model):
    """The head of the log as it was on a day (UTC), signed by the site key; one a day."""

    __tablename__ = "audit_head_signatures"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------- recording


def record(
    action: str,
    *,
    actor: User | None = None,
    community_id: int | None = None,
    subject: tuple[str, int | None] = ("site", None),
    details: dict | None = None,
    now: datetime | None = None,
) -> None:
    """Note a privileged action for the log; it is appended when the transaction commits.
    `details` are plain, canonical-JSON values (no floats) — never secrets, codes, or
    ballot choices."""
    moment = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    kind, subject_id = subject
    entry = {
        "at": moment,
        "community_id": community_id,
        "actor_id": actor.id if actor is not None else None,
        "action": action,
        "subject_kind": kind,
        "subject_id": subject_id,
        "details": board.canonical(details or {}).decode("ascii"),
    }
    chain.link(board.GENESIS, 0, action, {})  # refuse a bad action name now, not at commit
    db.session().info.setdefault(_PENDING, []).append(entry)


_HEAD = select(AuditHead).where(AuditHead.id == 1).with_for_update()


def _insert_ignoring_conflict(session: Session, model, values: dict, key: str) -> int:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = (
        dialect_insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(getattr(model, key))
    )
    return len(session.execute(statement).all())  # rowcount is -1 here with psycopg


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked for this transaction (created on first use)."""
    # On SQLite the transaction holds the write lock: from BEGIN IMMEDIATE, or since the
    # action's own first write (a deferred transaction that wrote is the only writer).
    options = {"populate_existing": True}
    head = session.scalar(_HEAD, execution_options=options)
    if head is None:
        values = {"id": 1, "n": -1, "hash": board.GENESIS.hex()}
        _insert_ignoring_conflict(session, AuditHead, values, "id")
        head = session.scalar(_HEAD, execution_options=options)
    return head


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the entries wait for the real commit
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()  # the action's own writes (and their locks) come first
    head = _locked_head(session)
    n, previous = head.n, bytes.fromhex(head.hash)
    rows = []
    for entry in pending:
        n += 1
        value = chain.link(previous, n, entry["action"], _record_of(entry))
        rows.append(dict(entry, n=n, prev_hash=previous.hex(), hash=value.hex()))
        previous = value
    session.execute(insert(AuditEntry), rows)
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(n=n, hash=previous.hex()),
        execution_options={"synchronize_session": False},
    )


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction) -> None:
    if transaction.parent is None:  # the whole transaction ended: committed or rolled back
        session.info.pop(_PENDING, None)


def _record_of(entry: dict) -> dict:
    return chain.record(
        {
            "at": board.timestamp(entry["at"]),
            "community": entry["community_id"],
            "actor": entry["actor_id"],
            "subject": {"kind": entry["subject_kind"], "id": entry["subject_id"]},
            "details": board.parse(entry["details"]),
        }
    )


# ---------------------------------------------------------------- the site key and the daily head


def site_seed() -> bytes:
    return chain.site_seed(current_app.config["SECRET_KEY"])


def site_public_key() -> str:
    return chain.public_key(site_seed())


def sign_daily_head(now: datetime) -> int:
    """Sign the log's head once per UTC day (the date is the row's key, so several
    processes sweeping at once still write one row). 1 when this call signed."""
    day = now.astimezone(UTC).date()
    if db.session.get(AuditHeadSignature, day) is not None:
        return 0
    head = db.session.get(AuditHead, 1)
    if head is None or head.n < 0:
        return 0
    seed = site_seed()
    value = chain.head_value(day.isoformat(), head.n, head.hash)
    values = {
        "day": day,
        "n": head.n,
        "hash": head.hash,
        "public_key": chain.public_key(seed),
        "signature": chain.sign_head(seed, value),
        "signed_at": now,
    }
    return _insert_ignoring_conflict(db.session(), AuditHeadSignature, values, "day")


# ---------------------------------------------------------------- verifying


def log_document() -> dict:
    """The whole log as docs/audit-format.md describes it (for the verifier and export)."""
    entries = []
    for row in db.session.scalars(select(AuditEntry).order_by(AuditEntry.n)):
        try:
            details = board.parse(row.details)
        except ValueError:
            details = row.details  # not JSON any more: the hash will not match
        entries.append(
            {
                "n": row.n,
                "at": board.timestamp(row.at),
                "community": row.community_id,
                "actor": row.actor_id,
                "action": row.action,
                "subject": {"kind": row.subject_kind, "id": row.subject_id},
                "details": details,
                "prev": row.prev_hash,
                "hash": row.hash,
            }
        )
    head = db.session.get(AuditHead, 1)
    signatures = db.session.scalars(select(AuditHeadSignature).order_by(AuditHeadSignature.day))
    return {
        "format": chain.LOG_NAME,
        "version": 1,
        "site_key": site_public_key(),
        "entries": entries,
        "head": {"n": head.n, "hash": head.hash} if head is not None else None,
        "signatures": [
            {"date": s.day.isoformat(), "n": s.n, "hash": s.hash, "signature": s.signature}
            for s in signatures
        ],
    }


def verify() -> chain.Report:
    document = log_document()
    return chain.verify_log(
        document["entries"], document["head"], document["signatures"], document["site_key"]
    )


# ---------------------------------------------------------------- reading


@dataclass
class LogView:
    entries: list[AuditEntry]
    full: bool  # the whole log of the community, or only its moderation part


def community_log(viewer: User | None, community, limit: int = 500) -> LogView:
    """The owners' committee and admins read the community's whole audit log; every
    member who may read the community reads its moderation part."""
    if not community_services.can_read(viewer, community):
        raise PermissionDenied()
    full = community_services.can(viewer, "run_rounds", community)
    query = (
        select(AuditEntry)
        .options(selectinload(AuditEntry.actor))
        .where(AuditEntry.community_id == community.id)
        .order_by(AuditEntry.n.desc())
        .limit(limit)
    )
    if not full:
        query = query.where(AuditEntry.action.startswith(MODERATION, autoescape=True))
    return LogView(list(db.session.scalars(query)), full)
