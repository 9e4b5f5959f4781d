"""A member's own data: everything the site holds about them as one JSON document, and
the deletion of their account.

What belongs to a member is read from the database's own description: every column with
a foreign key to `users` (in whichever package its table lives; this module imports no
other package's models). `LINKS` says, for each such column, what the row is to the
member and what becomes of it when they delete their account; `unmapped_user_columns()`
names any users foreign key `LINKS` does not cover, and tests/test_privacy.py fails on it,
so a new table is not forgotten.

Deleting an account (`erase_account`):
- The users row stays, so that every foreign key still holds: name, contact, password,
  language and last login are removed, the name key becomes "deleted-<id>" (no typed name
  can produce a "-" in a key), and every session ends. Pages show the author of what stays
  as "former resident" (`User.display_name`).
- What they wrote for others to read stays (the issue's choice: a discussion keeps its
  sense): proposals and their revisions, comments, progress updates, objections, reports,
  ratings. Their name, phone and email are replaced wherever they typed them there.
- What only served them goes: memberships (with their unit and area), notifications,
  follows. Supports, helpful marks and ratings stay, so counts and tallies do not change.
- Ballots stay on the board unchanged, and the board still verifies. Their places in the
  rounds' electorates are unlinked: `round_voters.user_id` is emptied, the place's slot
  ("u:<user id>") renamed "x:<place id>" and, in secret rounds, its unit emptied (a named
  round's board shows the unit by design), and `ballots.cast_by_id` is emptied. No row
  then leads from the person to a credential or a ballot.
- The voter-roll households they joined with lose the owner's name and phone, and their
  invitation is reset (the committee may invite the household again). A roll entry
  carrying their phone loses the phone.
- What they did in office (approvals, moderation, rounds, paper ballots entered, answers)
  stays, named "former resident". Two public records keep what they hold, because
  changing them would break what they prove: the audit log (hash-chained: it holds ids,
  and the reasons moderators and committees gave in their own words, which may name a
  member) and the ballot board, where a paper or proxy ballot names the committee member
  who entered it (`entered_by`). Others' words that name the member (a neighbour's
  comment) are theirs and stay too.
- An audit entry "account.deleted" records the deletion, with counts only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from blinker import Namespace
from markupsafe import escape
from sqlalchemy import String, Table, Text, cast, delete, func, select, update

from community import audit
from community.models import ERASED_NAME, User, utcnow
from community.services import WrongPassword
from crypto import passwords
from web.database import begin_writing
from web.errors import NotFound
from web.extensions import db
from web.logs import security_event

FORMAT = "yishi-personal-data"
REMOVED = "[removed]"
UNUSABLE_PASSWORD = "!erased"  # noqa: S105  (never a hash: verify_password refuses it)

# Sent after an account's rows were erased, inside the same transaction, with `user_id`:
# packages that keep text derived from what the member wrote (rendered HTML, search
# terms) derive it again (deliberation/privacy.py).
account_erased = Namespace().signal("account-erased")


class Relation(StrEnum):
    OWN = "own"  # the row is the member's, or about them: exported whole
    ACTED = "acted"  # the member acted on it in office: exported as `shown` columns


class OnErase(StrEnum):
    KEEP = "keep"  # stays linked to the emptied account; their identifiers are replaced
    DELETE = "delete"  # removed
    UNLINK = "unlink"  # stays, no longer linked to the account


@dataclass(frozen=True)
class Link:
    relation: Relation
    on_erase: OnErase = OnErase.KEEP
    shown: tuple[str, ...] = ()  # ACTED rows: what the export shows of them


OWN, ACTED = Relation.OWN, Relation.ACTED

# Every foreign key to users, "table.column". A table added with such a column must be
# added here (tests/test_privacy.py: test_every_users_foreign_key_is_covered).
LINKS: dict[str, Link] = {
    # community
    "memberships.user_id": Link(OWN, OnErase.DELETE),
    "memberships.decided_by_id": Link(ACTED, shown=("id", "community_id", "status", "decided_at")),
    "roll_imports.imported_by_id": Link(
        ACTED, shown=("id", "community_id", "filename", "rows_added", "rows_updated", "created_at")
    ),
    "roll_entries.invite_used_by_id": Link(OWN, OnErase.UNLINK),
    "audit_entries.actor_id": Link(
        ACTED, shown=("n", "at", "community_id", "action", "subject_kind", "subject_id")
    ),
    # deliberation
    "proposals.author_id": Link(OWN),
    "supports.user_id": Link(OWN),
    "comments.author_id": Link(OWN),
    "helpful_marks.user_id": Link(OWN),
    "follows.user_id": Link(OWN, OnErase.DELETE),
    "reports.reporter_id": Link(OWN),
    "reports.resolved_by_id": Link(
        ACTED, shown=("id", "community_id", "resolution", "resolved_at")
    ),
    "moderation_log.moderator_id": Link(
        ACTED,
        shown=("id", "community_id", "action", "proposal_id", "comment_id", "reason", "created_at"),
    ),
    "moderation_log.member_id": Link(OWN),
    "notifications.user_id": Link(OWN, OnErase.DELETE),
    "implementations.responsible_user_id": Link(
        ACTED, shown=("id", "proposal_id", "community_id", "status", "responsible")
    ),
    "progress_updates.author_id": Link(OWN),
    "ratings.user_id": Link(OWN),
    # ballots
    "rounds.created_by_id": Link(
        ACTED, shown=("id", "community_id", "title", "status", "created_at")
    ),
    "round_voters.user_id": Link(OWN, OnErase.UNLINK),
    "ballots.cast_by_id": Link(OWN, OnErase.UNLINK),
    "ballots.entered_by_id": Link(
        ACTED, shown=("id", "round_id", "channel", "board_n", "created_at")
    ),
    "round_objections.author_id": Link(OWN),
    "round_objections.answered_by_id": Link(
        ACTED, shown=("id", "round_id", "answer", "answered_at")
    ),
}

# Rows without a users key that are part of a member's own rows: "table.column" of the
# foreign key to the owning table. Exported with their owner; their text is redacted too.
PARTS: tuple[str, ...] = (
    "proposal_revisions.proposal_id",
    "proposal_photos.proposal_id",
    "update_photos.update_id",
    "round_credentials.voter_id",
)

# Never exported: secrets the member could not use and must not hold.
SECRET = {"users.password_hash", "roll_entries.invite_digest", "round_credentials.seed"}
# Never rewritten by the redaction: signed, hashed or random values and keys.
FIXED = {
    "ballots.nonce",
    "ballots.ballot_hash",
    "ballots.receipt",
    "round_credentials.public_key",
    "round_credentials.seed",
    "round_voters.slot",
    "proposal_photos.stored_name",
    "update_photos.stored_name",
    "roll_entries.unit_key",
    "roll_entries.invite_digest",
}


# ---------------------------------------------------------------- the map of the data


def _tables() -> dict[str, Table]:
    return dict(db.metadata.tables)


def user_columns() -> list[str]:
    """Every column of the schema with a foreign key to users, as "table.column"."""
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == "users" for fk in column.foreign_keys):
                found.append(f"{table.name}.{column.name}")
    return found


def unmapped_user_columns() -> list[str]:
    return sorted(set(user_columns()) - set(LINKS))


def _split(key: str) -> tuple[Table, str]:
    table_name, column = key.split(".")
    return _tables()[table_name], column


def _plain(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row_dict(table: Table, row, columns: tuple[str, ...] | None = None) -> dict:
    names = columns or tuple(c.name for c in table.columns)
    values = row._mapping
    return {
        name: _plain(values[table.c[name]])
        for name in names
        if f"{table.name}.{name}" not in SECRET
    }


def _roll_by_phone(roll: Table, user_id: int, phone: str):
    """Voter-roll entries carrying the member's phone, in the communities where they are
    a verified member only: a phone number typed at registration is not proof, and
    another community's roll is its committee's record, not the member's."""
    memberships = _tables()["memberships"]
    theirs = select(memberships.c.community_id).where(
        memberships.c.user_id == user_id, memberships.c.status == "verified"
    )
    return (roll.c.phone == phone) & roll.c.community_id.in_(theirs)


