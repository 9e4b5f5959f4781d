"""The last part of a proposal's life: the decision, its carrying-out and the residents'
ratings. Plain values in, domain errors out, like `deliberation.services`.

- `decide` is how the ballots package reports a final result on a proposal: it records
  the verified outcome and, when accepted, starts the implementation.
- The owners' committee plans the work (responsible party, budget, milestones); the
  responsible member or the committee posts progress updates; residents rate it.
- The scheduled sweeps remind about overdue milestones, mark stale implementations and
  send the monthly digests, each exactly once (conditional updates, unique rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from community import audit
from community import services as community_services
from community.models import Community, Membership, User, utcnow
from community.permissions import MembershipStatus
from deliberation import markup
from deliberation.lifecycle import (
    ACTIVE_WORK,
    FINAL_STAGE,
    MAX_MILESTONES,
    MAX_PHOTOS,
    RATING_CHANGE_DAYS,
    STALE_DAYS,
    WORK_COMMITTEE_ONLY,
    WORK_NEEDS_REASON,
    AsDecided,
    Status,
    Work,
    can_report,
)
from deliberation.models import (
    Comment,
    Decision,
    Implementation,
    Milestone,
    MonthlyDigest,
    ProgressUpdate,
    Proposal,
    Rating,
    StatusChange,
    UpdatePhoto,
)
from deliberation.services import (
    _move,
    _notify_followers,
    follow,
    notify,
    write_photo,
    yuan_or_error,
)
from web.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from web.extensions import db
from web.logs import security_event

require = community_services.require
MAX_UPDATE = 5000


def local_today(community: Community, now: datetime) -> date:
    return now.astimezone(ZoneInfo(community.timezone)).date()


# ---------------------------------------------------------------- the decision


def decide(
    proposal: Proposal,
    accepted: bool,
    *,
    decided_at: datetime,
    summary: str | dict[str, str],
    turnout: Fraction | None = None,
    round_title: str = "",
    round_url: str | None = None,
) -> bool:
    """Record the final, verified outcome of the vote on `proposal` and move it to
    accepted (and on into implementation) or rejected. Exactly once: a second call for
    the same proposal changes nothing and returns False. `summary` is the verdict in plain
    words: one text, or one per language ({"zh": …, "en": …})."""
    target = Status.ACCEPTED if accepted else Status.REJECTED
    if not _move(proposal, target, now=decided_at):
        return False
    db.session.add(
        Decision(
            proposal_id=proposal.id,
            community_id=proposal.community_id,
            accepted=accepted,
            decided_at=decided_at,
            summary=json.dumps(
                {k: v[:4000] for k, v in summary.items()}
                if isinstance(summary, dict)
                else {"zh": summary[:4000]},
                ensure_ascii=False,
            ),
            turnout=None if turnout is None else _decimal(turnout),
            round_title=round_title[:200],
            round_url=round_url,
        )
    )
    if accepted and _move(proposal, Status.IMPLEMENTATION, now=decided_at):
        db.session.add(
            Implementation(
                proposal_id=proposal.id,
                community_id=proposal.community_id,
                status=Work.NOT_STARTED.value,
                created_at=decided_at,
                last_activity_at=decided_at,
            )
        )
    db.session.flush()
    _notify_followers(proposal, "status_changed")
    return True


def _decimal(share: Fraction) -> Decimal:
    return (Decimal(share.numerator) / Decimal(share.denominator)).quantize(Decimal("1e-6"))


def decision_of(proposal: Proposal) -> Decision | None:
    return db.session.scalar(select(Decision).where(Decision.proposal_id == proposal.id))


def implementation_of(proposal: Proposal) -> Implementation | None:
    return db.session.scalar(
        select(Implementation)
        .options(selectinload(Implementation.milestones))
        .where(Implementation.proposal_id == proposal.id)
    )


# ---------------------------------------------------------------- who may do what


def is_committee(user: User | None, community: Community) -> bool:
    return community_services.can(user, "run_rounds", community)


def can_post_update(user: User | None, implementation: Implementation) -> bool:
    """The member named as responsible, or the owners' committee."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    community = implementation.proposal.community
    if implementation.responsible_user_id == user.id and community_services.can(
        user, "participate", community
    ):
        return True
    return is_committee(user, community)


