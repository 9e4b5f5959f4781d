"""Domain operations of deliberation: proposals and their life, support, threads,
moderation, follows and notifications, lists and search.

Plain values in, domain errors out. Permission checks go through
`community.services.require`; every state change that could race is a conditional UPDATE
or guarded by a unique constraint."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, delete, func, insert, select, text, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from community import audit
from community import services as community_services
from community.models import Community, Membership, User, utcnow
from community.permissions import MembershipStatus
from deliberation import markup, textsearch
from deliberation.lifecycle import (
    COMMENT_EDIT_MINUTES,
    EDITABLE,
    MAX_PHOTOS,
    MAX_REPLY_DEPTH,
    PUBLISHED,
    WITHDRAWABLE,
    Category,
    Stance,
    Status,
    can_move,
)
from deliberation.models import (
    Comment,
    CustomCategory,
    DeliberationSettings,
    Follow,
    HelpfulMark,
    ModerationEntry,
    Notification,
    Photo,
    Proposal,
    Report,
    Revision,
    StatusChange,
    Support,
)
from web.database import add_unique
from web.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from web.extensions import db
from web.logs import security_event

require = community_services.require

CATEGORY_LABELS = {
    Category.ENVIRONMENT: _l("Environment"),
    Category.SAFETY: _l("Safety"),
    Category.FACILITIES: _l("Facilities"),
    Category.FINANCE: _l("Finance"),
    Category.ELDERLY_CHILDREN: _l("Elderly & children"),
    Category.OTHER: _l("Other"),
}

DEFAULT_SUPPORT_PERCENT = Decimal("10")
DEFAULT_WINDOW_DAYS = 30
MAX_TITLE = 120
MAX_COMMENT = 5000


class NotFoundHere(NotFound):
    default_message = _l("We could not find that proposal.")


# ---------------------------------------------------------------- settings and categories


def settings_for(community: Community) -> DeliberationSettings:
    found = db.session.get(DeliberationSettings, community.id)
    return found or DeliberationSettings(
        community_id=community.id,
        support_threshold=None,
        support_percent=DEFAULT_SUPPORT_PERCENT,
        support_window_days=DEFAULT_WINDOW_DAYS,
    )


def required_support(community: Community) -> int:
    settings = settings_for(community)
    if settings.support_threshold is not None:
        return max(1, settings.support_threshold)
    members = community_services.member_count(community)
    return max(1, math.ceil(members * settings.support_percent / 100))


def update_settings(
    actor: User,
    community: Community,
    *,
    threshold: int | None,
    percent: Decimal | None,
    window_days: int,
) -> DeliberationSettings:
    require(actor, "configure", community)
    if (threshold is None) == (percent is None):
        raise InvalidInput(_("Please give either a number of supporters or a percentage."))
    if threshold is not None and not 1 <= threshold <= 100000:
        raise InvalidInput(_("The number of supporters must be between 1 and 100,000."))
    if percent is not None and not Decimal("0.1") <= percent <= Decimal("100"):
        raise InvalidInput(_("The percentage must be between 0.1 and 100."))
    if not 1 <= window_days <= 365:
        raise InvalidInput(_("The support period must be between 1 and 365 days."))
    settings = db.session.get(DeliberationSettings, community.id)
    if settings is None:
        settings = DeliberationSettings(community_id=community.id)
        db.session.add(settings)
    settings.support_threshold, settings.support_percent = threshold, percent
    settings.support_window_days = window_days
    return settings


def categories(community: Community) -> list[tuple[str, str]]:
    """(value, label) pairs: the fixed categories, then the community's own."""
    fixed = [(c.value, str(CATEGORY_LABELS[c])) for c in Category]
    custom = db.session.scalars(
        select(CustomCategory)
        .where(CustomCategory.community_id.in_(community.ancestor_ids + [community.id]))
        .order_by(CustomCategory.name)
    )
    return fixed[:-1] + [(f"custom:{c.id}", c.name) for c in custom] + fixed[-1:]


def category_label(value: str, labels: dict[str, str] | None = None) -> str:
    if labels and value in labels:
        return labels[value]
    try:
        return str(CATEGORY_LABELS[Category(value)])
    except ValueError:
        if value.startswith("custom:") and value[7:].isdigit():
            custom = db.session.get(CustomCategory, int(value[7:]))
            if custom is not None:
                return custom.name
        return str(CATEGORY_LABELS[Category.OTHER])


def add_category(actor: User, community: Community, name: str) -> CustomCategory:
    require(actor, "configure", community)
    name = " ".join((name or "").split())
    if not name or len(name) > 40:
        raise InvalidInput(_("Please give the category a name of at most 40 characters."))
    category = CustomCategory(community_id=community.id, name=name)
    return add_unique(category, Conflict(_("This category already exists.")))


def _category_or_error(community: Community, value: str) -> str:
    if value in {v for v, _label in categories(community)}:
        return value
    raise InvalidInput(_("Please choose a category."))


# ---------------------------------------------------------------- visibility and loading