def _rows(table: Table, where) -> list:
    key = list(table.primary_key.columns)
    return list(db.session.execute(select(table).where(where).order_by(*key)))


# ---------------------------------------------------------------- the download


def export_data(user: User, now: datetime | None = None) -> dict:
    """Everything the site holds about `user`, as plain JSON values: the account, every
    row of every table linked to them (OWN rows whole, ACTED rows as LINKS shows them),
    the parts of their own rows, and the voter-roll entries carrying their phone. The
    export itself is an audit entry."""
    if user.is_erased:
        raise NotFound()
    moment = now or utcnow()
    users = _tables()["users"]
    account = db.session.execute(select(users).where(users.c.id == user.id)).one()
    records: dict[str, dict[str, list[dict]]] = {}
    own_ids: dict[str, set] = {}
    for key in sorted(LINKS):
        link = LINKS[key]
        table, column = _split(key)
        rows = _rows(table, table.c[column] == user.id)
        if not rows:
            continue
        shown = link.shown if link.relation == ACTED else None
        records.setdefault(table.name, {})[column] = [_row_dict(table, r, shown) for r in rows]
        if link.relation == OWN:
            pk = list(table.primary_key.columns)[0]
            own_ids.setdefault(table.name, set()).update(r._mapping[pk] for r in rows)
    for key in PARTS:
        table, column, owner = _part_owner(key)
        ids = own_ids.get(owner.name)
        if ids:
            rows = _rows(table, table.c[column].in_(sorted(ids)))
            records.setdefault(table.name, {})[column] = [_row_dict(table, r) for r in rows]
    roll = _tables()["roll_entries"]
    if user.phone:
        rows = _rows(roll, _roll_by_phone(roll, user.id, user.phone))
        if rows:
            records.setdefault("roll_entries", {})["phone"] = [_row_dict(roll, r) for r in rows]
    # A household they joined with is theirs as a unit and area; its owner's name and
    # phone are the owner's (a tenant or relative may redeem the invitation).
    for entry in records.get("roll_entries", {}).get("invite_used_by_id", []):
        if entry.get("phone") != user.phone:
            entry.pop("owner_name", None)
            entry.pop("phone", None)
    begin_writing()  # read without SQLite's write lock; the audit entry is written with it
    audit.record(
        "account.data_exported",
        actor=user,
        subject=("user", user.id),
        details={"tables": len(records)},
        now=moment,
    )
    security_event("personal_data_exported", user_id=user.id)
    return {
        "format": FORMAT,
        "version": 1,
        "exported_at": _plain(moment.astimezone(UTC).replace(microsecond=0)),
        "account": _row_dict(users, account),
        "records": records,
    }


