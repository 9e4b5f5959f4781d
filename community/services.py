"""Domain operations on members, communities, memberships and the voter roll.

Plain values in, domain errors out; no request, session or g. Views, the CLI, jobs and
tests all call these. `require()` is the permission layer every package uses."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, or_, select, update

from community import audit
from community.identity import (
    BadValue,
    clean_display_name,
    name_skeleton,
    normalize_phone,
    split_contact,
    unit_key,
)
from community.models import Community, Membership, RollEntry, RollImport, User, utcnow
from community.permissions import (
    ACTIONS,
    CHILD_KINDS,
    INHERITED_BY_ADMINS,
    WRITING_ACTIONS,
    CommunityKind,
    MembershipStatus,
    Role,
)
from crypto import codes, passwords
from web.database import add_unique
from web.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from web.extensions import db
from web.logs import security_event

NAME_MESSAGES = {
    "empty": _l("Please enter a name."),
    "too_long": _l("Please use at most 40 characters."),
    "invisible": _l("Please remove invisible or control characters from the name."),
    "mixed_scripts": _l("Please do not mix Latin letters with Cyrillic or Greek ones."),
    "reserved": _l("This name shows deleted accounts. Please choose another name."),
}


class LoginFailed(DomainError):
    status = 400
    default_message = _l("The phone number/email or the password is wrong.")


class WrongPassword(InvalidInput):
    default_message = _l("The current password is wrong.")


class AccountExists(Conflict):
    default_message = _l("An account with this phone number or email already exists.")


class NameTaken(Conflict):
    default_message = _l("This name is already used by another member, or looks too much like it.")


# ---------------------------------------------------------------- members and login


@dataclass(frozen=True)
class PasswordPolicy:
    cost: passwords.Cost


def _password_problem(password: str) -> str | None:
    if len(password) < 8:
        return _("Please use at least 8 characters for the password.")
    if len(password) > 256:
        return _("Please use at most 256 characters for the password.")
    return None


def display_name_or_error(raw: str) -> str:
    try:
        return clean_display_name(raw)
    except BadValue as error:
        raise InvalidInput(NAME_MESSAGES[str(error)]) from error


def contact_or_error(raw: str) -> tuple[str | None, str | None]:
    try:
        return split_contact(raw)
    except BadValue as error:
        raise InvalidInput(_("Please enter a valid mobile number or email address.")) from error


def register(
    display_name: str,
    contact: str,
    password: str,
    *,
    cost: passwords.Cost,
    locale: str | None = None,
) -> User:
    name = display_name_or_error(display_name)
    phone, email = contact_or_error(contact)
    problem = _password_problem(password)
    if problem:
        raise InvalidInput(problem)
    key = name_skeleton(name)
    if db.session.scalar(select(User.id).where(User.name_key == key)):
        raise NameTaken()
    if db.session.scalar(
        select(User.id).where((User.phone == phone) if phone else (User.email == email))
    ):
        raise AccountExists()
    user = User(
        display_name=name,
        name_key=key,
        phone=phone,
        email=email,
        password_hash=passwords.hash_password(password, cost),
        locale=locale,
    )
    add_unique(user, AccountExists())  # also when a concurrent registration won the race
    security_event("registered", user_id=user.id)
    return user


def find_user_by_contact(contact: str) -> User | None:
    try:
        phone, email = split_contact(contact)
    except BadValue:
        return None
    if phone:
        return db.session.scalar(select(User).where(User.phone == phone))
    return db.session.scalar(select(User).where(User.email == email))


def authenticate(contact: str, password: str, *, cost: passwords.Cost) -> User:
    """Check the credentials. Only reads, so that the slow password check holds no write
    lock; `record_login` does the writing afterwards."""
    user = find_user_by_contact(contact)
    if user is None:
        passwords.verify_password(passwords.dummy_hash(cost), password)  # same time
        security_event("login_failed", reason="unknown account")
        raise LoginFailed()
    if not passwords.verify_password(user.password_hash, password):
        security_event("login_failed", user_id=user.id, reason="wrong password")
        raise LoginFailed()
    if not user.is_active:
        security_event("login_failed", user_id=user.id, reason="deactivated")
        raise LoginFailed()
    return user


def record_login(user: User, password: str, *, cost: passwords.Cost) -> None:
    if passwords.needs_rehash(user.password_hash, cost):
        user.password_hash = passwords.hash_password(password, cost)
    user.last_login_at = utcnow()
    security_event("login", user_id=user.id)


def end_all_sessions(user: User) -> None:
    """Every cookie issued so far (session and remember-me) stops working."""
    db.session.execute(
        update(User).where(User.id == user.id).values(session_version=User.session_version + 1)
    )
    db.session.refresh(user)


def change_password(user: User, current: str, new: str, *, cost: passwords.Cost) -> None:
    if not passwords.verify_password(user.password_hash, current):
        raise WrongPassword()
    problem = _password_problem(new)
    if problem:
        raise InvalidInput(problem)
    user.password_hash = passwords.hash_password(new, cost)
    end_all_sessions(user)
    security_event("password_changed", user_id=user.id)


def update_profile(user: User, display_name: str, locale: str | None, large_text: bool) -> None:
    name = display_name_or_error(display_name)
    key = name_skeleton(name)
    if key != user.name_key and db.session.scalar(select(User.id).where(User.name_key == key)):
        raise NameTaken()
    user.display_name, user.name_key = name, key
    user.locale = locale
    user.large_text = large_text


def set_active(actor: User, user: User, active: bool) -> None:
    if not actor.is_admin:
        raise PermissionDenied()
    user.is_active = active
    if not active:
        end_all_sessions(user)
    security_event("account_active_changed", target_user_id=user.id, active=active)
    action = "account.activated" if active else "account.deactivated"
    audit.record(action, actor=actor, subject=("user", user.id))


# Built once: every request runs it, and building the statement per call cost more CPU
# than running it.
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


def load_user_for_session(user_id: int, session_version: int) -> User | None:
    user = db.session.scalar(_USER_BY_ID, {"user_id": user_id})
    if user is None or not user.is_active or user.session_version != session_version:
        return None
    return user


# ---------------------------------------------------------------- permissions


def related_community_ids(community: Community) -> list[int]:
    """The community, its ancestors and its descendants: the branch whose members may read
    its member-only pages."""
    descendants = db.session.scalars(
        select(Community.id).where(Community.path.like(f"{community.path}%"))
    ).all()
    return sorted(set(community.ancestor_ids) | set(descendants) | {community.id})


def can_read(user: User | None, community: Community, own: Membership | None = None) -> bool:
    """Verified members of the community, of a community above it or of one inside it.

    `own` is the user's membership in `community` itself when the caller has read it
    already: a verified one answers without another query."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_admin:
        return True
    if (
        own is not None
        and own.user_id == user.id
        and own.community_id == community.id
        and own.is_verified
    ):
        return True
    # One query: a verified membership in an ancestor, the community or one inside it.
    return bool(
        db.session.scalar(
            select(Membership.id)
            .join(Community, Community.id == Membership.community_id)
            .where(
                Membership.user_id == user.id,
                Membership.status == MembershipStatus.VERIFIED,
                or_(
                    Community.id.in_(community.ancestor_ids),
                    Community.path.like(f"{community.path}%"),
                ),
            )
            .limit(1)
        )
    )