def can_see(user: User | None, proposal: Proposal) -> bool:
    if proposal.status == Status.DRAFT:
        return user is not None and getattr(user, "id", None) == proposal.author_id
    return community_services.can_read(user, proposal.community)


def get_proposal(user: User | None, proposal_id: int) -> Proposal:
    """The one way to load a proposal for a member: 404 when it is outside their reach."""
    proposal = db.session.get(Proposal, proposal_id)
    if proposal is None or not can_see(user, proposal):
        raise NotFoundHere()
    return proposal


def get_comment(user: User | None, comment_id: int) -> Comment:
    comment = db.session.get(Comment, comment_id)
    if comment is None or not can_see(user, comment.proposal):
        raise NotFound()
    return comment


def is_moderator(user: User | None, community: Community) -> bool:
    return community_services.can(user, "moderate", community)


# ---------------------------------------------------------------- proposals


@dataclass
class ProposalDraft:
    """What an author types: checked and normalized by `_checked`."""

    title: str
    body: str
    category: str
    estimated_cost: str | Decimal | None = None


def _checked(community: Community, draft: ProposalDraft) -> tuple[str, str, str, Decimal | None]:
    title = " ".join((draft.title or "").split())
    if not title:
        raise InvalidInput(_("Please give your proposal a title."))
    if len(title) > MAX_TITLE:
        raise InvalidInput(_("Please keep the title under 120 characters."))
    body = (draft.body or "").strip()
    if not body:
        raise InvalidInput(_("Please describe your proposal."))
    if len(body) > markup.MAX_SOURCE_CHARS:
        raise InvalidInput(_("Please keep the description under 20,000 characters."))
    category = _category_or_error(community, draft.category)
    cost = yuan_or_error(draft.estimated_cost, _("The estimated cost must be a number of yuan."))
    return title, body, category, cost


