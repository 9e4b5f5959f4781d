"""Members, communities and memberships, and the voter roll."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from community.permissions import CommunityKind, MembershipStatus, Role
from web.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(db.TypeDecorator):
    """Timezone-aware UTC on both engines (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use timezone-aware UTC")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# How a deleted account is named wherever its content stays (community/privacy.py): the
# stored name, and what pages show in the reader's language.
ERASED_NAME = "former resident"
FORMER_RESIDENT = _l("former resident")


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "phone IS NOT NULL OR email IS NOT NULL OR erased_at IS NOT NULL", name="has_contact"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The name as stored; pages show `display_name` (below).
    _display_name: Mapped[str] = mapped_column("display_name", String(40))
    # NFKC-casefolded skeleton of the display name: impostor names collide here.
    name_key: Mapped[str] = mapped_column(String(80), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Bumped at logout, password change and deactivation: old cookies stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))
    large_text: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the member deleted their account (community/privacy.py): the row stays so
    # that foreign keys hold, emptied of name, contact and password.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", foreign_keys="Membership.user_id"
    )

    def _shown_name(self) -> str:
        if self.erased_at is not None:
            return str(FORMER_RESIDENT)  # in the reader's language
        return self._display_name

    def _set_name(self, value: str) -> None:
        self._display_name = value

    # Queries use the stored column (User.display_name); instances show the name, or
    # "former resident" for a deleted account.
    display_name = synonym("_display_name", descriptor=property(_shown_name, _set_name))

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Community(db.Model):
    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_communities_sibling_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20), default=CommunityKind.COMMUNITY.value)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    # Materialized path of ids, "/1/4/9/": descendants are `path LIKE '/1/4/%'`.
    path: Mapped[str] = mapped_column(String(255), default="/", index=True)
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Community | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Community]] = relationship(
        back_populates="parent", order_by="Community.name"
    )

    @property
    def ancestor_ids(self) -> list[int]:
        return [int(part) for part in self.path.strip("/").split("/") if part][:-1]


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "community_id", name="uq_memberships_user_community"),
        CheckConstraint("private_area IS NULL OR private_area > 0", name="area_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.RESIDENT.value)
    status: Mapped[str] = mapped_column(String(20), default=MembershipStatus.PENDING.value)
    # The household: where the member lives. Members without a unit (e.g. neighborhood
    # committee staff) can moderate but are not residents for voting.
    unit: Mapped[str | None] = mapped_column(String(80))
    # For owners: the unit's private (exclusive) area in m², exact.
    private_area: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    how_joined: Mapped[str] = mapped_column(String(20), default="request")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # A moderator's suspension: the member may read but not write until then.
    suspended_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="memberships", foreign_keys=[user_id])
    community: Mapped[Community] = relationship()
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def is_verified(self) -> bool:
        return self.status == MembershipStatus.VERIFIED

    def is_suspended(self, now: datetime | None = None) -> bool:
        return self.suspended_until is not None and self.suspended_until > (now or utcnow())


class RollImport(db.Model):
    """One upload of a voter roll: who imported what, when."""

    __tablename__ = "roll_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(255), default="")
    rows_added: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RollEntry(db.Model):
    """A household on the voter roll, with its one-time invitation."""

    __tablename__ = "roll_entries"
    __table_args__ = (
        UniqueConstraint("community_id", "unit_key", name="uq_roll_entries_unit"),
        CheckConstraint("private_area IS NULL OR private_area > 0", name="area_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    unit: Mapped[str] = mapped_column(String(80))
    unit_key: Mapped[str] = mapped_column(String(80))
    owner_name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(20))
    private_area: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("roll_imports.id"))
    # Only the BLAKE2b digest of the invitation code is kept.
    invite_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invite_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invite_used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    community: Mapped[Community] = relationship()