def descendant_ids(community: Community) -> list[int]:
    return list(
        db.session.scalars(select(Community.id).where(Community.path.like(f"{community.path}%")))
    )


def suspend(actor: User, membership: Membership, until, reason: str) -> Membership:
    """Suspend a member from writing until `until` (a moderator's decision)."""
    require(actor, "moderate", membership.community)
    if membership.user_id == actor.id:
        raise PermissionDenied(_("You cannot moderate yourself."))
    membership.suspended_until = until
    security_event(
        "member_suspended", membership_id=membership.id, community_id=membership.community_id
    )
    return membership


def membership_of(user: User | None, community: Community) -> Membership | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return db.session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.community_id == community.id
        )
    )


def _admin_above(user: User, community: Community) -> bool:
    ancestors = community.ancestor_ids
    if not ancestors:
        return False
    return bool(
        db.session.scalar(
            select(Membership.id).where(
                Membership.user_id == user.id,
                Membership.community_id.in_(ancestors),
                Membership.role == Role.ADMIN,
                Membership.status == MembershipStatus.VERIFIED,
            )
        )
    )


def can(user: User | None, action: str, community: Community) -> bool:
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_admin:
        return True
    membership = membership_of(user, community)
    if (
        membership is not None
        and membership.is_verified
        and Role(membership.role) in ACTIONS[action]
    ):
        return not (action in WRITING_ACTIONS and membership.is_suspended())
    return action in INHERITED_BY_ADMINS and _admin_above(user, community)


