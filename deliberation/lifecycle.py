"""The life of a proposal: statuses and the one table of allowed transitions. Pure."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    DRAFT = "draft"
    COLLECTING = "collecting"  # collecting support
    DELIBERATION = "deliberation"
    SCHEDULED = "scheduled"  # scheduled for a vote
    VOTING = "voting"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IMPLEMENTATION = "implementation"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"  # not enough support in time
    CLOSED = "closed"  # closed by the committee with a reason


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.COLLECTING, Status.WITHDRAWN}),
    Status.COLLECTING: frozenset({Status.DELIBERATION, Status.EXPIRED, Status.WITHDRAWN}),
    Status.DELIBERATION: frozenset({Status.SCHEDULED, Status.CLOSED, Status.WITHDRAWN}),
    Status.SCHEDULED: frozenset({Status.VOTING, Status.DELIBERATION, Status.CLOSED}),
    Status.VOTING: frozenset({Status.ACCEPTED, Status.REJECTED, Status.SCHEDULED}),
    Status.ACCEPTED: frozenset({Status.IMPLEMENTATION}),
    Status.REJECTED: frozenset(),
    Status.IMPLEMENTATION: frozenset({Status.COMPLETED, Status.ABANDONED}),
    Status.COMPLETED: frozenset(),
    Status.ABANDONED: frozenset(),
    Status.WITHDRAWN: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CLOSED: frozenset(),
}

# Statuses shown in public lists (drafts are private to their author).
PUBLISHED = frozenset(Status) - {Status.DRAFT}
# While these hold, the author may still edit the text.
EDITABLE = frozenset({Status.DRAFT, Status.COLLECTING})
# The author may withdraw before voting.
WITHDRAWABLE = frozenset({Status.DRAFT, Status.COLLECTING, Status.DELIBERATION})


def can_move(current: str, target: str) -> bool:
    return Status(target) in TRANSITIONS[Status(current)]


class Stance(StrEnum):
    FOR = "for"
    AGAINST = "against"
    QUESTION = "question"
    NEUTRAL = "neutral"


class Category(StrEnum):
    ENVIRONMENT = "environment"
    SAFETY = "safety"
    FACILITIES = "facilities"
    FINANCE = "finance"
    ELDERLY_CHILDREN = "elderly_children"
    OTHER = "other"


MAX_REPLY_DEPTH = 2  # a comment (0), a reply (1), a reply to a reply (2): three levels
COMMENT_EDIT_MINUTES = 15
MAX_PHOTOS = 6


# ---------------------------------------------------------------- implementation


class Work(StrEnum):
    """Where the carrying-out of an accepted proposal stands."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


WORK_TRANSITIONS: dict[Work, frozenset[Work]] = {
    # An update may keep the status (more progress, same state).
    Work.NOT_STARTED: frozenset(
        {Work.NOT_STARTED, Work.IN_PROGRESS, Work.BLOCKED, Work.COMPLETED, Work.ABANDONED}
    ),
    Work.IN_PROGRESS: frozenset({Work.IN_PROGRESS, Work.BLOCKED, Work.COMPLETED, Work.ABANDONED}),
    Work.BLOCKED: frozenset({Work.BLOCKED, Work.IN_PROGRESS, Work.COMPLETED, Work.ABANDONED}),
    Work.COMPLETED: frozenset(),
    Work.ABANDONED: frozenset(),
}
ACTIVE_WORK = frozenset({Work.NOT_STARTED, Work.IN_PROGRESS, Work.BLOCKED})
# A reason is required to enter these, and shown with the status.
WORK_NEEDS_REASON = frozenset({Work.BLOCKED, Work.ABANDONED})
# Only the owners' committee may give up on a decision.
WORK_COMMITTEE_ONLY = frozenset({Work.ABANDONED})


def can_report(current: str, target: str) -> bool:
    return Work(target) in WORK_TRANSITIONS[Work(current)]


class AsDecided(StrEnum):
    """ "Was it done as decided?" in a rating of completed work."""

    YES = "yes"
    PARTLY = "partly"
    NO = "no"


STALE_DAYS = 30  # an active implementation without an update for this long is stale
RATING_CHANGE_DAYS = 30  # a rating can be changed for this long after it was first given
MAX_MILESTONES = 10
FINAL_STAGE = "final"  # Rating.stage of the rating of completed work; "m<id>" mid-way