def _verified_member_here(user: User | None, community: Community) -> Membership | None:
    """A verified, unsuspended membership in this very community (not above or below)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    membership = community_services.membership_of(user, community)
    if membership is None or membership.status != MembershipStatus.VERIFIED:
        return None
    if membership.is_suspended():
        return None
    return membership


def rating_refusal(user: User | None, implementation: Implementation) -> str | None:
    """Why `user` may not rate this work, in plain words; None when they may."""
    if _verified_member_here(user, implementation.proposal.community) is None:
        return _("Only verified members of this community can rate the work.")
    if implementation.responsible_user_id == user.id:
        return _("You are responsible for this work, so you cannot rate it.")
    return None


# ---------------------------------------------------------------- the plan


@dataclass
class PlanDraft:
    responsible: str
    responsible_user_id: int | None = None
    budget: str | Decimal | None = None
    budget_source: str = ""
    milestones: list[tuple[str, date | str | None]] = field(default_factory=list)


def _money_or_error(value, what: str) -> Decimal | None:
    return yuan_or_error(value, _("%(what)s must be an amount in yuan.", what=what))


def _date_or_error(value) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError as error:
        raise InvalidInput(_("Please give each milestone a date (year-month-day).")) from error


def responsible_choices(community: Community) -> list[tuple[int, str]]:
    """Verified members of the community who may be named as the reporting member."""
    rows = db.session.execute(
        select(User.id, User.display_name, Membership.unit)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.community_id == community.id,
            Membership.status == MembershipStatus.VERIFIED,
            User.is_active.is_(True),
        )
        .order_by(User.display_name, User.id)
    )
    return [(uid, f"{name} · {unit}" if unit else name) for uid, name, unit in rows]


def plan(actor: User, implementation: Implementation, draft: PlanDraft, now=None) -> Implementation:
    """Name the responsible party, the budget and its source, and the milestones with
    their target dates. Can be revised while the work is active; reached milestones and
    milestones that updates or ratings refer to stay."""
    community = implementation.proposal.community
    require(actor, "run_rounds", community)
    _lock(implementation)
    if not implementation.is_active:
        raise Conflict(_("The work is finished; its plan can no longer change."))
    now = now or utcnow()
    responsible = (draft.responsible or "").strip()
    if not responsible:
        raise InvalidInput(_("Please name who is responsible for the work."))
    if len(responsible) > 200:
        raise InvalidInput(_("Please keep the name of the responsible party short."))
    if draft.responsible_user_id is not None:
        reporter = db.session.get(User, draft.responsible_user_id)
        membership = community_services.membership_of(reporter, community) if reporter else None
        if not (reporter and reporter.is_active and membership and membership.is_verified):
            raise InvalidInput(_("The reporting member must be a verified member here."))
    budget = _money_or_error(draft.budget, _("The budget"))
    source = (draft.budget_source or "").strip()[:200]
    rows = [(str(t or "").strip(), d) for t, d in draft.milestones if str(t or "").strip() or d]
    if len(rows) > MAX_MILESTONES:
        raise InvalidInput(_("Please plan at most %(n)d milestones.", n=MAX_MILESTONES))
    planned = []
    for title, due in rows:
        if not title:
            raise InvalidInput(_("Please give each milestone a name."))
        planned.append((title[:200], _date_or_error(due)))
    implementation.responsible = responsible
    implementation.responsible_user_id = draft.responsible_user_id
    implementation.budget = budget
    implementation.budget_source = source
    _replace_milestones(implementation, planned)
    implementation.planned_end, implementation.next_due = _plan_dates(implementation.id)
    if implementation.planned_at is None:
        # The first plan is news; revising it later is not progress (it keeps a stale mark).
        implementation.planned_at = now
        _touch(implementation, now)
    if draft.responsible_user_id:
        follow(db.session.get(User, draft.responsible_user_id), implementation.proposal)
    security_event(
        "implementation_planned", proposal_id=implementation.proposal_id, actor_id=actor.id
    )
    audit.record(
        "implementation.planned",
        actor=actor,
        community_id=community.id,
        subject=("implementation", implementation.id),
        details={"proposal": implementation.proposal_id, "milestones": len(planned)},
        now=now,
    )
    return implementation


def _replace_milestones(implementation: Implementation, planned: list[tuple[str, date]]) -> None:
    kept = {m.position: m for m in implementation.milestones}
    referenced = set(
        db.session.scalars(
            select(ProgressUpdate.milestone_id).where(
                ProgressUpdate.implementation_id == implementation.id,
                ProgressUpdate.milestone_id.is_not(None),
            )
        )
    ) | set(
        db.session.scalars(
            select(Rating.milestone_id).where(
                Rating.implementation_id == implementation.id, Rating.milestone_id.is_not(None)
            )
        )
    )
    for position, (title, due) in enumerate(planned):
        existing = kept.pop(position, None)
        if existing is None:
            db.session.add(
                Milestone(
                    implementation_id=implementation.id, position=position, title=title, due_on=due
                )
            )
        elif existing.reached_at is None:
            if existing.due_on != due:
                existing.reminded_at = None  # a new date earns a new reminder
            existing.title, existing.due_on = title, due
    for leftover in kept.values():
        if leftover.reached_at is not None or leftover.id in referenced:
            raise Conflict(
                _(
                    'Milestone "%(title)s" was reached or reported on; it stays in the plan.',
                    title=leftover.title,
                )
            )
        db.session.delete(leftover)
    db.session.flush()
    db.session.expire(implementation, ["milestones"])


def _lock(implementation: Implementation) -> None:
    """Plans and reports on one implementation one at a time: its row locked (PostgreSQL;
    SQLite's writers are one at a time anyway) and read again with its milestones, so
    that two at once cannot both add the first plan's milestones, or each work out the
    board's figures from what the other is changing."""
    db.session.refresh(implementation, with_for_update=True)
    db.session.expire(implementation, ["milestones"])


def _plan_dates(implementation_id: int, reached: int | None = None) -> tuple:
    """The plan's last target date and the earliest target date of a milestone not yet
    reached (with `reached`, that milestone counts as reached)."""
    open_due = Milestone.reached_at.is_(None)
    if reached is not None:
        open_due = and_(open_due, Milestone.id != reached)
    return tuple(
        db.session.execute(
            select(func.max(Milestone.due_on), func.min(case((open_due, Milestone.due_on)))).where(
                Milestone.implementation_id == implementation_id
            )
        ).one()
    )


def finished_on_time(work: str, completed_at: datetime, planned_end: date | None, zone: str):
    """Completed work: by the plan's last target date in the community's time zone (no
    plan: not on time). Abandoned work: not on time. Active work: None (not yet known)."""
    if work == Work.COMPLETED:
        if planned_end is None:
            return False
        return completed_at.astimezone(ZoneInfo(zone)).date() <= planned_end
    if work == Work.ABANDONED:
        return False
    return None


def _touch(implementation: Implementation, now: datetime) -> None:
    implementation.last_activity_at = now
    implementation.stale_since = None


# ---------------------------------------------------------------- progress updates


@dataclass
class UpdateDraft:
    body: str
    percent: int | str | None
    status: str
    reason: str = ""
    milestone_id: int | None = None
    spent: str | Decimal | None = None


def _percent_or_error(value) -> int:
    try:
        percent = int(str(value).strip().rstrip("%"))
    except (TypeError, ValueError) as error:
        raise InvalidInput(_("Percent complete must be a whole number from 0 to 100.")) from error
    if not 0 <= percent <= 100:
        raise InvalidInput(_("Percent complete must be a whole number from 0 to 100."))
    return percent


def post_update(
    author: User,
    implementation: Implementation,
    draft: UpdateDraft,
    *,
    photos: list | None = None,
    upload_dir: Path | None = None,
    now: datetime | None = None,
) -> ProgressUpdate:
    if not can_post_update(author, implementation):
        raise PermissionDenied(
            _("Only the responsible member or the owners' committee can report progress.")
        )
    now = now or utcnow()
    _lock(implementation)
    body = (draft.body or "").strip()
    if not body:
        raise InvalidInput(_("Please describe what was done."))
    if len(body) > MAX_UPDATE:
        raise InvalidInput(_("Please keep an update under 5,000 characters."))
    try:
        target = Work(draft.status)
    except ValueError as error:
        raise InvalidInput(_("Please choose a status.")) from error
    before = implementation.status
    if not can_report(before, target):
        if Work(before) in ACTIVE_WORK:
            raise Conflict(_("Work that has started cannot go back to not started."))
        raise Conflict(_("The work is finished; no more updates can be posted."))
    if target in WORK_COMMITTEE_ONLY and not is_committee(
        author, implementation.proposal.community
    ):
        raise PermissionDenied(_("Only the owners' committee can abandon a decision."))
    reason = (draft.reason or "").strip()[:2000]
    if target in WORK_NEEDS_REASON and not reason:
        raise InvalidInput(_("Please give the reason, it is shown with the status."))
    percent = 100 if target == Work.COMPLETED else _percent_or_error(draft.percent)
    spent = _money_or_error(draft.spent, _("Money spent"))
    milestone = None
    if draft.milestone_id:
        milestone = db.session.get(Milestone, draft.milestone_id)
        if milestone is None or milestone.implementation_id != implementation.id:
            raise InvalidInput(_("Please choose one of this plan's milestones."))
    photos = photos or []
    if len(photos) > MAX_PHOTOS:
        raise InvalidInput(_("Please attach at most 6 photos."))
    # The status moves from what this update saw, exactly once (two reports racing to
    # complete the work: one wins, the other is told).
    values = {"status": target.value, "percent": percent, "last_activity_at": now}
    values["stale_since"] = None
    values["status_reason"] = reason if target in WORK_NEEDS_REASON else None
    if spent is not None:
        values["spent"] = spent
    if target == Work.IN_PROGRESS and implementation.started_at is None:
        values["started_at"] = now
    if target in (Work.COMPLETED, Work.ABANDONED):
        values["completed_at"] = now
        values["on_time"] = finished_on_time(
            target, now, implementation.planned_end, implementation.proposal.community.timezone
        )
    if milestone is not None and milestone.reached_at is None:
        values["next_due"] = _plan_dates(implementation.id, reached=milestone.id)[1]
    won = db.session.execute(
        update(Implementation)
        .where(Implementation.id == implementation.id, Implementation.status == before)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        raise Conflict(_("Someone else reported on this work just now. Please look again."))
    entry = ProgressUpdate(
        implementation_id=implementation.id,
        author_id=author.id,
        body=body,
        body_html=markup.render_markdown(body),
        percent=percent,
        status=target.value,
        reason=reason or None,
        milestone_id=milestone.id if milestone else None,
        spent=spent,
        created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    if milestone is not None and milestone.reached_at is None:
        milestone.reached_at = now
    for position, (prepared, original_name) in enumerate(photos):
        _store_photo(entry, prepared, original_name, position, upload_dir)
    db.session.refresh(implementation)
    proposal = implementation.proposal
    if target == Work.COMPLETED:
        _move(proposal, Status.COMPLETED, now=now)
    elif target == Work.ABANDONED:
        _move(proposal, Status.ABANDONED, reason, now=now)
    follow(author, proposal)
    _notify_followers(proposal, "implementation_update", exclude=author.id)
    security_event(
        "implementation_update",
        proposal_id=proposal.id,
        actor_id=author.id,
        status=target.value,
        status_before=before,
    )
    if target.value != before:
        audit.record(
            "implementation.status",
            actor=author,
            community_id=proposal.community_id,
            subject=("implementation", implementation.id),
            details={"proposal": proposal.id, "from": before, "to": target.value},
            now=now,
        )
    return entry


def _store_photo(entry: ProgressUpdate, prepared, original_name: str, position: int, upload_dir):
    if upload_dir is None:
        raise InvalidInput(_("Photos cannot be stored here."))
    db.session.add(
        UpdatePhoto(
            update_id=entry.id,
            position=position,
            **write_photo(prepared, original_name, upload_dir),
        )
    )


def get_update_photo(user: User | None, stored_name: str) -> UpdatePhoto | None:
    """An update's photo, for readers of its proposal (of a hidden one: its author and the
    moderators, as for the proposal's own photos); None when there is no such photo."""
    from deliberation.services import can_see, is_moderator

    photo = db.session.scalar(select(UpdatePhoto).where(UpdatePhoto.stored_name == stored_name))
    if photo is None:
        return None
    entry = db.session.get(ProgressUpdate, photo.update_id)
    proposal = db.session.get(Implementation, entry.implementation_id).proposal
    if not can_see(user, proposal):
        raise NotFound()
    if (
        proposal.is_hidden
        and user.id != proposal.author_id
        and not is_moderator(user, proposal.community)
    ):
        raise NotFound()
    return photo


@dataclass
class UpdateView:
    update: ProgressUpdate
    comments: list[Comment]


def updates_of(implementation: Implementation, only: int | None = None) -> list[UpdateView]:
    """Every update (or only the one with id `only`), newest first, with its photos and
    visible comments: three queries."""
    query = (
        select(ProgressUpdate)
        .options(
            joinedload(ProgressUpdate.author),
            joinedload(ProgressUpdate.milestone),
            selectinload(ProgressUpdate.photos),
        )
        .where(ProgressUpdate.implementation_id == implementation.id)
        .order_by(ProgressUpdate.created_at.desc(), ProgressUpdate.id.desc())
    )
    if only is not None:
        query = query.where(ProgressUpdate.id == only)
    entries = db.session.scalars(query).all()
    by_update: dict[int, list[Comment]] = {e.id: [] for e in entries}
    if entries:
        for comment in db.session.scalars(
            select(Comment)
            .options(joinedload(Comment.author))
            .where(Comment.update_id.in_(list(by_update)), Comment.deleted_at.is_(None))
            .order_by(Comment.created_at, Comment.id)
        ):
            by_update[comment.update_id].append(comment)
    return [UpdateView(e, by_update[e.id]) for e in entries]


def get_update(user: User | None, update_id: int) -> ProgressUpdate:
    from deliberation.services import can_see

    entry = db.session.get(ProgressUpdate, update_id)
    if entry is None:
        raise NotFound()
    implementation = db.session.get(Implementation, entry.implementation_id)
    if not can_see(user, implementation.proposal):
        raise NotFound()
    return entry


def proposal_of_update(entry: ProgressUpdate) -> Proposal:
    return db.session.get(Implementation, entry.implementation_id).proposal


# ---------------------------------------------------------------- ratings


def rate(
    user: User,
    implementation: Implementation,
    satisfaction,
    *,
    as_decided: str | None = None,
    comment: str = "",
    milestone_id: int | None = None,
    now: datetime | None = None,
) -> Rating:
    """Rate the completed work (satisfaction 1–5 and "was it done as decided?"), or, with
    `milestone_id`, how it is going at a reached milestone. One rating per member and
    stage, which its member can change for RATING_CHANGE_DAYS days."""
    now = now or utcnow()
    refusal = rating_refusal(user, implementation)
    if refusal:
        raise PermissionDenied(refusal)
    try:
        score = int(satisfaction)
    except (TypeError, ValueError) as error:
        raise InvalidInput(_("Please choose from 1 to 5 stars.")) from error
    if not 1 <= score <= 5:
        raise InvalidInput(_("Please choose from 1 to 5 stars."))
    if milestone_id is None:
        if implementation.status != Work.COMPLETED:
            raise Conflict(_("The work can be rated once it is completed."))
        try:
            decided = AsDecided(as_decided or "")
        except ValueError as error:
            raise InvalidInput(_("Please say whether it was done as decided.")) from error
        stage, decided_value = FINAL_STAGE, decided.value
    else:
        milestone = db.session.get(Milestone, milestone_id)
        if milestone is None or milestone.implementation_id != implementation.id:
            raise NotFound()
        if milestone.reached_at is None or not implementation.is_active:
            raise Conflict(_("You can say how it is going once a milestone is reached."))
        stage, decided_value = f"m{milestone.id}", None
    text = (comment or "").strip()
    if len(text) > 1000:
        raise InvalidInput(_("Please keep a rating's comment under 1,000 characters."))
    values = dict(satisfaction=score, as_decided=decided_value, comment=text or None)
    existing = _rating(implementation, user, stage)
    if existing is None:
        try:
            with db.session.begin_nested():
                existing = Rating(
                    implementation_id=implementation.id,
                    user_id=user.id,
                    stage=stage,
                    milestone_id=milestone_id,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                db.session.add(existing)
                db.session.flush()
                if stage == FINAL_STAGE:
                    _count_rating(implementation.id, score, decided_value, +1)
            return existing
        except IntegrityError:  # the same member's other request got there first
            existing = _rating(implementation, user, stage)
    if now - existing.created_at > timedelta(days=RATING_CHANGE_DAYS):
        raise Conflict(_("A rating can be changed only for 30 days."))
    # A conditional change from the rating this request read: the board's counts move
    # from exactly that rating to the new one, even when two changes race.
    for _attempt in range(3):
        before = (existing.satisfaction, existing.as_decided)
        changed = db.session.execute(
            update(Rating)
            .where(
                Rating.id == existing.id,
                Rating.satisfaction == before[0],
                Rating.as_decided.is_not_distinct_from(before[1]),
            )
            .values(**values, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed:
            break
        db.session.refresh(existing)
    else:
        raise Conflict(_("Your rating changed in another window just now. Please look again."))
    if stage == FINAL_STAGE:
        _count_rating(implementation.id, *before, -1)
        _count_rating(implementation.id, score, decided_value, +1)
    db.session.refresh(existing)
    return existing


def _count_rating(implementation_id: int, score: int, answer: str | None, step: int) -> None:
    """Move the board's counts of the work's final ratings by `step` (in the database, so
    that concurrent raters each count)."""
    columns = {f"score_{score}": getattr(Implementation, f"score_{score}") + step}
    if answer:
        columns[f"as_{answer}"] = getattr(Implementation, f"as_{answer}") + step
    db.session.execute(
        update(Implementation)
        .where(Implementation.id == implementation_id)
        .values(columns)
        .execution_options(synchronize_session=False)
    )


def _rating(implementation: Implementation, user: User, stage: str) -> Rating | None:
    return db.session.scalar(
        select(Rating).where(
            Rating.implementation_id == implementation.id,
            Rating.user_id == user.id,
            Rating.stage == stage,
        )
    )


def my_ratings(user: User | None, implementation: Implementation) -> dict[str, Rating]:
    if user is None or not getattr(user, "is_authenticated", False):
        return {}
    return {
        r.stage: r
        for r in db.session.scalars(
            select(Rating).where(
                Rating.implementation_id == implementation.id, Rating.user_id == user.id
            )
        )
    }


@dataclass
class RatingSummary:
    """A distribution of 1–5 ratings; the mean as an exact fraction."""

    counts: dict[int, int]
    as_decided: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> Fraction | None:
        if not self.total:
            return None
        return Fraction(sum(score * n for score, n in self.counts.items()), self.total)

    def share(self, score: int) -> Fraction:
        return Fraction(self.counts.get(score, 0), self.total) if self.total else Fraction(0)


def empty_counts() -> dict[int, int]:
    return {score: 0 for score in range(1, 6)}


def ratings_of(implementation: Implementation) -> dict[str, RatingSummary]:
    """Stage ("final", "m<id>") → its distribution, in one grouped query."""
    summaries: dict[str, RatingSummary] = {}
    for stage, score, decided, n in db.session.execute(
        select(Rating.stage, Rating.satisfaction, Rating.as_decided, func.count())
        .where(Rating.implementation_id == implementation.id)
        .group_by(Rating.stage, Rating.satisfaction, Rating.as_decided)
    ):
        summary = summaries.setdefault(stage, RatingSummary(empty_counts()))
        summary.counts[score] += n
        if decided:
            summary.as_decided[decided] = summary.as_decided.get(decided, 0) + n
    return summaries


# ---------------------------------------------------------------- the timeline


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # "status", "decision", "plan", "update"
    status: str | None = None
    reason: str | None = None
    decision: Decision | None = None
    update: ProgressUpdate | None = None


_LOAD = object()  # timeline(): "read it yourself"


def timeline(
    proposal: Proposal,
    updates: list[UpdateView] | None = None,
    *,
    decision=_LOAD,
    implementation=_LOAD,
) -> list[TimelineEntry]:
    """The whole story in one list, oldest first: every status the proposal entered, the
    vote's verified result, the plan, and every implementation update. A caller that has
    read the decision, the implementation or its updates already passes them in."""
    entries = [
        TimelineEntry(at=c.at, kind="status", status=c.status, reason=c.reason)
        for c in db.session.scalars(
            select(StatusChange)
            .where(StatusChange.proposal_id == proposal.id)
            .order_by(StatusChange.at, StatusChange.id)
        )
    ]
    if proposal.published_at and not any(e.status == Status.COLLECTING for e in entries):
        entries.append(TimelineEntry(at=proposal.published_at, kind="status", status="collecting"))
    if decision is _LOAD:
        decision = decision_of(proposal)
    if decision is not None:
        # The decision replaces its two status lines (accepted/rejected).
        entries = [e for e in entries if e.status not in (Status.ACCEPTED, Status.REJECTED)] + [
            TimelineEntry(at=decision.decided_at, kind="decision", decision=decision)
        ]
    if implementation is _LOAD:
        implementation = implementation_of(proposal)
    if implementation is not None:
        if implementation.planned_at:
            entries.append(TimelineEntry(at=implementation.planned_at, kind="plan"))
        for view in updates if updates is not None else updates_of(implementation):
            entries.append(
                TimelineEntry(at=view.update.created_at, kind="update", update=view.update)
            )
        # Completed/abandoned show as the update that did it.
        entries = [
            e
            for e in entries
            if not (e.kind == "status" and e.status in (Status.COMPLETED, Status.ABANDONED))
        ]
    # At one instant the vote's result comes first: it is what moved the proposal on.
    order = {"decision": 0, "status": 1, "plan": 2, "update": 3}
    entries.sort(key=lambda e: (e.at, order[e.kind]))
    return entries


# ---------------------------------------------------------------- scheduled sweeps


def _reporters(implementation: Implementation) -> set[int]:
    """Who hears about overdue or stale work: the responsible member, else the committee."""
    if implementation.responsible_user_id:
        return {implementation.responsible_user_id}
    return set(
        db.session.scalars(
            select(Membership.user_id).where(
                Membership.community_id == implementation.community_id,
                Membership.status == MembershipStatus.VERIFIED,
                Membership.role.in_(("committee", "admin")),
            )
        )
    )


def remind_overdue_milestones(now: datetime) -> int:
    """One reminder per overdue milestone (target date passed in the community's zone,
    not reached, work still active) to whoever reports on the work."""
    candidates = db.session.execute(
        select(Milestone, Implementation, Community)
        .join(Implementation, Implementation.id == Milestone.implementation_id)
        .join(Community, Community.id == Implementation.community_id)
        .where(
            Milestone.reached_at.is_(None),
            Milestone.reminded_at.is_(None),
            Milestone.due_on < (now + timedelta(days=1)).date(),
            Implementation.status.in_([w.value for w in ACTIVE_WORK]),
        )
    ).all()
    sent = 0
    for milestone, implementation, community in candidates:
        if local_today(community, now) <= milestone.due_on:
            continue
        won = db.session.execute(
            update(Milestone)
            .where(Milestone.id == milestone.id, Milestone.reminded_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            notify(
                _reporters(implementation),
                "milestone_overdue",
                implementation.proposal,
                subject=milestone.title,
            )
            sent += 1
    return sent


def mark_stale(now: datetime) -> int:
    """Active work without an update for STALE_DAYS days is marked stale (once, until the
    next update); the reporters are told."""
    cutoff = now - timedelta(days=STALE_DAYS)
    due = db.session.scalars(
        select(Implementation).where(
            Implementation.status.in_([w.value for w in ACTIVE_WORK]),
            Implementation.stale_since.is_(None),
            Implementation.last_activity_at <= cutoff,
        )
    ).all()
    marked = 0
    for implementation in due:
        won = db.session.execute(
            update(Implementation)
            .where(
                Implementation.id == implementation.id,
                Implementation.stale_since.is_(None),
                Implementation.last_activity_at <= cutoff,
            )
            .values(stale_since=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            notify(_reporters(implementation), "implementation_stale", implementation.proposal)
            marked += 1
    return marked


def _month_bounds(community: Community, now: datetime) -> tuple[str, datetime, datetime]:
    """The calendar month before `now` in the community's zone: its key and UTC bounds."""
    zone = ZoneInfo(community.timezone)
    local = now.astimezone(zone)
    this_month = datetime(local.year, local.month, 1, tzinfo=zone)
    last = (this_month - timedelta(days=1)).replace(day=1)
    return f"{last.year:04d}-{last.month:02d}", last.astimezone(UTC), this_month.astimezone(UTC)


@dataclass
class DigestFigures:
    decisions: int = 0
    accepted: int = 0
    updates: int = 0
    completed: int = 0
    ratings: int = 0
    mean: Fraction | None = None


def digest_figures(community: Community, start: datetime, end: datetime) -> DigestFigures:
    figures = DigestFigures()
    for accepted, n in db.session.execute(
        select(Decision.accepted, func.count())
        .where(
            Decision.community_id == community.id,
            Decision.decided_at >= start,
            Decision.decided_at < end,
        )
        .group_by(Decision.accepted)
    ):
        figures.decisions += n
        figures.accepted += n if accepted else 0
    in_month = (
        Implementation.community_id == community.id,
        ProgressUpdate.created_at >= start,
        ProgressUpdate.created_at < end,
    )
    figures.updates = db.session.scalar(
        select(func.count(ProgressUpdate.id))
        .join(Implementation, Implementation.id == ProgressUpdate.implementation_id)
        .where(*in_month)
    )
    figures.completed = db.session.scalar(
        select(func.count(ProgressUpdate.id))
        .join(Implementation, Implementation.id == ProgressUpdate.implementation_id)
        .where(*in_month, ProgressUpdate.status == Work.COMPLETED)
    )
    count, total = db.session.execute(
        select(func.count(Rating.id), func.sum(Rating.satisfaction))
        .join(Implementation, Implementation.id == Rating.implementation_id)
        .where(
            Implementation.community_id == community.id,
            Rating.stage == FINAL_STAGE,
            Rating.created_at >= start,
            Rating.created_at < end,
        )
    ).one()
    figures.ratings = count or 0
    figures.mean = Fraction(int(total), count) if count else None
    return figures


def digest_subject(month: str, figures: DigestFigures) -> str:
    text = _(
        "%(month)s: decisions %(decisions)d (accepted %(accepted)d), progress reports "
        "%(updates)d, completed %(completed)d, ratings %(ratings)d",
        month=month,
        decisions=figures.decisions,
        accepted=figures.accepted,
        updates=figures.updates,
        completed=figures.completed,
        ratings=figures.ratings,
    )
    if figures.mean is not None:
        text += _(" (average %(mean)s of 5)", mean=f"{float(figures.mean):.1f}")
    return text


def send_monthly_digests(now: datetime) -> int:
    """Early each month, every community that has decided something through Yishi gets
    one digest notification of the month before (decisions, progress, ratings) for each
    verified member. Exactly once per community and month: the digest row is unique."""
    communities = db.session.scalars(
        select(Community).where(Community.id.in_(select(Decision.community_id).distinct()))
    ).all()
    sent = 0
    for community in communities:
        month, start, end = _month_bounds(community, now)
        if db.session.scalar(
            select(MonthlyDigest.id).where(
                MonthlyDigest.community_id == community.id, MonthlyDigest.month == month
            )
        ):
            continue
        if (
            db.session.scalar(
                select(func.min(Decision.decided_at)).where(Decision.community_id == community.id)
            )
            >= end
        ):
            continue  # nothing decided before the end of that month: no digest yet
        try:
            with db.session.begin_nested():
                row = MonthlyDigest(community_id=community.id, month=month, sent_at=now)
                db.session.add(row)
        except IntegrityError:
            continue  # another process sent it
        members = db.session.scalars(
            select(Membership.user_id).where(
                Membership.community_id == community.id,
                Membership.status == MembershipStatus.VERIFIED,
            )
        ).all()
        figures = digest_figures(community, start, end)
        row.recipients = notify(
            members,
            "monthly_digest",
            url=f"/c/{community.id}/accountability",
            subject=digest_subject(month, figures),
        )
        sent += 1
    return sent
