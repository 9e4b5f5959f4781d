"""Roles, membership states and what each role may do: one table, no database, no Flask."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"
    OWNER = "owner"
    MODERATOR = "moderator"
    COMMITTEE = "committee"
    ADMIN = "admin"


class MembershipStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class CommunityKind(StrEnum):
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    COMPOUND = "compound"
    BUILDING = "building"
    VILLAGE = "village"
    VILLAGE_GROUP = "village_group"


# Which kinds may sit directly below which: district → street → community → compound →
# building, and village → village group (villages sit under a district or a street/town).
CHILD_KINDS: dict[CommunityKind, tuple[CommunityKind, ...]] = {
    CommunityKind.DISTRICT: (CommunityKind.STREET, CommunityKind.VILLAGE),
    CommunityKind.STREET: (CommunityKind.COMMUNITY, CommunityKind.VILLAGE),
    CommunityKind.COMMUNITY: (CommunityKind.COMPOUND, CommunityKind.BUILDING),
    CommunityKind.COMPOUND: (CommunityKind.BUILDING,),
    CommunityKind.BUILDING: (),
    CommunityKind.VILLAGE: (CommunityKind.VILLAGE_GROUP,),
    CommunityKind.VILLAGE_GROUP: (),
}

# The powers of each role within its own community. A verified membership is needed for
# all of them; a community admin's powers also reach the communities below it.
ACTIONS: dict[str, frozenset[Role]] = {
    # read the community's member-only pages
    "view": frozenset(Role),
    # propose, support, comment, vote (subject to the round's electorate)
    "participate": frozenset(Role),
    # approve or reject join requests
    "verify_members": frozenset({Role.MODERATOR, Role.COMMITTEE, Role.ADMIN}),
    # hide/restore content, work the report queue
    "moderate": frozenset({Role.MODERATOR, Role.ADMIN}),
    # see the member list with contact details (own community only)
    "view_members": frozenset({Role.MODERATOR, Role.COMMITTEE, Role.ADMIN}),
    # voter roll imports and household invitations
    "manage_roll": frozenset({Role.COMMITTEE, Role.ADMIN}),
    # voting rounds, paper ballots, publication, implementation reports
    "run_rounds": frozenset({Role.COMMITTEE, Role.ADMIN}),
    # create child communities, assign roles
    "administer": frozenset({Role.ADMIN}),
    # the community's deliberation settings (support threshold, window, categories)
    "configure": frozenset({Role.COMMITTEE, Role.ADMIN}),
}

# Actions a suspended member may not take (they may still read).
WRITING_ACTIONS = frozenset({"participate"})

# Powers that an admin membership in an ancestor also grants.
INHERITED_BY_ADMINS = frozenset(ACTIONS)


def role_may(role: Role | str, action: str) -> bool:
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    return Role(role) in ACTIONS[action]