def yuan_or_error(value, message: str) -> Decimal | None:
    """An amount of money as people type it ("12,000", "¥300.5"), to the fen; None when
    left empty; `message` (an InvalidInput) when it is not an amount from 0 to 10¹²."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).replace(",", "").replace("¥", "").strip())
    except InvalidOperation as error:
        raise InvalidInput(message) from error
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        raise InvalidInput(message)
    return amount.quantize(Decimal("0.01"))


def _apply_text(proposal: Proposal, title: str, body: str, category: str, cost) -> None:
    proposal.title, proposal.body, proposal.category = title, body, category
    proposal.estimated_cost = cost
    proposal.body_html = markup.render_markdown(body)
    proposal.search_terms = textsearch.index_terms(title, body)


def _add_revision(proposal: Proposal) -> Revision:
    number = (
        db.session.scalar(
            select(func.max(Revision.number)).where(Revision.proposal_id == proposal.id)
        )
        or 0
    ) + 1
    revision = Revision(
        proposal_id=proposal.id,
        number=number,
        title=proposal.title,
        body=proposal.body,
        category=proposal.category,
        estimated_cost=proposal.estimated_cost,
    )
    db.session.add(revision)
    return revision


def submit_proposal(
    author: User,
    community: Community,
    draft: ProposalDraft,
    *,
    publish: bool,
    photos: list | None = None,
    upload_dir: Path | None = None,
) -> Proposal:
    require(author, "participate", community)
    title, body, category, cost = _checked(community, draft)
    photos = photos or []
    if len(photos) > MAX_PHOTOS:
        raise InvalidInput(_("Please attach at most 6 photos."))
    proposal = Proposal(
        community_id=community.id, author_id=author.id, status=Status.DRAFT.value, locked=False
    )
    proposal.community = community
    _apply_text(proposal, title, body, category, cost)
    db.session.add(proposal)
    db.session.flush()
    _add_revision(proposal)
    for position, (prepared, original_name) in enumerate(photos):
        _store_photo(proposal, prepared, original_name, position, upload_dir)
    follow(author, proposal)
    if publish:
        publish_proposal(author, proposal)
    return proposal


def edit_proposal(author: User, proposal: Proposal, draft: ProposalDraft) -> Proposal:
    if author.id != proposal.author_id:
        raise PermissionDenied(_("Only the author can edit a proposal."))
    require(author, "participate", proposal.community)
    if proposal.status not in EDITABLE or _collection_over(proposal):
        raise Conflict(_("A proposal can be edited only until support collection ends."))
    title, body, category, cost = _checked(proposal.community, draft)
    if (title, body, category, cost) == (
        proposal.title,
        proposal.body,
        proposal.category,
        proposal.estimated_cost,
    ):
        return proposal
    _apply_text(proposal, title, body, category, cost)
    _add_revision(proposal)
    return proposal


def revisions(proposal: Proposal) -> list[Revision]:
    return list(
        db.session.scalars(
            select(Revision)
            .where(Revision.proposal_id == proposal.id)
            .order_by(Revision.number.desc())
        )
    )


def _collection_over(proposal: Proposal) -> bool:
    """Support collection ends at the deadline by the server clock, whether or not the
    expiry sweep has run yet."""
    deadline = proposal.support_deadline
    return deadline is not None and utcnow() >= deadline


def _move(proposal: Proposal, target: Status, reason: str | None = None, now=None) -> bool:
    """Conditional status change: true when this call made it (exactly once)."""
    if not can_move(proposal.status, target):
        return False
    now = now or utcnow()
    values = {"status": target.value, "status_changed_at": now, "status_reason": reason}
    result = db.session.execute(
        update(Proposal)
        .where(Proposal.id == proposal.id, Proposal.status == proposal.status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    moved = result.rowcount == 1
    if moved:
        db.session.add(
            StatusChange(proposal_id=proposal.id, status=target.value, reason=reason, at=now)
        )
    db.session.refresh(proposal)
    return moved


def publish_proposal(author: User, proposal: Proposal) -> Proposal:
    if author.id != proposal.author_id:
        raise PermissionDenied(_("Only the author can publish a proposal."))
    require(author, "participate", proposal.community)
    if proposal.status != Status.DRAFT:
        raise Conflict(_("This proposal is already published."))
    now = utcnow()
    window = settings_for(proposal.community).support_window_days
    if _move(proposal, Status.COLLECTING, now=now):
        proposal.published_at = now
        proposal.support_deadline = now + timedelta(days=window)
    return proposal


def withdraw(author: User, proposal: Proposal, reason: str = "") -> Proposal:
    if author.id != proposal.author_id:
        raise PermissionDenied(_("Only the author can withdraw a proposal."))
    if proposal.status not in WITHDRAWABLE or not _move(
        proposal, Status.WITHDRAWN, reason.strip()[:500] or None
    ):
        raise Conflict(_("This proposal can no longer be withdrawn."))
    _notify_followers(proposal, "status_changed", exclude=author.id)
    return proposal


def schedule_for_vote(actor: User, proposal: Proposal) -> Proposal:
    require(actor, "run_rounds", proposal.community)
    if proposal.status != Status.DELIBERATION or not _move(proposal, Status.SCHEDULED):
        raise Conflict(_("Only a proposal in deliberation can be scheduled for a vote."))
    _notify_followers(proposal, "status_changed", exclude=actor.id)
    return proposal


def close_proposal(actor: User, proposal: Proposal, reason: str) -> Proposal:
    require(actor, "run_rounds", proposal.community)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Please give the reason for closing."))
    if proposal.status not in (Status.DELIBERATION, Status.SCHEDULED) or not _move(
        proposal, Status.CLOSED, reason[:1000]
    ):
        raise Conflict(_("This proposal cannot be closed now."))
    _notify_followers(proposal, "status_changed", exclude=actor.id)
    return proposal


def change_status(proposal: Proposal, target: str, reason: str | None = None) -> bool:
    """For other packages (the ballots' outcome): move along the lifecycle, exactly once."""
    moved = _move(proposal, Status(target), reason)
    if moved:
        _notify_followers(proposal, "status_changed")
    return moved


def expire_due_proposals(now: datetime) -> int:
    """Proposals whose support window ended without reaching the threshold expire."""
    due = db.session.scalars(
        select(Proposal).where(
            Proposal.status == Status.COLLECTING, Proposal.support_deadline <= now
        )
    ).all()
    expired = 0
    for proposal in due:
        if _move(proposal, Status.EXPIRED, now=now):
            expired += 1
            _notify_followers(proposal, "expired")
    return expired


# ---------------------------------------------------------------- support


def has_supported(user: User | None, proposal: Proposal) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(
        db.session.scalar(
            select(Support.id).where(Support.proposal_id == proposal.id, Support.user_id == user.id)
        )
    )


def support(user: User, proposal: Proposal) -> bool:
    """Co-sign once. Returns True when this call added the support (idempotent)."""
    require(user, "participate", proposal.community)
    if proposal.status != Status.COLLECTING or proposal.is_hidden or _collection_over(proposal):
        raise Conflict(_("Support can be given only while a proposal collects support."))
    try:
        with db.session.begin_nested():
            db.session.add(Support(proposal_id=proposal.id, user_id=user.id))
    except IntegrityError:
        return False  # already supported: a double click or a retry
    # Conditional: a support racing the move to deliberation (or expiry) is not counted.
    counted = db.session.execute(
        update(Proposal)
        .where(Proposal.id == proposal.id, Proposal.status == Status.COLLECTING)
        .values(support_count=Proposal.support_count + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not counted:
        raise Conflict(_("Support can be given only while a proposal collects support."))
    follow(user, proposal)
    _reach_threshold(proposal)
    return True


def withdraw_support(user: User, proposal: Proposal) -> bool:
    require(user, "participate", proposal.community)
    if proposal.status != Status.COLLECTING or _collection_over(proposal):
        raise Conflict(_("Support can be taken back only while a proposal collects support."))
    removed = db.session.execute(
        delete(Support).where(Support.proposal_id == proposal.id, Support.user_id == user.id)
    ).rowcount
    if removed:
        counted = db.session.execute(
            update(Proposal)
            .where(Proposal.id == proposal.id, Proposal.status == Status.COLLECTING)
            .values(support_count=Proposal.support_count - 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not counted:  # it moved on meanwhile: the support stays
            raise Conflict(_("Support can be taken back only while a proposal collects support."))
    db.session.refresh(proposal)
    return bool(removed)


def _reach_threshold(proposal: Proposal) -> None:
    needed = required_support(proposal.community)
    now = utcnow()
    moved = db.session.execute(
        update(Proposal)
        .where(
            Proposal.id == proposal.id,
            Proposal.status == Status.COLLECTING,
            Proposal.support_count >= needed,
        )
        .values(status=Status.DELIBERATION.value, status_changed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(proposal)
    if moved:
        db.session.add(
            StatusChange(proposal_id=proposal.id, status=Status.DELIBERATION.value, at=now)
        )
        _notify_followers(proposal, "threshold_reached")


# ---------------------------------------------------------------- photos


def write_photo(prepared, original_name: str, upload_dir: Path) -> dict:
    """Write a checked photo and its thumbnail under a random name; the columns of its
    row (a proposal's or a progress update's photo)."""
    from deliberation import photos

    stored = f"{secrets.token_hex(16)}.{prepared.info.extension}"
    upload_dir.mkdir(parents=True, exist_ok=True)
    (upload_dir / stored).write_bytes(prepared.image_bytes)
    (upload_dir / f"thumb-{stored}").write_bytes(prepared.thumb_bytes)
    return {
        "stored_name": stored,
        "display_name": photos.safe_display_name(original_name),
        "mime": prepared.info.mime,
        "width": prepared.width,
        "height": prepared.height,
    }


def _store_photo(proposal: Proposal, prepared, original_name: str, position: int, upload_dir):
    db.session.add(
        Photo(
            proposal_id=proposal.id,
            position=position,
            **write_photo(prepared, original_name, upload_dir),
        )
    )


def get_photo(user: User | None, stored_name: str) -> Photo:
    """Photos of a hidden proposal stay visible where its page shows them: to the author
    and the moderators."""
    photo = db.session.scalar(select(Photo).where(Photo.stored_name == stored_name))
    if photo is None or not can_see(user, photo.proposal):
        raise NotFound()
    proposal = photo.proposal
    if (
        proposal.is_hidden
        and user.id != proposal.author_id
        and not is_moderator(user, proposal.community)
    ):
        raise NotFound()
    return photo


# ---------------------------------------------------------------- follows and notifications


def follow(user: User, proposal: Proposal) -> None:
    existing = db.session.scalar(
        select(Follow).where(Follow.proposal_id == proposal.id, Follow.user_id == user.id)
    )
    if existing is None:
        try:
            with db.session.begin_nested():
                db.session.add(Follow(proposal_id=proposal.id, user_id=user.id, active=True))
        except IntegrityError:
            pass


def set_following(user: User, proposal: Proposal, active: bool) -> None:
    existing = db.session.scalar(
        select(Follow).where(Follow.proposal_id == proposal.id, Follow.user_id == user.id)
    )
    if existing is None:
        db.session.add(Follow(proposal_id=proposal.id, user_id=user.id, active=active))
    else:
        existing.active = active


def is_following(user: User | None, proposal: Proposal) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(
        db.session.scalar(
            select(Follow.id).where(
                Follow.proposal_id == proposal.id, Follow.user_id == user.id, Follow.active
            )
        )
    )


def notify(
    user_ids,
    kind: str,
    proposal: Proposal | None = None,
    comment=None,
    *,
    url: str | None = None,
    subject: str | None = None,
) -> int:
    """Notify members. `url` and `subject` link a notification to something of another
    package (a voting round): a site path and its title."""
    rows = [
        {
            "user_id": uid,
            "kind": kind,
            "proposal_id": proposal.id if proposal else None,
            "comment_id": comment.id if comment else None,
            "url": url,
            "subject": subject[:200] if subject else None,
            "created_at": utcnow(),
        }
        for uid in sorted(set(user_ids))
    ]
    if rows:
        # One multi-row INSERT: a round's close notifies its whole electorate.
        db.session.execute(insert(Notification), rows)
    return len(rows)


def _notify_followers(proposal: Proposal, kind: str, exclude: int | None = None) -> None:
    followers = db.session.scalars(
        select(Follow.user_id).where(Follow.proposal_id == proposal.id, Follow.active)
    ).all()
    recipients = set(followers)
    if kind in ("threshold_reached", "expired"):
        recipients.add(proposal.author_id)
    recipients.discard(exclude)
    notify(recipients, kind, proposal)


# Built once: every page's header runs it.
_UNREAD = select(func.count(Notification.id)).where(
    Notification.user_id == bindparam("user_id"), Notification.read_at.is_(None)
)


def unread_count(user: User) -> int:
    return db.session.scalar(_UNREAD, {"user_id": user.id})


def notifications_of(user: User, limit: int = 50) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .options(selectinload(Notification.proposal))
            .where(Notification.user_id == user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def mark_all_read(user: User) -> int:
    return db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount


# ---------------------------------------------------------------- threads


def _comment_text_or_error(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise InvalidInput(_("Please write something first."))
    if len(body) > MAX_COMMENT:
        raise InvalidInput(_("Please keep a comment under 5,000 characters."))
    return body


def post_comment(
    author: User,
    proposal: Proposal,
    body: str,
    stance: str,
    parent: Comment | None = None,
    *,
    update_id: int | None = None,
) -> Comment:
    """A comment in the proposal's discussion, or with `update_id` on one of its
    implementation updates (those are not counted in the discussion)."""
    require(author, "participate", proposal.community)
    if proposal.status == Status.DRAFT or proposal.is_hidden:
        raise Conflict(_("This proposal cannot be discussed."))
    if proposal.locked:
        raise Conflict(_("The discussion of this proposal is locked by the moderators."))
    try:
        stance = Stance(stance)
    except ValueError as error:
        raise InvalidInput(_("Please choose for, against, question or neutral.")) from error
    body = _comment_text_or_error(body)
    depth = 0
    if parent is not None:
        if parent.proposal_id != proposal.id:
            raise InvalidInput(_("You can only reply within the same discussion."))
        if parent.depth >= MAX_REPLY_DEPTH:
            raise InvalidInput(_("Replies go at most three levels deep."))
        if parent.update_id != update_id:
            raise InvalidInput(_("You can only reply within the same discussion."))
        depth = parent.depth + 1
    comment = Comment(
        proposal_id=proposal.id,
        author_id=author.id,
        parent_id=parent.id if parent else None,
        update_id=update_id,
        depth=depth,
        stance=stance.value,
        body=body,
        body_html=markup.render_markdown(body),
    )
    db.session.add(comment)
    if update_id is None:
        db.session.execute(
            update(Proposal)
            .where(Proposal.id == proposal.id)
            .values(comment_count=Proposal.comment_count + 1)
            .execution_options(synchronize_session=False)
        )
    db.session.flush()
    follow(author, proposal)
    if parent is not None and parent.author_id != author.id and not parent.is_deleted:
        notify([parent.author_id], "reply", proposal, comment)
    return comment


def _own_comment(author: User, comment: Comment) -> None:
    if comment.author_id != author.id:
        raise PermissionDenied(_("Only the author can change a comment."))
    if comment.is_deleted:
        raise Conflict(_("This comment was deleted."))


def edit_comment(author: User, comment: Comment, body: str, now=None) -> Comment:
    _own_comment(author, comment)
    require(author, "participate", comment.proposal.community)
    if (now or utcnow()) - comment.created_at > timedelta(minutes=COMMENT_EDIT_MINUTES):
        raise Conflict(_("Comments can be edited only for 15 minutes."))
    if comment.proposal.locked:
        raise Conflict(_("The discussion of this proposal is locked by the moderators."))
    comment.body = _comment_text_or_error(body)
    comment.body_html = markup.render_markdown(comment.body)
    comment.edited_at = utcnow()
    return comment


def delete_comment(author: User, comment: Comment) -> Comment:
    """The author's own deletion leaves a tombstone so replies keep their place."""
    _own_comment(author, comment)
    comment.deleted_at = utcnow()
    comment.body = ""
    comment.body_html = ""
    return comment


def mark_helpful(user: User, comment: Comment) -> bool:
    """One "helpful" mark per member; marking again takes it back. Returns the new state."""
    require(user, "participate", comment.proposal.community)
    if comment.author_id == user.id:
        raise InvalidInput(_("You cannot mark your own comment as helpful."))
    removed = db.session.execute(
        delete(HelpfulMark).where(
            HelpfulMark.comment_id == comment.id, HelpfulMark.user_id == user.id
        )
    ).rowcount
    if removed:
        delta, marked = -1, False
    else:
        try:
            with db.session.begin_nested():
                db.session.add(HelpfulMark(comment_id=comment.id, user_id=user.id))
        except IntegrityError:
            return True
        delta, marked = 1, True
    db.session.execute(
        update(Comment)
        .where(Comment.id == comment.id)
        .values(helpful_count=Comment.helpful_count + delta)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(comment)
    return marked


THREAD_PAGE_SIZE = 25  # top-level comments per page, each with all its replies


@dataclass
class Thread:
    comments: list[Comment]  # this page's comments in display order (depth-first)
    counts: dict[str, int]  # stance → visible comments in the whole discussion
    strongest: dict[str, Comment | None]  # best "for", "against", "question" by helpful marks
    helpful_by_me: set[int]
    page: int = 1
    pages: int = 1


def _visible_comments(proposal: Proposal):
    return (
        Comment.proposal_id == proposal.id,
        Comment.update_id.is_(None),
        Comment.hidden_at.is_(None),
        Comment.deleted_at.is_(None),
    )


def thread(proposal: Proposal, viewer: User | None = None, page: int = 1) -> Thread:
    """One page of the discussion (top-level comments with all their replies), with the
    counts and strongest comments of the whole discussion: a fixed number of queries and
    a bounded page, however long the discussion grows."""
    counts = {s.value: 0 for s in Stance}
    for stance, number in db.session.execute(
        select(Comment.stance, func.count(Comment.id))
        .where(*_visible_comments(proposal))
        .group_by(Comment.stance)
    ):
        counts[stance] = number
    strongest: dict[str, Comment | None] = {}
    for stance in (Stance.FOR, Stance.AGAINST, Stance.QUESTION):
        strongest[stance.value] = db.session.scalar(
            select(Comment)
            .options(joinedload(Comment.author))
            .where(
                *_visible_comments(proposal), Comment.stance == stance, Comment.helpful_count > 0
            )
            .order_by(Comment.helpful_count.desc(), Comment.id)
            .limit(1)
        )
    top_level = (
        Comment.proposal_id == proposal.id,
        Comment.update_id.is_(None),
        Comment.parent_id.is_(None),
    )
    total = db.session.scalar(select(func.count(Comment.id)).where(*top_level))
    pages = max(1, math.ceil(total / THREAD_PAGE_SIZE))
    page = min(max(1, page), pages)
    tops = db.session.scalars(
        select(Comment)
        .options(joinedload(Comment.author))
        .where(*top_level)
        .order_by(Comment.created_at, Comment.id)
        .offset((page - 1) * THREAD_PAGE_SIZE)
        .limit(THREAD_PAGE_SIZE)
    ).all()
    rows = list(tops)
    if tops:
        # Replies and replies to replies (MAX_REPLY_DEPTH is 2) in one query.
        # (A UNION of two index lookups by parent; an OR of the two would scan the table.)
        top_ids = [c.id for c in tops]
        first_replies = select(Comment.id).where(Comment.parent_id.in_(top_ids))
        second_replies = select(Comment.id).where(Comment.parent_id.in_(first_replies))
        rows += db.session.scalars(
            select(Comment)
            .options(joinedload(Comment.author))
            .where(Comment.id.in_(union_all(first_replies, second_replies)))
            .order_by(Comment.created_at, Comment.id)
        ).all()
    children: dict[int | None, list[Comment]] = {}
    for c in rows:
        children.setdefault(c.parent_id, []).append(c)
    ordered: list[Comment] = []
    stack = list(reversed(tops))
    while stack:
        c = stack.pop()
        ordered.append(c)
        stack.extend(reversed(children.get(c.id, [])))
    mine: set[int] = set()
    if viewer is not None and getattr(viewer, "is_authenticated", False) and ordered:
        mine = set(
            db.session.scalars(
                select(HelpfulMark.comment_id).where(
                    HelpfulMark.user_id == viewer.id,
                    HelpfulMark.comment_id.in_([c.id for c in ordered]),
                )
            )
        )
    return Thread(ordered, counts, strongest, mine, page, pages)


def thread_page_of(comment: Comment) -> int:
    """The page of the discussion on which `comment` is shown."""
    top = comment
    while top.parent_id is not None:
        top = db.session.get(Comment, top.parent_id)
    before = db.session.scalar(
        select(func.count(Comment.id)).where(
            Comment.proposal_id == top.proposal_id,
            Comment.update_id.is_(None),
            Comment.parent_id.is_(None),
            (Comment.created_at < top.created_at)
            | ((Comment.created_at == top.created_at) & (Comment.id < top.id)),
        )
    )
    return before // THREAD_PAGE_SIZE + 1


# ---------------------------------------------------------------- moderation


def _reason_or_error(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput(_("Please give a reason. It is shown publicly."))
    if len(reason) > 500:
        raise InvalidInput(_("Please keep the reason under 500 characters."))
    return reason


def report(user: User, proposal: Proposal, reason: str, comment: Comment | None = None) -> Report:
    if not community_services.can_read(user, proposal.community):
        raise PermissionDenied()
    entry = Report(
        community_id=proposal.community_id,
        proposal_id=proposal.id,
        comment_id=comment.id if comment else None,
        reporter_id=user.id,
        reason=_reason_or_error(reason),
    )
    db.session.add(entry)
    db.session.flush()
    security_event("content_reported", report_id=entry.id, community_id=proposal.community_id)
    return entry


def flag_burst(member: User, proposal: Proposal, comment: Comment | None = None) -> bool:
    """A member went over the writing limits: flag their latest post to the moderators
    (once while a flag is open). Nothing is deleted or hidden automatically."""
    open_flag = db.session.scalar(
        select(Report.id).where(
            Report.community_id == proposal.community_id,
            Report.reporter_id.is_(None),
            Report.resolved_at.is_(None),
            Report.proposal_id == proposal.id,
        )
    )
    if open_flag:
        return False
    db.session.add(
        Report(
            community_id=proposal.community_id,
            proposal_id=proposal.id,
            comment_id=comment.id if comment else None,
            reporter_id=None,
            reason=_(
                "Flagged automatically: %(name)s posted many times in a short time.",
                name=member.display_name,
            ),
        )
    )
    return True


def latest_comment_by(member: User, proposal: Proposal) -> Comment | None:
    return db.session.scalar(
        select(Comment)
        .where(Comment.proposal_id == proposal.id, Comment.author_id == member.id)
        .order_by(Comment.id.desc())
        .limit(1)
    )


def report_queue(actor: User, community: Community) -> list[Report]:
    require(actor, "moderate", community)
    return list(
        db.session.scalars(
            select(Report)
            .options(
                selectinload(Report.proposal),
                selectinload(Report.comment),
                selectinload(Report.reporter),
            )
            .where(Report.community_id == community.id, Report.resolved_at.is_(None))
            .order_by(Report.created_at)
        )
    )


def _moderate(actor: User, community: Community, author_id: int | None) -> None:
    require(actor, "moderate", community)
    if author_id is not None and author_id == actor.id:
        raise PermissionDenied(_("You cannot moderate your own content."))


def _log(actor, community_id, action, reason, proposal=None, comment=None, member_id=None):
    db.session.add(
        ModerationEntry(
            community_id=community_id,
            moderator_id=actor.id,
            action=action,
            proposal_id=proposal.id if proposal else None,
            comment_id=comment.id if comment else None,
            member_id=member_id,
            reason=reason,
        )
    )
    security_event("moderation", action=action, community_id=community_id)
    subject = ("member", member_id)
    if comment is not None or proposal is not None:
        subject = ("comment", comment.id) if comment else ("proposal", proposal.id)
    details = {"reason": reason}
    audit.record(
        f"moderation.{action}",
        actor=actor,
        community_id=community_id,
        subject=subject,
        details=details,
    )


def _resolve_reports(actor: User, proposal: Proposal, comment: Comment | None, resolution: str):
    query = update(Report).where(Report.proposal_id == proposal.id, Report.resolved_at.is_(None))
    query = query.where(Report.comment_id == comment.id if comment else Report.comment_id.is_(None))
    db.session.execute(
        query.values(
            resolved_at=utcnow(), resolved_by_id=actor.id, resolution=resolution
        ).execution_options(synchronize_session=False)
    )


def hide_proposal(actor: User, proposal: Proposal, reason: str) -> Proposal:
    _moderate(actor, proposal.community, proposal.author_id)
    reason = _reason_or_error(reason)
    if proposal.is_hidden:
        raise Conflict(_("This is already hidden."))
    proposal.hidden_at, proposal.hidden_reason = utcnow(), reason
    _log(actor, proposal.community_id, "hide", reason, proposal=proposal)
    _resolve_reports(actor, proposal, None, "hidden")
    notify([proposal.author_id], "moderated", proposal)
    return proposal


def restore_proposal(actor: User, proposal: Proposal, reason: str) -> Proposal:
    _moderate(actor, proposal.community, proposal.author_id)
    reason = _reason_or_error(reason)
    if not proposal.is_hidden:
        raise Conflict(_("This is not hidden."))
    proposal.hidden_at, proposal.hidden_reason = None, None
    _log(actor, proposal.community_id, "restore", reason, proposal=proposal)
    notify([proposal.author_id], "moderated", proposal)
    return proposal


def hide_comment(actor: User, comment: Comment, reason: str) -> Comment:
    proposal = comment.proposal
    _moderate(actor, proposal.community, comment.author_id)
    reason = _reason_or_error(reason)
    if comment.is_hidden:
        raise Conflict(_("This is already hidden."))
    comment.hidden_at, comment.hidden_reason = utcnow(), reason
    _log(actor, proposal.community_id, "hide", reason, proposal=proposal, comment=comment)
    _resolve_reports(actor, proposal, comment, "hidden")
    notify([comment.author_id], "moderated", proposal, comment)
    return comment


def restore_comment(actor: User, comment: Comment, reason: str) -> Comment:
    proposal = comment.proposal
    _moderate(actor, proposal.community, comment.author_id)
    reason = _reason_or_error(reason)
    if not comment.is_hidden:
        raise Conflict(_("This is not hidden."))
    comment.hidden_at, comment.hidden_reason = None, None
    _log(actor, proposal.community_id, "restore", reason, proposal=proposal, comment=comment)
    notify([comment.author_id], "moderated", proposal, comment)
    return comment


def set_locked(actor: User, proposal: Proposal, locked: bool, reason: str) -> Proposal:
    _moderate(actor, proposal.community, proposal.author_id)
    reason = _reason_or_error(reason)
    if proposal.locked == locked:
        raise Conflict(_("Nothing to change."))
    proposal.locked = locked
    _log(actor, proposal.community_id, "lock" if locked else "unlock", reason, proposal=proposal)
    return proposal


def dismiss_report(actor: User, entry: Report, reason: str) -> Report:
    reported = entry.comment or entry.proposal
    _moderate(actor, db.session.get(Community, entry.community_id), reported.author_id)
    reason = _reason_or_error(reason)
    if entry.resolved_at is not None:
        raise Conflict(_("This report was already handled."))
    entry.resolved_at, entry.resolved_by_id, entry.resolution = utcnow(), actor.id, "dismissed"
    _log(
        actor, entry.community_id, "dismiss", reason, proposal=entry.proposal, comment=entry.comment
    )
    return entry


def suspend_member(actor: User, membership: Membership, days: int, reason: str) -> Membership:
    reason = _reason_or_error(reason)
    if not 1 <= days <= 365:
        raise InvalidInput(_("A suspension lasts between 1 and 365 days."))
    community_services.suspend(actor, membership, utcnow() + timedelta(days=days), reason)
    _log(actor, membership.community_id, "suspend", reason, member_id=membership.user_id)
    notify([membership.user_id], "suspended")
    return membership


def moderation_log(viewer: User, community: Community, limit: int = 200) -> list[ModerationEntry]:
    if not community_services.can_read(viewer, community):
        raise PermissionDenied()
    return list(
        db.session.scalars(
            select(ModerationEntry)
            .options(
                selectinload(ModerationEntry.moderator),
                selectinload(ModerationEntry.member),
                selectinload(ModerationEntry.proposal),
            )
            .where(ModerationEntry.community_id == community.id)
            .order_by(ModerationEntry.created_at.desc(), ModerationEntry.id.desc())
            .limit(limit)
        )
    )


# ---------------------------------------------------------------- lists and search

SORTS = {"newest", "supported", "discussed"}
PAGE_SIZE = 20


@dataclass
class Page:
    items: list[Proposal]
    total: int
    page: int
    pages: int


def list_proposals(
    viewer: User | None,
    community: Community,
    *,
    status: str | None = None,
    category: str | None = None,
    sort: str = "newest",
    query: str = "",
    page: int = 1,
) -> Page:
    if not community_services.can_read(viewer, community):
        raise PermissionDenied()
    where = [
        Proposal.community_id.in_(_readable_below(viewer, community)),
        Proposal.status.in_([s.value for s in PUBLISHED]),
    ]
    if status:
        if status not in {s.value for s in PUBLISHED}:
            raise InvalidInput(_("Unknown status."))
        where.append(Proposal.status == status)
    if category:
        where.append(Proposal.category == category)
    if query.strip():
        terms = textsearch.query_terms(query)
        if not terms:
            return Page([], 0, 1, 1)
        where.append(_search_condition(terms))
    if sort not in SORTS:
        sort = "newest"
    order = {
        "newest": (Proposal.published_at.desc(), Proposal.id.desc()),
        "supported": (Proposal.support_count.desc(), Proposal.id.desc()),
        "discussed": (Proposal.comment_count.desc(), Proposal.id.desc()),
    }[sort]
    total = db.session.scalar(select(func.count(Proposal.id)).where(*where))
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, page), pages)
    items = db.session.scalars(
        select(Proposal)
        .options(selectinload(Proposal.author), selectinload(Proposal.community))
        .where(*where)
        .order_by(*order)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return Page(list(items), total, page, pages)


def _readable_below(viewer: User, community: Community) -> list[int]:
    """The community and those inside it whose proposals `viewer` may open: the rule of
    `community.services.can_read` (a verified membership in the community, above it or
    inside it), so that a member of one compound reading the parent's list does not see
    the titles of a sibling compound's proposals."""
    below = db.session.execute(
        select(Community.id, Community.path).where(Community.path.like(f"{community.path}%"))
    ).all()
    if viewer.is_admin:
        return [community_id for community_id, _path in below]
    mine = db.session.scalars(
        select(Community.path)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.user_id == viewer.id, Membership.status == MembershipStatus.VERIFIED)
    ).all()
    return [
        community_id
        for community_id, path in below
        if any(path.startswith(own) or own.startswith(path) for own in mine)
    ]


def _search_condition(terms: list[str]):
    if db.engine.dialect.name == "postgresql":
        return text(
            "to_tsvector('simple', proposals.search_terms) @@ to_tsquery('simple', :q)"
        ).bindparams(q=textsearch.pg_tsquery(terms))
    return Proposal.id.in_(
        select(text("rowid"))
        .select_from(text("proposal_fts"))
        .where(text("proposal_fts MATCH :q").bindparams(q=textsearch.fts5_match(terms)))
    )


def my_drafts(user: User, community: Community) -> list[Proposal]:
    return list(
        db.session.scalars(
            select(Proposal).where(
                Proposal.community_id == community.id,
                Proposal.author_id == user.id,
                Proposal.status == Status.DRAFT,
            )
        )
    )


@dataclass
class ProposalNews:
    """What the home page says about a community's proposals."""

    collecting: int
    in_deliberation: int
    new_this_week: int


def proposal_news(community: Community) -> ProposalNews:
    week_ago = utcnow() - timedelta(days=7)
    collecting, deliberating, new = db.session.execute(
        select(
            func.count(Proposal.id).filter(Proposal.status == Status.COLLECTING),
            func.count(Proposal.id).filter(Proposal.status == Status.DELIBERATION),
            func.count(Proposal.id).filter(Proposal.published_at >= week_ago),
        ).where(Proposal.community_id == community.id, Proposal.hidden_at.is_(None))
    ).one()
    return ProposalNews(collecting, deliberating, new)


def reports_waiting(actor: User | None, community: Community) -> int | None:
    if not is_moderator(actor, community):
        return None
    return db.session.scalar(
        select(func.count(Report.id)).where(
            Report.community_id == community.id, Report.resolved_at.is_(None)
        )
    )
