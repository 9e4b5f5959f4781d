"""The community accountability board: every decision of the last 12 months in a
community and the communities inside it, how its carrying-out stands and how residents
rate it, with totals. Three queries whatever the size (rows, milestone dates, rating
counts); the arithmetic is exact (fractions), in the pure functions at the bottom."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select

from community import services as community_services
from community.models import Community, Membership, User
from community.permissions import MembershipStatus
from deliberation.implementation import RatingSummary, empty_counts
from deliberation.lifecycle import ACTIVE_WORK, FINAL_STAGE, AsDecided, Work
from deliberation.models import (
    Decision,
    Implementation,
    Milestone,
    Proposal,
    Rating,
    verdict_in,
)
from web.errors import NotFound
from web.exports import csv_document
from web.extensions import db

PERIOD_DAYS = 365
NO_RATINGS = RatingSummary(empty_counts())  # shared, never changed
ANSWERS = tuple(a.value for a in AsDecided)
ID_BATCH = 5000  # ids per IN list (SQLite's limit on bound parameters is far above)
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
    rows: list[BoardRow]  # all rows that match the filters, newest decision first
    totals: Totals
    status: str | None = None
    category: str | None = None
    page: int = 1

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.rows) // PAGE_SIZE))

    @property
    def page_rows(self) -> list[BoardRow]:
        start = (self.page - 1) * PAGE_SIZE
        return self.rows[start : start + PAGE_SIZE]


def board(
    viewer: User | None,
    community: Community,
    now: datetime,
    *,
    status: str | None = None,
    category: str | None = None,
    page: int = 1,
    locale: str = "zh",
    all_verdicts: bool = False,
) -> Board:
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
    rows_query = (
        select(
            Decision.proposal_id,
            Proposal.title,
            Proposal.category,
            Community.name,
            Community.timezone,
            Decision.decided_at,
            Decision.accepted,
            Decision.turnout,
            Decision.round_url,
            Implementation.id,
            Implementation.status,
            Implementation.status_reason,
            Implementation.percent,
            Implementation.stale_since,
            Implementation.completed_at,
        )
        .join(Proposal, Proposal.id == Decision.proposal_id)
        .join(Community, Community.id == Decision.community_id)
        .outerjoin(Implementation, Implementation.proposal_id == Decision.proposal_id)
        .where(*conditions)
        .order_by(Decision.decided_at.desc(), Decision.proposal_id.desc())
    )
    # Columns only: plain Core rows, without the ORM's per-row loading.
    connection = db.session.connection()
    found = connection.execute(rows_query).all()
    iids = [r[9] for r in found if r[9] is not None]
    plans, ratings = _plans_and_ratings(connection, iids)
    rows = []
    for (
        proposal_id,
        title,
        category_value,
        community_name,
        zone,
        decided_at,
        accepted,
        turnout,
        round_url,
        iid,
        work,
        reason,
        percent,
        stale_since,
        completed_at,
    ) in found:
        last, first_open = plans.get(iid, (None, None))
        row = BoardRow(
            proposal_id=proposal_id,
            title=title,
            category=category_value,
            community=community_name,
            decided_at=decided_at,
            accepted=accepted,
            locale=locale,
            turnout=turnout,
            round_url=round_url,
            status=work if iid is not None else ("accepted" if accepted else "rejected"),
            status_reason=reason,
            percent=percent or 0,
            stale=stale_since is not None and work in ACTIVE_WORK,
            planned_end=last,
        )
        if iid is not None:
            row.days_overdue = overdue(work, first_open, today)
            row.on_time = on_time(work, completed_at, last, zone)
            row.satisfaction = ratings.get(iid, row.satisfaction)
        rows.append(row)
    if status:
        rows = [r for r in rows if matches(r, status)]
    totals = roll_up(rows, today)
    result = Board(
        community=community,
        since=since,
        rows=rows,
        totals=totals,
        status=status,
        category=category,
    )
    result.page = min(max(1, page), result.pages)
    # The verdicts (long texts in every language) only for the rows that show them.
    _add_verdicts(connection, rows if all_verdicts else result.page_rows)
    return result


def _plans_and_ratings(connection, iids: list[int]):
    """Per implementation: (last target date, earliest target date not reached) and the
    distribution of its final ratings, in two grouped queries."""
    plans: dict[int, tuple] = {}
    ratings: dict[int, RatingSummary] = {}
    scores = [func.sum(case((Rating.satisfaction == n, 1), else_=0)) for n in range(1, 6)]
    answers = [func.sum(case((Rating.as_decided == a, 1), else_=0)) for a in ANSWERS]
    for start in range(0, len(iids), ID_BATCH):
        batch = iids[start : start + ID_BATCH]
        for iid, last, first_open in connection.execute(
            select(
                Milestone.implementation_id,
                func.max(Milestone.due_on),
                func.min(case((Milestone.reached_at.is_(None), Milestone.due_on))),
            )
            .where(Milestone.implementation_id.in_(batch))
            .group_by(Milestone.implementation_id)
        ):
            plans[iid] = (last, first_open)
        for iid, *counts in connection.execute(
            select(Rating.implementation_id, *scores, *answers)
            .where(Rating.implementation_id.in_(batch), Rating.stage == FINAL_STAGE)
            .group_by(Rating.implementation_id)
        ):
            ratings[iid] = RatingSummary(
                {n: int(counts[n - 1]) for n in range(1, 6)},
                {a: int(c) for a, c in zip(ANSWERS, counts[5:], strict=True) if c},
            )
    return plans, ratings


def _add_verdicts(connection, rows: list[BoardRow]) -> None:
    by_id = {r.proposal_id: r for r in rows}
    ids = list(by_id)
    for start in range(0, len(ids), ID_BATCH):
        for proposal_id, texts in connection.execute(
            select(Decision.proposal_id, Decision.summary).where(
                Decision.proposal_id.in_(ids[start : start + ID_BATCH])
            )
        ):
            by_id[proposal_id].summary_texts = texts


# ---------------------------------------------------------------- pure arithmetic


def overdue(work: str, first_open_due: date | None, today: date) -> int:
    """Days since the earliest target date of a milestone not yet reached, for active
    work; 0 when nothing is overdue."""
    if work not in ACTIVE_WORK or first_open_due is None:
        return 0
    return max(0, (today - first_open_due).days)


def on_time(work: str, completed_at, planned_end: date | None, zone: str) -> bool | None:
    """Completed work: by the plan's last target date (no plan: not on time). Abandoned
    work: not on time. Active work: None (not yet known)."""
    if work == Work.COMPLETED:
        if planned_end is None:
            return False
        return completed_at.astimezone(ZoneInfo(zone)).date() <= planned_end
    if work == Work.ABANDONED:
        return False
    return None


def matches(row: BoardRow, status: str) -> bool:
    if status == "accepted":
        return row.accepted
    if status == "stale":
        return row.stale
    if status == "overdue":
        return row.days_overdue > 0
    return row.status == status


def roll_up(rows: list[BoardRow], today: date) -> Totals:
    """The totals of the board's rows.

    - turnout: the mean, over decisions with a known turnout, of the share of the
      electorate that took part;
    - on time: of the accepted decisions that are finished (completed or abandoned) or
      whose planned end date has passed, the share completed by the planned end date;
    - satisfaction: all ratings of completed work together (a distribution and its mean).
    """
    totals = Totals()
    turnout_sum, turnouts = Decimal(0), 0
    for row in rows:
        totals.decisions += 1
        totals.accepted += 1 if row.accepted else 0
        totals.by_status[row.status] = totals.by_status.get(row.status, 0) + 1
        if row.turnout is not None:
            turnout_sum += row.turnout  # exact: decimals with six places
            turnouts += 1
        if row.on_time is not None:
            totals.finished_or_due += 1
            totals.on_time += 1 if row.on_time else 0
        elif row.planned_end is not None and row.planned_end < today and row.status in ACTIVE_WORK:
            totals.finished_or_due += 1  # due and not done: late
        if row.satisfaction is NO_RATINGS:
            continue
        for score, n in row.satisfaction.counts.items():
            totals.satisfaction.counts[score] += n
        for answer, n in row.satisfaction.as_decided.items():
            totals.satisfaction.as_decided[answer] = (
                totals.satisfaction.as_decided.get(answer, 0) + n
            )
    if turnouts:
        totals.turnout_mean = Fraction(turnout_sum) / turnouts
    return totals


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