def data_summary(user: User) -> list[tuple[str, int]]:
    """How many rows of each table are linked to `user` (for the "My data" page)."""
    counts: dict[str, int] = {}
    for key in sorted(LINKS):
        table, column = _split(key)
        n = db.session.scalar(
            select(func.count()).select_from(table).where(table.c[column] == user.id)
        )
        if n:
            counts[table.name] = counts.get(table.name, 0) + n
    return sorted(counts.items())


# ---------------------------------------------------------------- deletion


@dataclass
class Erasure:
    deleted: int = 0  # rows removed (memberships, notifications, follows)
    unlinked: int = 0  # rows no longer linked (voter places, ballots, roll households)
    redacted: int = 0  # rows whose text had the member's identifiers replaced


_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


def _name_pattern(name: str) -> str:
    """A name, not inside a longer Latin word ("Al" is not replaced in "Also"); names in
    Chinese are matched wherever they stand."""
    pattern = re.escape(name)
    if _ASCII_WORD.match(name[0]):
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if _ASCII_WORD.match(name[-1]):
        pattern += r"(?![A-Za-z0-9])"
    return pattern


def _patterns(names: set[str], phones: set[str], emails: set[str]) -> list[tuple[re.Pattern, str]]:
    """What to replace in text the member wrote: each name (two characters or more), each
    email, each phone (also with spaces or dashes between its digits), also as they
    appear in rendered HTML."""
    found: list[tuple[re.Pattern, str]] = []

    def add(texts: set[str], replacement: str, pattern_of) -> None:
        variants = set()
        for text in texts:
            variants.update({text, str(escape(text))})
        for text in sorted(variants, key=len, reverse=True):
            found.append((re.compile(pattern_of(text), re.IGNORECASE), replacement))

    add({n for n in names if len(n) >= 2}, ERASED_NAME, _name_pattern)
    add(set(emails), REMOVED, re.escape)
    add(
        set(phones),
        REMOVED,
        lambda p: r"(?<!\d)" + r"[\s\-]?".join(re.escape(ch) for ch in p) + r"(?!\d)",
    )
    return found


def _redact(value: str, patterns, length: int | None) -> str:
    for pattern, replacement in patterns:
        value = pattern.sub(replacement, value)
    return value[:length] if length else value  # a replacement may be longer than a name


def _redact_rows(table: Table, where, patterns) -> int:
    """Replace the member's identifiers in the free text of `table`'s rows matching
    `where` (not in FIXED columns, keys and hashes); the number of rows changed."""
    columns = [
        c
        for c in table.columns
        if isinstance(c.type, String | Text)
        and f"{table.name}.{c.name}" not in FIXED
        and not c.foreign_keys
        and not c.primary_key
    ]
    if not columns or not patterns:
        return 0
    pk = list(table.primary_key.columns)[0]
    changed = 0
    for row in db.session.execute(select(pk, *columns).where(where)):
        values = row._mapping
        new = {}
        for column in columns:
            value = values[column]
            if isinstance(value, str) and value:
                redacted = _redact(value, patterns, getattr(column.type, "length", None))
                if redacted != value:
                    new[column.name] = redacted
        if new:
            db.session.execute(update(table).where(pk == values[pk]).values(**new))
            changed += 1
    return changed


def _part_owner(part: str) -> tuple[Table, str, Table]:
    """A PARTS entry as (its table, its column, the table of the rows it belongs to)."""
    table, column = _split(part)
    [key] = table.c[column].foreign_keys
    return table, column, key.column.table


