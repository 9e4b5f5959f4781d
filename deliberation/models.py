"""Proposals, support, comments, moderation, follows and notifications."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from community.models import Community, User, UTCDateTime, utcnow
from deliberation.lifecycle import ACTIVE_WORK, Status, Work
from web.extensions import db


class DeliberationSettings(db.Model):
    """Per community: how much support a proposal needs, and for how long it may collect.
    Exactly one of `support_threshold` (members) and `support_percent` (of verified
    members) is set."""

    __tablename__ = "deliberation_settings"

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), primary_key=True)
    support_threshold: Mapped[int | None] = mapped_column(Integer)
    support_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    support_window_days: Mapped[int] = mapped_column(Integer, default=30)


class CustomCategory(db.Model):
    """A category an admin added for a community (beyond the fixed ones)."""

    __tablename__ = "custom_categories"
    __table_args__ = (UniqueConstraint("community_id", "name", name="uq_custom_categories_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))


class Proposal(db.Model):
    __tablename__ = "proposals"
    __table_args__ = (
        Index("ix_proposals_community_status", "community_id", "status", "published_at"),
        CheckConstraint("support_count >= 0", name="support_count_positive"),
        CheckConstraint("estimated_cost IS NULL OR estimated_cost >= 0", name="cost_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)  # sanitized rendering of body
    category: Mapped[str] = mapped_column(String(40))  # a Category value or "custom:<id>"
    estimated_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(20), default=Status.DRAFT.value)
    support_count: Mapped[int] = mapped_column(Integer, default=0)
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    # Terms for full-text search (see deliberation/textsearch.py).
    search_terms: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    support_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_reason: Mapped[str | None] = mapped_column(Text)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_reason: Mapped[str | None] = mapped_column(Text)

    community: Mapped[Community] = relationship()
    author: Mapped[User] = relationship()
    photos: Mapped[list[Photo]] = relationship(back_populates="proposal", order_by="Photo.position")

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None


class Revision(db.Model):
    """Every saved version of a proposal's text, visible on its page."""

    __tablename__ = "proposal_revisions"
    __table_args__ = (UniqueConstraint("proposal_id", "number", name="uq_revisions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    estimated_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredPhoto:
    """The columns of a stored photo (files under the upload folder, see photos.py)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)  # random, never user text
    display_name: Mapped[str] = mapped_column(String(100))
    mime: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Photo(StoredPhoto, db.Model):
    __tablename__ = "proposal_photos"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)

    proposal: Mapped[Proposal] = relationship(back_populates="photos")


class Support(db.Model):
    __tablename__ = "supports"
    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_supports_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Comment(db.Model):
    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_proposal_created", "proposal_id", "created_at"),
        CheckConstraint("depth >= 0 AND depth <= 2", name="depth_limit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), index=True)
    # Set on comments about one implementation update (they are not in the main thread).
    update_id: Mapped[int | None] = mapped_column(ForeignKey("progress_updates.id"), index=True)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    stance: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_reason: Mapped[str | None] = mapped_column(Text)

    author: Mapped[User] = relationship()
    proposal: Mapped[Proposal] = relationship()

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class HelpfulMark(db.Model):
    __tablename__ = "helpful_marks"
    __table_args__ = (UniqueConstraint("comment_id", "user_id", name="uq_helpful_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class Follow(db.Model):
    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("proposal_id", "user_id", name="uq_follows_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: unfollowed


class Report(db.Model):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"))
    # None: flagged automatically (e.g. a burst of posts), not by a member.
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(String(20))

    reporter: Mapped[User | None] = relationship(foreign_keys=[reporter_id])
    proposal: Mapped[Proposal] = relationship()
    comment: Mapped[Comment | None] = relationship()


class ModerationEntry(db.Model):
    """The public moderation log: who did what to what, when and why. Append-only."""

    __tablename__ = "moderation_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    moderator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(20))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    moderator: Mapped[User] = relationship(foreign_keys=[moderator_id])
    member: Mapped[User | None] = relationship(foreign_keys=[member_id])
    proposal: Mapped[Proposal | None] = relationship()


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(30))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the e-mail copy was claimed for sending (members with an e-mail address only).
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Notifications about things other packages own (e.g. a voting round): where to go and
    # what it is called; a site path, never user-controlled.
    url: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))

    user: Mapped[User] = relationship()
    proposal: Mapped[Proposal | None] = relationship()


# ---------------------------------------------------------------- status history


class StatusChange(db.Model):
    """Every status a proposal entered, with when and why: its page's timeline."""

    __tablename__ = "proposal_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- decisions and their carrying-out


class Decision(db.Model):
    """The final, verified outcome of a vote on a proposal, as the ballots package
    published it: what the accountability board and the timeline show."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_community_decided", "community_id", "decided_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    accepted: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The rule's verdict in plain words, in each language of the site: a JSON object
    # {"zh": …, "en": …} (see `verdict`).
    summary: Mapped[str] = mapped_column(Text)
    # Share of the electorate that took part, 0..1 (None when not known).
    turnout: Mapped[Decimal | None] = mapped_column(Numeric(7, 6))
    round_title: Mapped[str] = mapped_column(String(200), default="")
    round_url: Mapped[str | None] = mapped_column(String(200))  # a site path

    proposal: Mapped[Proposal] = relationship()

    def verdict(self, locale: str) -> str:
        return verdict_in(self.summary, locale)


def verdict_in(summary: str, locale: str) -> str:
    """A decision's verdict in `locale`, else in any language it was written in."""
    try:
        texts = json.loads(summary)
    except ValueError:
        return summary
    if not isinstance(texts, dict):
        return summary
    return texts.get(locale) or next(iter(texts.values()), "")


class Implementation(db.Model):
    """How an accepted proposal is carried out: who is responsible, the budget, the plan
    and where it stands."""

    __tablename__ = "implementations"
    __table_args__ = (
        Index("ix_implementations_status_activity", "status", "last_activity_at"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),
        CheckConstraint("budget IS NULL OR budget >= 0", name="budget_positive"),
        CheckConstraint("spent IS NULL OR spent >= 0", name="spent_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=Work.NOT_STARTED.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    # The responsible party in words (a committee member, the property management
    # company, a contractor), and optionally the member who reports for it.
    responsible: Mapped[str] = mapped_column(String(200), default="")
    responsible_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    budget: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    budget_source: Mapped[str] = mapped_column(String(200), default="")
    spent: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    percent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # or abandoned
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stale_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The accountability board's figures, kept by the services in the same transaction
    # as the plan, report or rating they follow: a district's board reads one row per
    # decision instead of every milestone and rating.
    planned_end: Mapped[date | None] = mapped_column(Date)  # the plan's last target date
    next_due: Mapped[date | None] = mapped_column(Date)  # the earliest one not reached
    on_time: Mapped[bool | None] = mapped_column(Boolean)  # set when the work finishes
    # Final ratings by satisfaction score and by "was it done as decided?" answer.
    score_1: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score_2: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score_3: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score_4: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score_5: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    as_yes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    as_partly: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    as_no: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    proposal: Mapped[Proposal] = relationship()
    responsible_user: Mapped[User | None] = relationship()
    milestones: Mapped[list[Milestone]] = relationship(
        order_by="Milestone.position", back_populates="implementation"
    )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_WORK


class Milestone(db.Model):
    __tablename__ = "milestones"
    __table_args__ = (
        UniqueConstraint("implementation_id", "position", name="uq_milestones_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    implementation_id: Mapped[int] = mapped_column(ForeignKey("implementations.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    due_on: Mapped[date] = mapped_column(Date)  # in the community's time zone
    reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the overdue reminder went out (once per milestone).
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    implementation: Mapped[Implementation] = relationship(back_populates="milestones")


class ProgressUpdate(db.Model):
    """A report on the work: text, photos, percent complete, and optionally a milestone
    reached, money spent so far and a change of status."""

    __tablename__ = "progress_updates"
    __table_args__ = (
        Index("ix_progress_updates_implementation", "implementation_id", "created_at"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),
        CheckConstraint("spent IS NULL OR spent >= 0", name="spent_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    implementation_id: Mapped[int] = mapped_column(ForeignKey("implementations.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    percent: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # the status after this update
    reason: Mapped[str | None] = mapped_column(Text)
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestones.id"))
    spent: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()
    milestone: Mapped[Milestone | None] = relationship()
    photos: Mapped[list[UpdatePhoto]] = relationship(order_by="UpdatePhoto.position")


class UpdatePhoto(StoredPhoto, db.Model):
    __tablename__ = "update_photos"

    update_id: Mapped[int] = mapped_column(ForeignKey("progress_updates.id"), index=True)


class Rating(db.Model):
    """A member's rating of the work: of the completed work (stage "final": satisfaction
    and "was it done as decided?") or mid-way at a milestone (stage "m<milestone id>")."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("implementation_id", "user_id", "stage", name="uq_ratings_once"),
        CheckConstraint("satisfaction >= 1 AND satisfaction <= 5", name="satisfaction_range"),
        Index("ix_ratings_implementation_stage", "implementation_id", "stage", "satisfaction"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    implementation_id: Mapped[int] = mapped_column(ForeignKey("implementations.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestones.id"))
    satisfaction: Mapped[int] = mapped_column(Integer)
    as_decided: Mapped[str | None] = mapped_column(String(10))  # an AsDecided value
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MonthlyDigest(db.Model):
    """That a community's digest for a month went out: at most once (unique)."""

    __tablename__ = "monthly_digests"
    __table_args__ = (UniqueConstraint("community_id", "month", name="uq_digests_month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    month: Mapped[str] = mapped_column(String(7))  # "2026-11", in the community's zone
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
