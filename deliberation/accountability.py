"""The community accountability board: every decision of the last 12 months in a
community and the communities inside it, how its carrying-out stands and how residents
rate it, with totals. Two queries whatever the size (the totals, grouped, and one page of
rows), over the figures that each implementation carries (see Implementation); the
arithmetic is exact (whole numbers and fractions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, cast, func, or_, select

from community import services as community_services
from community.models import Community, Membership, User
from community.permissions import MembershipStatus
from deliberation.implementation import RatingSummary, empty_counts
from deliberation.lifecycle import ACTIVE_WORK, AsDecided, Work
from deliberation.models import Decision, Implementation, Proposal, verdict_in
from web.errors import NotFound
from web.exports import csv_document
from web.extensions import db

PERIOD_DAYS = 365
NO_RATINGS = RatingSummary(empty_counts())  # shared, never changed
ANSWERS = tuple(a.value for a in AsDecided)
PAGE_SIZE = 50
# Filters by status: a result ("rejected") or where the work stands; "stale" and
# "overdue" are marks on active work.
STATUS_FILTERS = (
    "accepted",
    "rejected",
    *(w.value for w in Work),
    "stale",
    "overdue",
)


def can_read_board(user: User | None, community: Community) -> bool:
    """Members of the community and of the communities above it (and site admins)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_admin:
        return True
    return bool(
        db.session.scalar(
            select(Membership.id)
            .where(
                Membership.user_id == user.id,
                Membership.status == MembershipStatus.VERIFIED,
                Membership.community_id.in_([community.id, *community.ancestor_ids]),
            )
            .limit(1)
        )
    )


def board_community(user: User | None, community_id: int) -> Community:
    community = community_services.get_community(community_id)
    if not can_read_board(user, community):
        raise NotFound()
    return community


@dataclass
class BoardRow:
    proposal_id: int
    title: str
    category: str
    community: str
    decided_at: datetime
    accepted: bool
    turnout: Decimal | None
    round_url: str | None
    status: str  # "rejected" or a Work value
    status_reason: str | None = None
    percent: int = 0
    stale: bool = False
    planned_end: date | None = None
    days_overdue: int = 0
    on_time: bool | None = None
    satisfaction: RatingSummary = field(default_factory=lambda: NO_RATINGS)
    locale: str = "zh"
    summary_texts: str = ""  # Decision.summary, the verdict in each language (see `summary`)

    @property
    def summary(self) -> str:
        """The verdict in the reader's language (read for the rows shown or exported)."""
        return verdict_in(self.summary_texts, self.locale)


@dataclass
class Totals:
    decisions: int = 0
    accepted: int = 0
    turnout_mean: Fraction | None = None
    on_time: int = 0  # completed by the planned end date
    finished_or_due: int = 0  # the base of the on-time share
    by_status: dict[str, int] = field(default_factory=dict)
    satisfaction: RatingSummary = field(default_factory=lambda: RatingSummary(empty_counts()))

    @property
    def on_time_share(self) -> Fraction | None:
        return Fraction(self.on_time, self.finished_or_due) if self.finished_or_due else None


@dataclass
class Board:
    community: Community
    since: datetime
    rows: list[BoardRow]  # the page's rows (all rows for a download), newest first
    totals: Totals  # of every row that matches the filters
    status: str | None = None
    category: str | None = None
    page: int = 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.totals.decisions // PAGE_SIZE))


ACTIVE = Implementation.status.in_([w.value for w in ACTIVE_WORK])
# A decision's status on the board: where its work stands, or its result.
BOARD_STATUS = case(
    (Implementation.id.is_not(None), Implementation.status),
    (Decision.accepted.is_(True), "accepted"),
    else_="rejected",
)
SCORES = [getattr(Implementation, f"score_{n}") for n in range(1, 6)]
ANSWER_COLUMNS = [getattr(Implementation, f"as_{a}") for a in ANSWERS]
MICRO = 1_000_000  # turnouts are kept with six decimal places