def _identifiers(user: User) -> tuple[set[str], set[str], set[str]]:
    """The member's names, phones and emails: the account's, and the voter-roll entries'
    they joined with."""
    roll = _tables()["roll_entries"]
    names = {user.display_name}
    phones = {user.phone} if user.phone else set()
    emails = {user.email} if user.email else set()
    for owner, phone in db.session.execute(
        select(roll.c.owner_name, roll.c.phone).where(roll.c.invite_used_by_id == user.id)
    ):
        if owner:
            names.add(owner)
        if phone:
            phones.add(phone)
    return names, phones, emails


def _unlink(key: str, user_id: int) -> int:
    table, column = _split(key)
    where = table.c[column] == user_id
    if key == "round_voters.user_id":
        # The place stays in the frozen electorate; its slot no longer names the member,
        # nor, in a secret round, its unit (a named round's board shows the unit anyway).
        rounds = _tables()["rounds"]
        secret = select(rounds.c.id).where(rounds.c.secrecy == "secret")
        db.session.execute(
            update(table).where(where, table.c.round_id.in_(secret)).values(unit=None)
        )
        values = {"user_id": None, "slot": "x:" + cast(table.c.id, String)}
    elif key == "roll_entries.invite_used_by_id":
        # The household stays on the roll, without the owner's name and phone, and may
        # be invited again.
        values = {
            "invite_used_by_id": None,
            "invite_used_at": None,
            "invite_digest": None,
            "invite_expires_at": None,
            "owner_name": "",
            "phone": None,
        }
    else:
        values = {column: None}
    return db.session.execute(update(table).where(where).values(**values)).rowcount


def erase_account(
    user: User, password: str, *, cost: passwords.Cost, now: datetime | None = None
) -> Erasure:
    """Delete `user`'s account at their request, after they typed their password again.
    See the module's docstring for what happens to each kind of data."""
    if user.is_erased:
        raise NotFound()
    if not passwords.verify_password(user.password_hash, password or ""):
        security_event("account_deletion_refused", user_id=user.id, reason="wrong password")
        raise WrongPassword()
    begin_writing()
    moment = now or utcnow()
    user_id, phone = user.id, user.phone
    patterns = _patterns(*_identifiers(user))
    users = _tables()["users"]
    # The account first, conditionally: of two deletions at once one empties it (and on
    # PostgreSQL holds its row until it commits), the other finds it erased.
    emptied = db.session.execute(
        update(users)
        .where(users.c.id == user_id, users.c.erased_at.is_(None))
        .values(
            display_name=ERASED_NAME,
            name_key=f"deleted-{user_id}",
            phone=None,
            email=None,
            password_hash=UNUSABLE_PASSWORD,
            session_version=users.c.session_version + 1,
            is_active=False,
            is_admin=False,
            locale=None,
            large_text=False,
            last_login_at=None,
            erased_at=moment,
        )
    )
    if emptied.rowcount != 1:
        raise NotFound()
    result = Erasure()

    # Text, while the rows still lead to the member: their own rows and those rows' parts.
    for key, link in LINKS.items():
        if link.relation != OWN or link.on_erase == OnErase.DELETE:
            continue
        table, column = _split(key)
        where = table.c[column] == user_id
        result.redacted += _redact_rows(table, where, patterns)
        for part in PARTS:
            part_table, part_column, owner = _part_owner(part)
            if owner is table:
                owned = select(list(table.primary_key.columns)[0]).where(where)
                result.redacted += _redact_rows(
                    part_table, part_table.c[part_column].in_(owned), patterns
                )
    if phone:  # a household on their communities' rolls with their phone: the phone goes
        roll = _tables()["roll_entries"]
        carrying = _roll_by_phone(roll, user_id, phone)
        result.redacted += _redact_rows(roll, carrying, patterns)
        result.unlinked += db.session.execute(
            update(roll).where(carrying).values(phone=None)
        ).rowcount

    memberships = 0
    for key, link in LINKS.items():
        if link.relation != OWN:
            continue
        table, column = _split(key)
        if link.on_erase == OnErase.DELETE:
            removed = db.session.execute(delete(table).where(table.c[column] == user_id))
            result.deleted += removed.rowcount
            if table.name == "memberships":
                memberships = removed.rowcount
        elif link.on_erase == OnErase.UNLINK:
            result.unlinked += _unlink(key, user_id)

    db.session.expire_all()  # the ORM's copies of what changed above are stale
    account_erased.send(user, user_id=user_id)
    security_event("account_deleted", user_id=user_id)
    audit.record(
        "account.deleted",
        actor=user,
        subject=("user", user_id),
        details={
            "memberships": memberships,
            "removed": result.deleted,
            "unlinked": result.unlinked,
            "redacted": result.redacted,
        },
        now=moment,
    )
    return result