def require(user: User | None, action: str, community: Community) -> Membership | None:
    """Raise PermissionDenied unless `user` may do `action` in `community`.

    Returns the user's own membership there (None for site and inherited admins)."""
    if not can(user, action, community):
        raise PermissionDenied()
    return membership_of(user, community)


# ---------------------------------------------------------------- communities


def get_community(community_id: int) -> Community:
    community = db.session.get(Community, community_id)
    if community is None:
        raise NotFound()
    return community


def _zone_or_error(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidInput(_("Unknown time zone.")) from error
    return timezone


def create_community(
    actor: User,
    name: str,
    kind: str,
    parent: Community | None = None,
    timezone: str | None = None,
    description: str = "",
) -> Community:
    if parent is None:
        if not actor.is_admin:
            raise PermissionDenied()
    else:
        require(actor, "administer", parent)
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_("Please enter a name of at most 80 characters."))
    try:
        kind = CommunityKind(kind)
    except ValueError as error:
        raise InvalidInput(_("Please choose what kind of place this is.")) from error
    if parent is not None and kind not in CHILD_KINDS[CommunityKind(parent.kind)]:
        raise InvalidInput(_("This kind of place cannot sit inside the one chosen."))
    community = Community(
        name=name,
        kind=kind.value,
        parent=parent,
        timezone=_zone_or_error(timezone or (parent.timezone if parent else "Asia/Shanghai")),
        description=description,
    )
    add_unique(community, Conflict(_("A place with this name already exists here.")))
    community.path = f"{parent.path if parent else '/'}{community.id}/"
    security_event("community_created", community_id=community.id)
    audit.record(
        "community.created",
        actor=actor,
        community_id=community.id,
        subject=("community", community.id),
        details={"parent": community.parent_id},
    )
    return community