def board(
    viewer: User | None,
    community: Community,
    now: datetime,
    *,
    status: str | None = None,
    category: str | None = None,
    page: int = 1,
    locale: str = "zh",
    everything: bool = False,
) -> Board:
    """The board of `community` at `now`: the totals of every decision that matches the
    filters, and the rows of one page of them (of all of them with `everything`, for the
    downloads). Two queries, over the figures each implementation carries."""
    if not can_read_board(viewer, community):
        raise NotFound()
    status = status if status in STATUS_FILTERS else None
    category = category or None
    since = now - timedelta(days=PERIOD_DAYS)
    today = now.astimezone(ZoneInfo(community.timezone)).date()
    scope = select(Community.id).where(
        or_(Community.id == community.id, Community.path.like(f"{community.path}%"))
    )
    conditions = [Decision.community_id.in_(scope), Decision.decided_at >= since]
    if category:
        conditions.append(Proposal.category == category)
    if status:
        conditions.append(_status_condition(status, today))
    # Columns only: plain Core rows, without the ORM's per-row loading.
    connection = db.session.connection()
    totals = _totals(connection, _matching(bool(category)), conditions, today)
    result = Board(
        community=community,
        since=since,
        rows=[],
        totals=totals,
        status=status,
        category=category,
    )
    result.page = 1 if everything else min(max(1, page), result.pages)
    newest_first = (Decision.decided_at.desc(), Decision.proposal_id.desc())
    picked = select(Decision.proposal_id).select_from(_matching(bool(category))).where(*conditions)
    if not everything:
        # The page's decisions first, from the narrow rows; then their columns.
        picked = picked.order_by(*newest_first).limit(PAGE_SIZE)
        picked = picked.offset((result.page - 1) * PAGE_SIZE)
    rows_query = (
        select(
            Decision.proposal_id,
            Proposal.title,
            Proposal.category,
            Community.name,
            Decision.decided_at,
            Decision.accepted,
            Decision.turnout,
            Decision.round_url,
            Decision.summary,
            Implementation.id,
            Implementation.status,
            Implementation.status_reason,
            Implementation.percent,
            Implementation.stale_since,
            Implementation.planned_end,
            Implementation.next_due,
            Implementation.on_time,
            *SCORES,
            *ANSWER_COLUMNS,
        )
        .join(Proposal, Proposal.id == Decision.proposal_id)
        .join(Community, Community.id == Decision.community_id)
        .outerjoin(Implementation, Implementation.proposal_id == Decision.proposal_id)
        .where(Decision.proposal_id.in_(picked))
        .order_by(*newest_first)
    )
    result.rows = [_row(found, today, locale) for found in connection.execute(rows_query)]
    return result


def _matching(by_category: bool):
    """The decisions with their implementations (and proposals, to filter by category)."""
    joined = Decision.__table__.outerjoin(
        Implementation, Implementation.proposal_id == Decision.proposal_id
    )
    if by_category:
        joined = joined.join(Proposal, Proposal.id == Decision.proposal_id)
    return joined


def _status_condition(status: str, today: date):
    if status == "accepted":
        return Decision.accepted.is_(True)
    if status == "stale":
        return and_(Implementation.stale_since.is_not(None), ACTIVE)
    if status == "overdue":
        return and_(Implementation.next_due < today, ACTIVE)
    return BOARD_STATUS == status  # noqa: SIM300  (a column expression, not a constant)


def _totals(connection, matching, conditions: list, today: date) -> Totals:
    """The totals in one grouped query (a group per status), exact in whole numbers.

    - turnout: the mean, over decisions with a known turnout, of the share of the
      electorate that took part;
    - on time: of the accepted decisions that are finished (completed or abandoned) or
      whose planned end date has passed, the share completed by the planned end date;
    - satisfaction: all ratings of completed work together (a distribution and its mean).
    """
    finished_or_due = case(
        (Implementation.on_time.is_not(None), 1),
        (and_(Implementation.planned_end < today, ACTIVE), 1),
        else_=0,
    )
    query = (
        select(
            BOARD_STATUS,
            func.count(),
            func.sum(case((Decision.accepted.is_(True), 1), else_=0)),
            func.sum(cast(func.round(Decision.turnout * MICRO), BigInteger)),
            func.count(Decision.turnout),
            func.sum(case((Implementation.on_time.is_(True), 1), else_=0)),
            func.sum(finished_or_due),
            *(func.sum(c) for c in SCORES),
            *(func.sum(c) for c in ANSWER_COLUMNS),
        )
        .select_from(matching)
        .where(*conditions)
        .group_by(BOARD_STATUS)
    )
    totals = Totals()
    turnout_micro = turnouts = 0
    for status, n, accepted, micro, known, on_time_n, due_n, *counts in connection.execute(query):
        totals.decisions += n
        totals.accepted += accepted or 0
        totals.by_status[status] = n
        turnout_micro += int(micro or 0)  # PostgreSQL sums big integers as numeric
        turnouts += known
        totals.on_time += on_time_n or 0
        totals.finished_or_due += due_n or 0
        for score in range(1, 6):
            totals.satisfaction.counts[score] += counts[score - 1] or 0
        for answer, c in zip(ANSWERS, counts[5:], strict=True):
            if c:
                totals.satisfaction.as_decided[answer] = (
                    totals.satisfaction.as_decided.get(answer, 0) + c
                )
    if turnouts:
        totals.turnout_mean = Fraction(turnout_micro, MICRO * turnouts)
    return totals


