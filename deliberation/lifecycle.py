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