def ancestors(community: Community) -> list[Community]:
    ids = community.ancestor_ids
    if not ids:
        return []
    found = {c.id: c for c in db.session.scalars(select(Community).where(Community.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def root_communities() -> list[Community]:
    return list(
        db.session.scalars(
            select(Community).where(Community.parent_id.is_(None)).order_by(Community.name)
        )
    )


def community_tree() -> list[tuple[int, Community]]:
    """All communities in tree order with their depth, in one query."""
    everything = list(db.session.scalars(select(Community).order_by(Community.name)))
    by_parent: dict[int | None, list[Community]] = {}
    for c in everything:
        by_parent.setdefault(c.parent_id, []).append(c)
    out: list[tuple[int, Community]] = []

    def walk(parent_id, depth):
        for c in by_parent.get(parent_id, []):
            out.append((depth, c))
            walk(c.id, depth + 1)

    walk(None, 0)
    return out


def member_count(community: Community) -> int:
    return db.session.scalar(
        select(func.count(Membership.id)).where(
            Membership.community_id == community.id,
            Membership.status == MembershipStatus.VERIFIED,
        )
    )


def office_holders(community: Community) -> list[Membership]:
    """Who holds a role beyond resident/owner: shown publicly on the community page."""
    return list(
        db.session.scalars(
            select(Membership)
            .join(Membership.user)
            .where(
                Membership.community_id == community.id,
                Membership.status == MembershipStatus.VERIFIED,
                Membership.role.in_([Role.MODERATOR, Role.COMMITTEE, Role.ADMIN]),
            )
            .order_by(Membership.role, User.display_name)
        )
    )


# ---------------------------------------------------------------- joining


def _unit_or_error(unit: str) -> str:
    unit = " ".join((unit or "").split())
    if not unit:
        raise InvalidInput(_('Please say where you live, e.g. "Building 3, Room 502".'))
    if len(unit) > 80:
        raise InvalidInput(_("Please use at most 80 characters for the unit."))
    return unit


def request_join(user: User, community: Community, unit: str) -> Membership:
    unit = _unit_or_error(unit)
    membership = membership_of(user, community)
    if membership is not None:
        if membership.status == MembershipStatus.VERIFIED:
            raise Conflict(_("You are already a member of this community."))
        if membership.status == MembershipStatus.PENDING:
            raise Conflict(_("Your request to join is already waiting for a decision."))
        # Rejected before: ask again with the new details.
        membership.status = MembershipStatus.PENDING
        membership.unit = unit
        membership.requested_at = utcnow()
        membership.decided_at = membership.decided_by_id = membership.decision_reason = None
        return membership
    membership = Membership(user=user, community=community, unit=unit, role=Role.RESIDENT)
    return add_unique(
        membership, Conflict(_("Your request to join is already waiting for a decision."))
    )


def get_membership(community: Community, membership_id: int) -> Membership:
    membership = db.session.get(Membership, membership_id)
    if membership is None or membership.community_id != community.id:
        raise NotFound()
    return membership


def decide_join(actor: User, membership: Membership, approve: bool, reason: str = "") -> Membership:
    require(actor, "verify_members", membership.community)
    reason = (reason or "").strip()
    if not approve and not reason:
        raise InvalidInput(_("Please give the resident a reason for the rejection."))
    if len(reason) > 500:
        raise InvalidInput(_("Please keep the reason under 500 characters."))
    new_status = MembershipStatus.VERIFIED if approve else MembershipStatus.REJECTED
    # Conditional update: two moderators deciding at once cannot both win.
    result = db.session.execute(
        update(Membership)
        .where(Membership.id == membership.id, Membership.status == MembershipStatus.PENDING)
        .values(
            status=new_status,
            decided_at=utcnow(),
            decided_by_id=actor.id,
            decision_reason=reason or None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(_("This request has already been decided."))
    db.session.refresh(membership)
    security_event(
        "join_decided",
        membership_id=membership.id,
        approved=approve,
        community_id=membership.community_id,
    )
    audit.record(
        "member.approved" if approve else "member.rejected",
        actor=actor,
        community_id=membership.community_id,
        subject=("membership", membership.id),
        details={"user": membership.user_id},
    )
    return membership


def join_queue(actor: User, community: Community) -> list[Membership]:
    require(actor, "verify_members", community)
    return list(
        db.session.scalars(
            select(Membership)
            .where(
                Membership.community_id == community.id,
                Membership.status == MembershipStatus.PENDING,
            )
            .order_by(Membership.requested_at)
        )
    )


def list_members(actor: User, community: Community) -> list[Membership]:
    require(actor, "view_members", community)
    return list(
        db.session.scalars(
            select(Membership)
            .join(Membership.user)
            .where(
                Membership.community_id == community.id,
                Membership.status == MembershipStatus.VERIFIED,
            )
            .order_by(Membership.unit, User.display_name)
        )
    )


def assign_role(actor: User, membership: Membership, role: str) -> Membership:
    require(actor, "administer", membership.community)
    try:
        role = Role(role)
    except ValueError as error:
        raise InvalidInput(_("Unknown role.")) from error
    if membership.status != MembershipStatus.VERIFIED:
        raise InvalidInput(_("Only verified members can be given a role."))
    before, membership.role = membership.role, role.value
    security_event(
        "role_assigned",
        membership_id=membership.id,
        role=role.value,
        community_id=membership.community_id,
    )
    audit.record(
        "member.role",
        actor=actor,
        community_id=membership.community_id,
        subject=("membership", membership.id),
        details={"user": membership.user_id, "from": before, "to": role.value},
    )
    return membership


def appoint(actor: User, community: Community, contact: str, role: str) -> Membership:
    """Give a role to someone who may not live here (e.g. neighborhood committee staff)."""
    require(actor, "administer", community)
    user = find_user_by_contact(contact)
    if user is None:
        raise NotFound(_("No account uses this phone number or email."))
    membership = membership_of(user, community)
    if membership is None:
        membership = Membership(user=user, community=community, how_joined="appointed")
        db.session.add(membership)
    membership.status = MembershipStatus.VERIFIED
    membership.decided_at = utcnow()
    membership.decided_by_id = actor.id
    db.session.flush()
    return assign_role(actor, membership, role)


def my_memberships(user: User) -> list[Membership]:
    return list(
        db.session.scalars(
            select(Membership)
            .join(Membership.community)
            .where(Membership.user_id == user.id)
            .order_by(Membership.status.desc(), Community.name)
        )
    )


@dataclass
class CommunityActivity:
    """What the home page shows for one of the member's communities."""

    membership: Membership
    members: int
    joined_this_month: int
    requests_waiting: int | None  # only for those who decide on requests


def home_activity(user: User) -> list[CommunityActivity]:
    """The member's verified communities with what is happening there, in 3 queries."""
    memberships = [m for m in my_memberships(user) if m.is_verified]
    ids = [m.community_id for m in memberships]
    if not ids:
        return []
    month_ago = utcnow() - timedelta(days=30)
    verified = MembershipStatus.VERIFIED
    rows = db.session.execute(
        select(
            Membership.community_id,
            func.count(Membership.id).filter(Membership.status == verified),
            func.count(Membership.id).filter(
                Membership.status == verified, Membership.decided_at >= month_ago
            ),
            func.count(Membership.id).filter(Membership.status == MembershipStatus.PENDING),
        )
        .where(Membership.community_id.in_(ids))
        .group_by(Membership.community_id)
    ).all()
    counts = {row[0]: row[1:] for row in rows}
    activity = []
    for m in memberships:
        members, recent, pending = counts.get(m.community_id, (0, 0, 0))
        deciding = can(user, "verify_members", m.community)
        activity.append(CommunityActivity(m, members, recent, pending if deciding else None))
    return activity


# ---------------------------------------------------------------- voter roll


ROLL_COLUMNS = ("unit", "owner_name", "phone", "private_area")
ROLL_HEADER_ALIASES = {
    "unit": "unit", "房号": "unit", "单元": "unit", "房屋": "unit",
    "owner_name": "owner_name", "owner": "owner_name", "name": "owner_name",
    "业主": "owner_name", "业主姓名": "owner_name", "姓名": "owner_name",
    "phone": "phone", "电话": "phone", "手机": "phone", "手机号": "phone",
    "private_area": "private_area", "area": "private_area", "专有面积": "private_area",
    "面积": "private_area",
}  # fmt: skip
MAX_ROLL_ROWS = 20000


@dataclass
class RollProblem:
    line: int
    message: str


class RollRejected(InvalidInput):
    def __init__(self, problems: list[RollProblem]):
        super().__init__(_("The roll was not imported: %(n)d problem(s).", n=len(problems)))
        self.problems = problems


@dataclass
class RollReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    entries: list[RollEntry] = field(default_factory=list)


def _parse_area(text: str) -> Decimal | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        area = Decimal(text)
    except InvalidOperation as error:
        raise ValueError(_('the private area "%(v)s" is not a number', v=text)) from error
    if not area.is_finite() or area <= 0 or area >= Decimal("10000000000"):
        raise ValueError(_("the private area must be a positive number of m²"))
    if area != area.quantize(Decimal("0.01")):
        raise ValueError(_("the private area has more than two decimal places"))
    return area.quantize(Decimal("0.01"))


def parse_roll(text: str) -> tuple[list[dict], list[RollProblem]]:
    """Read a voter-roll CSV (unit, owner name, phone, private area m²)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text))
    rows: list[dict] = []
    problems: list[RollProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [RollProblem(1, _("the file is empty"))]
    columns = [ROLL_HEADER_ALIASES.get(h.strip().lower()) for h in header]
    missing = [c for c in ("unit", "owner_name") if c not in columns]
    if missing:
        return [], [
            RollProblem(
                1,
                _("the first line must name the columns: unit, owner_name, phone, private_area"),
            )
        ]
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        if not any(cell.strip() for cell in raw):
            continue
        if len(rows) + len(problems) >= MAX_ROLL_ROWS:
            problems.append(RollProblem(number, _("too many rows (at most 20,000)")))
            break
        if len(raw) != len(header):
            problems.append(
                RollProblem(
                    number, _("expected %(a)d columns, found %(b)d", a=len(header), b=len(raw))
                )
            )
            continue
        record = {c: raw[i].strip() for i, c in enumerate(columns) if c}
        try:
            unit = _unit_or_error(record.get("unit", ""))
            owner = clean_display_name(record.get("owner_name", ""))
            phone = normalize_phone(record["phone"]) if record.get("phone") else None
            area = _parse_area(record.get("private_area", ""))
        except InvalidInput as error:
            problems.append(RollProblem(number, str(error.message)))
            continue
        except BadValue as error:
            reason = str(error)
            message = (
                _("the phone number is not valid")
                if reason == "phone"
                else _("the owner's name: %(m)s", m=NAME_MESSAGES.get(reason, reason))
            )
            problems.append(RollProblem(number, message))
            continue
        except ValueError as error:
            problems.append(RollProblem(number, str(error)))
            continue
        key = unit_key(unit)
        if key in seen:
            problems.append(
                RollProblem(number, _('unit "%(u)s" is already on line %(l)d', u=unit, l=seen[key]))
            )
            continue
        seen[key] = number
        rows.append(
            {
                "unit": unit,
                "unit_key": key,
                "owner_name": owner,
                "phone": phone,
                "private_area": area,
            }
        )
    if not rows and not problems:
        problems.append(RollProblem(2, _("the file has no rows")))
    return rows, problems


def import_roll(
    actor: User | None, community: Community, text: str, filename: str = ""
) -> RollReport:
    """All or nothing: any bad row rejects the whole file with every problem listed.

    Re-importing updates households already on the roll (matched by unit) and keeps their
    invitations; it never duplicates them. `actor=None` is the command line."""
    if actor is not None:
        require(actor, "manage_roll", community)
    rows, problems = parse_roll(text)
    if problems:
        raise RollRejected(problems)
    existing = {
        e.unit_key: e
        for e in db.session.scalars(select(RollEntry).where(RollEntry.community_id == community.id))
    }
    batch = RollImport(
        community_id=community.id,
        imported_by_id=actor.id if actor else None,
        filename=filename[:255],
    )
    db.session.add(batch)
    db.session.flush()
    report = RollReport()
    for row in rows:
        entry = existing.get(row["unit_key"])
        if entry is None:
            entry = RollEntry(community_id=community.id, import_id=batch.id, **row)
            db.session.add(entry)
            report.added += 1
        elif (entry.unit, entry.owner_name, entry.phone, entry.private_area) != (
            row["unit"],
            row["owner_name"],
            row["phone"],
            row["private_area"],
        ):
            entry.unit, entry.owner_name = row["unit"], row["owner_name"]
            entry.phone, entry.private_area = row["phone"], row["private_area"]
            entry.import_id = batch.id
            report.updated += 1
        else:
            report.unchanged += 1
        report.entries.append(entry)
    batch.rows_added, batch.rows_updated = report.added, report.updated
    db.session.flush()
    security_event(
        "roll_imported", community_id=community.id, added=report.added, updated=report.updated
    )
    audit.record(
        "roll.imported",
        actor=actor,
        community_id=community.id,
        subject=("roll_import", batch.id),
        details={"added": report.added, "updated": report.updated, "unchanged": report.unchanged},
    )
    return report


def roll_entries(actor: User, community: Community) -> list[RollEntry]:
    require(actor, "manage_roll", community)
    return list(
        db.session.scalars(
            select(RollEntry).where(RollEntry.community_id == community.id).order_by(RollEntry.unit)
        )
    )


INVITE_LIFETIME = timedelta(days=30)


def issue_invites(
    actor: User | None, community: Community, entry_ids: list[int] | None = None
) -> list[tuple[RollEntry, str]]:
    """New one-time codes for households that have not joined yet. The codes are returned
    once, to be printed and handed out; only their digests are stored. Issuing again
    replaces a household's earlier, unused code."""
    if actor is not None:
        require(actor, "manage_roll", community)
    query = select(RollEntry).where(
        RollEntry.community_id == community.id, RollEntry.invite_used_at.is_(None)
    )
    if entry_ids is not None:
        query = query.where(RollEntry.id.in_(entry_ids))
    issued = []
    expires = utcnow() + INVITE_LIFETIME
    for entry in db.session.scalars(query.order_by(RollEntry.unit)):
        code = codes.new_code()
        entry.invite_digest = codes.code_digest(code)
        entry.invite_expires_at = expires
        issued.append((entry, code))
    db.session.flush()
    security_event("invites_issued", community_id=community.id, count=len(issued))
    details = {"count": len(issued)}
    audit.record("roll.invites", actor=actor, community_id=community.id, details=details)
    return issued


class InviteInvalid(InvalidInput):
    default_message = _l("This invitation code is not valid, has expired or was already used.")


def redeem_invite(user: User, code: str) -> Membership:
    entry = db.session.scalar(
        select(RollEntry).where(RollEntry.invite_digest == codes.code_digest(code))
    )
    now = utcnow()
    if entry is None or entry.invite_used_at is not None or entry.invite_expires_at < now:
        security_event("invite_refused")
        raise InviteInvalid()
    # Single use even when two people type the same code at once.
    claimed = db.session.execute(
        update(RollEntry)
        .where(RollEntry.id == entry.id, RollEntry.invite_used_at.is_(None))
        .values(invite_used_at=now, invite_used_by_id=user.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise InviteInvalid()
    community = entry.community
    membership = membership_of(user, community)
    if membership is None:
        membership = Membership(user=user, community=community, role=Role.RESIDENT.value)
        db.session.add(membership)
    elif membership.status == MembershipStatus.VERIFIED and membership.unit:
        raise Conflict(_("You are already a verified member of this community."))
    membership.status = MembershipStatus.VERIFIED
    membership.unit = entry.unit
    membership.private_area = entry.private_area
    membership.how_joined = "invite"
    membership.decided_at = now
    if membership.role == Role.RESIDENT and entry.private_area is not None:
        membership.role = Role.OWNER.value
    db.session.flush()
    security_event("invite_redeemed", community_id=community.id, membership_id=membership.id)
    return membership