def _row(found, today: date, locale: str) -> BoardRow:
    (
        proposal_id,
        title,
        category,
        community_name,
        decided_at,
        accepted,
        turnout,
        round_url,
        summary,
        iid,
        work,
        reason,
        percent,
        stale_since,
        planned_end,
        next_due,
        finished_on_time,
        *counts,
    ) = found
    row = BoardRow(
        proposal_id=proposal_id,
        title=title,
        category=category,
        community=community_name,
        decided_at=decided_at,
        accepted=accepted,
        locale=locale,
        turnout=turnout,
        round_url=round_url,
        summary_texts=summary,
        status=work if iid is not None else ("accepted" if accepted else "rejected"),
        status_reason=reason,
        percent=percent or 0,
        stale=stale_since is not None and work in ACTIVE_WORK,
        planned_end=planned_end,
    )
    if iid is not None:
        row.days_overdue = overdue(work, next_due, today)
        row.on_time = finished_on_time
        if any(counts[:5]):
            row.satisfaction = RatingSummary(
                {n: counts[n - 1] for n in range(1, 6)},
                {a: c for a, c in zip(ANSWERS, counts[5:], strict=True) if c},
            )
    return row


# ---------------------------------------------------------------- pure arithmetic


def overdue(work: str, first_open_due: date | None, today: date) -> int:
    """Days since the earliest target date of a milestone not yet reached, for active
    work; 0 when nothing is overdue."""
    if work not in ACTIVE_WORK or first_open_due is None:
        return 0
    return max(0, (today - first_open_due).days)


# ---------------------------------------------------------------- downloads


def _share(value: Fraction | None) -> str:
    return "" if value is None else f"{float(value):.4f}"


def export_rows(result: Board) -> list[dict]:
    return [
        {
            "proposal_id": r.proposal_id,
            "title": r.title,
            "category": r.category,
            "community": r.community,
            "decided_at": r.decided_at.isoformat(),
            "result": "accepted" if r.accepted else "rejected",
            "verdict": r.summary,
            "turnout": None if r.turnout is None else str(r.turnout),
            "status": r.status,
            "status_reason": r.status_reason,
            "percent_complete": r.percent,
            "stale": r.stale,
            "planned_end": r.planned_end.isoformat() if r.planned_end else None,
            "days_overdue": r.days_overdue,
            "on_time": r.on_time,
            "ratings": r.satisfaction.total,
            "satisfaction_mean": _share(r.satisfaction.mean) or None,
            "satisfaction_counts": {str(k): v for k, v in r.satisfaction.counts.items()},
        }
        for r in result.rows
    ]


def board_json(result: Board) -> dict:
    totals = result.totals
    return {
        "community": {"id": result.community.id, "name": result.community.name},
        "since": result.since.isoformat(),
        "filters": {"status": result.status, "category": result.category},
        "totals": {
            "decisions": totals.decisions,
            "accepted": totals.accepted,
            "turnout_mean": _share(totals.turnout_mean) or None,
            "on_time": totals.on_time,
            "finished_or_due": totals.finished_or_due,
            "on_time_share": _share(totals.on_time_share) or None,
            "by_status": totals.by_status,
            "ratings": totals.satisfaction.total,
            "satisfaction_mean": _share(totals.satisfaction.mean) or None,
            "satisfaction_counts": {str(k): v for k, v in totals.satisfaction.counts.items()},
            "as_decided": totals.satisfaction.as_decided,
        },
        "decisions": export_rows(result),
    }


CSV_COLUMNS = [
    "proposal_id",
    "title",
    "category",
    "community",
    "decided_at",
    "result",
    "verdict",
    "turnout",
    "status",
    "status_reason",
    "percent_complete",
    "stale",
    "planned_end",
    "days_overdue",
    "on_time",
    "ratings",
    "satisfaction_mean",
]


def board_csv(result: Board) -> str:
    return csv_document(
        CSV_COLUMNS + [f"satisfaction_{n}" for n in range(1, 6)],
        (
            [row[c] if row[c] is not None else "" for c in CSV_COLUMNS]
            + [row["satisfaction_counts"][str(n)] for n in range(1, 6)]
            for row in export_rows(result)
        ),
    )
