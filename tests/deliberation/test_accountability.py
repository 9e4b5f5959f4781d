"""The community accountability board (issue 4) through the services: every decision of
the last twelve months in a community and the communities inside it, with where its
carrying-out stands and how residents rated it; the totals, checked against figures
worked out by hand below; the filters; who may read it; the CSV and JSON downloads."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import select

from community.models import User
from deliberation import accountability
from deliberation import implementation as work
from deliberation.models import Implementation, Rating
from tests.deliberation.test_implementation import decided, english, update  # noqa: F401
from web.database import write_intent
from web.errors import NotFound
from web.extensions import db

# English messages and labels, as for an English-speaking member's request.
pytestmark = pytest.mark.usefixtures("english")


NOW = datetime(2027, 6, 15, 4, 0, tzinfo=UTC)  # noon on 15 June in Shanghai
FORMULA_TITLE = "=SUM(A1:A9) new benches"


def at(day: str, hour: int = 2, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


@dataclass
class District:
    street: object
    garden: object  # a compound of the street
    building: object  # a building of the garden
    bay: object  # another compound of the street
    far: object  # a compound of another street
    members: dict
    proposals: dict  # "P1" … "P9" → Proposal


@pytest.fixture
def district(make_community, make_member) -> District:
    """Happiness Street, its compounds Sunny Garden (with Building 3) and Moon Bay, and
    Far Court on Peace Street; all in Shanghai. The decisions, worked out by hand for the
    street's board on 15 June 2027:

    key where    decided     result   turnout work         %    plan ends   notes
    P6  garden   2026-06-20  accepted 2/5     abandoned    10   -           formula-like title
    P1  garden   2027-01-10  accepted 3/5     completed    100  2027-03-31  done 23:30 31 Mar
                                                                            (on time); rated 5 4 4
    P2  garden   2027-02-01  accepted 1/2     completed    100  2027-05-20  done 00:30 21 May
                                                                            (late); rated 2 3
    P3  bay      2027-03-01  accepted 3/4     in progress  40   2027-07-31  "Order parts" due
                                                                            1 May: 45 days over
    P4  bay      2027-04-01  accepted 4/5     blocked      10   2027-06-01  14 days over; stale
    P5  building 2027-05-01  accepted unknown not started  0    -           never planned; stale
    P7  bay      2027-05-10  rejected 1/4
    P8  garden   2026-06-10  accepted 9/10    (older than twelve months)
    P9  far      2027-05-01  accepted 1       (another street)
    """
    street = make_community("Happiness Street", kind="street")
    garden = make_community("Sunny Garden", kind="compound", parent=street)
    building = make_community("Building 3", kind="building", parent=garden)
    bay = make_community("Moon Bay", kind="compound", parent=street)
    peace = make_community("Peace Street", kind="street")
    far = make_community("Far Court", kind="compound", parent=peace)
    m = {
        "garden committee": make_member(garden, role="committee"),
        "bay committee": make_member(bay, role="committee"),
        "street member": make_member(street),
        "garden member": make_member(garden),
        "building member": make_member(building),
        "bay member": make_member(bay),
        "far member": make_member(far),
        "raters": [make_member(garden) for _ in range(3)],
    }
    garden_committee, bay_committee = m["garden committee"], m["bay committee"]
    author = m["garden member"]
    p = {}

    p["P6"] = decided(garden, author, FORMULA_TITLE, at=at("2026-06-20"), turnout=Fraction(2, 5))
    update(
        garden_committee,
        work.implementation_of(p["P6"]),
        "abandoned",
        10,
        reason="The owners chose another contractor",
        now=at("2026-08-01"),
    )

    p["P1"] = decided(garden, author, "Repair the lamp", at=at("2027-01-10"))
    lamp = planned(
        garden_committee, p["P1"], [("Buy", "2027-02-28"), ("Fit", "2027-03-31")], at("2027-01-11")
    )
    buy, fit = lamp.milestones
    update(garden_committee, lamp, "in_progress", 50, milestone_id=buy.id, now=at("2027-02-20"))
    # 23:30 on 31 March in Shanghai: on the last target date.
    update(garden_committee, lamp, "completed", milestone_id=fit.id, now=at("2027-03-31", 15, 30))
    for rater, score, answer in zip(m["raters"], (5, 4, 4), ("yes", "yes", "partly"), strict=True):
        work.rate(rater, lamp, score, as_decided=answer, now=at("2027-04-02"))

    p["P2"] = decided(
        garden,
        author,
        "Plant trees",
        at=at("2027-02-01"),
        turnout=Fraction(1, 2),
        category="environment",
    )
    trees = planned(garden_committee, p["P2"], [("Plant", "2027-05-20")], at("2027-02-02"))
    # 00:30 on 21 May in Shanghai (still 20 May in UTC): a day late.
    update(garden_committee, trees, "completed", now=at("2027-05-20", 16, 30))
    for rater, score, answer in zip(m["raters"][:2], (2, 3), ("no", "partly"), strict=True):
        work.rate(rater, trees, score, as_decided=answer, now=at("2027-05-25"))

    p["P3"] = decided(
        bay, m["bay member"], "Fix the gate", at=at("2027-03-01"), turnout=Fraction(3, 4)
    )
    gate = planned(
        bay_committee,
        p["P3"],
        [("Survey", "2027-04-01"), ("Order parts", "2027-05-01"), ("Install", "2027-07-31")],
        at("2027-03-02"),
    )
    survey = gate.milestones[0]
    update(bay_committee, gate, "in_progress", 20, milestone_id=survey.id, now=at("2027-04-02"))
    work.rate(m["bay member"], gate, 1, milestone_id=survey.id, now=at("2027-04-03"))
    update(bay_committee, gate, "in_progress", 40, now=at("2027-06-01"))

    p["P4"] = decided(
        bay,
        m["bay member"],
        "Cameras at the gate",
        at=at("2027-04-01"),
        turnout=Fraction(4, 5),
        category="safety",
    )
    cameras = planned(bay_committee, p["P4"], [("Install", "2027-06-01")], at("2027-04-02"))
    update(
        bay_committee, cameras, "blocked", 10, reason="Waiting for the permit", now=at("2027-04-05")
    )

    p["P5"] = decided(
        building,
        m["building member"],
        "Bike shed",
        at=at("2027-05-01"),
        turnout=None,
        category="other",
    )
    p["P7"] = decided(
        bay,
        m["bay member"],
        "Paint the walls pink",
        accepted=False,
        at=at("2027-05-10"),
        turnout=Fraction(1, 4),
        category="environment",
    )
    p["P8"] = decided(garden, author, "Old fence", at=at("2026-06-10"), turnout=Fraction(9, 10))
    p["P9"] = decided(far, m["far member"], "Far away", at=at("2027-05-01"), turnout=Fraction(1))
    work.mark_stale(NOW)
    db.session.commit()
    return District(street, garden, building, bay, far, m, p)


def planned(committee, proposal, milestones, now):
    implementation = work.implementation_of(proposal)
    work.plan(
        committee,
        implementation,
        work.PlanDraft(responsible="Property management", milestones=milestones),
        now=now,
    )
    db.session.commit()
    db.session.expire(implementation, ["milestones"])
    return implementation


def street_board(district, **filters):
    return accountability.board(district.members["street member"], district.street, NOW, **filters)


def keys(district, board) -> list[str]:
    by_id = {p.id: key for key, p in district.proposals.items()}
    return [by_id[row.proposal_id] for row in board.rows]


def row_of(district, board, key):
    [row] = [r for r in board.rows if r.proposal_id == district.proposals[key].id]
    return row


# ---------------------------------------------------------------- the rows


def test_board_lists_the_decisions_of_the_community_and_those_inside_it_newest_first(district):
    assert keys(district, street_board(district)) == ["P7", "P5", "P4", "P3", "P2", "P1", "P6"]


def test_each_row_shows_result_status_percent_and_the_plans_end(district):
    board = street_board(district)
    shown = {
        key: (row.accepted, row.status, row.percent, row.planned_end)
        for key, row in zip(keys(district, board), board.rows, strict=True)
    }
    assert shown == {
        "P7": (False, "rejected", 0, None),
        "P5": (True, "not_started", 0, None),
        "P4": (True, "blocked", 10, date(2027, 6, 1)),
        "P3": (True, "in_progress", 40, date(2027, 7, 31)),
        "P2": (True, "completed", 100, date(2027, 5, 20)),
        "P1": (True, "completed", 100, date(2027, 3, 31)),
        "P6": (True, "abandoned", 10, None),
    }
    assert row_of(district, board, "P4").status_reason == "Waiting for the permit"
    assert row_of(district, board, "P6").status_reason == "The owners chose another contractor"
    p1 = row_of(district, board, "P1")
    assert (p1.title, p1.community, p1.category) == (
        "Repair the lamp",
        "Sunny Garden",
        "facilities",
    )
    assert p1.summary.startswith("Passed")


def test_each_row_shows_days_overdue_on_time_and_stale(district):
    board = street_board(district)
    shown = {
        key: (row.days_overdue, row.on_time, row.stale)
        for key, row in zip(keys(district, board), board.rows, strict=True)
    }
    assert shown == {
        "P7": (0, None, False),
        "P5": (0, None, True),
        "P4": (14, None, True),
        "P3": (45, None, False),  # "Survey" was reached; "Order parts" was due on 1 May
        "P2": (0, False, False),  # completed a day late in Shanghai (on time in UTC)
        "P1": (0, True, False),  # completed 23:30 on the last target date
        "P6": (0, False, False),
    }


def test_each_row_shows_the_distribution_of_ratings_of_the_completed_work(district):
    board = street_board(district)
    assert row_of(district, board, "P1").satisfaction.counts == {1: 0, 2: 0, 3: 0, 4: 2, 5: 1}
    assert row_of(district, board, "P1").satisfaction.mean == Fraction(13, 3)
    assert row_of(district, board, "P2").satisfaction.counts == {1: 0, 2: 1, 3: 1, 4: 0, 5: 0}
    midway_only = row_of(district, board, "P3").satisfaction
    assert (midway_only.total, midway_only.mean) == (0, None)


# ---------------------------------------------------------------- the totals


def test_street_totals_match_the_hand_computed_figures(district):
    totals = street_board(district).totals

    assert (totals.decisions, totals.accepted) == (7, 6)
    # P1 3/5, P2 1/2, P3 3/4, P4 4/5, P6 2/5, P7 1/4; P5's turnout is unknown.
    assert totals.turnout_mean == Fraction(11, 20)
    # Of P1 (on time), P2 (late), P6 (abandoned) and P4 (due 1 June, not done): one.
    assert (totals.on_time, totals.finished_or_due) == (1, 4)
    assert totals.on_time_share == Fraction(1, 4)
    assert totals.by_status == {
        "rejected": 1,
        "not_started": 1,
        "blocked": 1,
        "in_progress": 1,
        "completed": 2,
        "abandoned": 1,
    }
    # P1's 5, 4, 4 and P2's 2, 3; P3's midway rating is not the rating of completed work.
    assert totals.satisfaction.counts == {1: 0, 2: 1, 3: 1, 4: 2, 5: 1}
    assert totals.satisfaction.mean == Fraction(18, 5)
    assert totals.satisfaction.as_decided == {"yes": 2, "partly": 2, "no": 1}


def test_a_compound_board_rolls_up_its_buildings_only(district):
    board = accountability.board(district.members["garden member"], district.garden, NOW)

    assert keys(district, board) == ["P5", "P2", "P1", "P6"]
    totals = board.totals
    assert (totals.decisions, totals.accepted) == (4, 4)
    assert totals.turnout_mean == Fraction(1, 2)  # (3/5 + 1/2 + 2/5) / 3
    assert totals.on_time_share == Fraction(1, 3)  # P1 of P1, P2, P6
    assert totals.by_status == {"not_started": 1, "completed": 2, "abandoned": 1}


def test_a_compound_with_no_work_done_on_time_shows_a_zero_share(district):
    totals = accountability.board(district.members["bay member"], district.bay, NOW).totals

    assert (totals.decisions, totals.accepted) == (3, 2)
    assert totals.turnout_mean == Fraction(3, 5)  # (3/4 + 4/5 + 1/4) / 3
    assert (totals.on_time, totals.finished_or_due) == (0, 1)  # P4 is due and not done
    assert totals.on_time_share == Fraction(0)
    assert totals.satisfaction.total == 0 and totals.satisfaction.mean is None


def test_a_board_with_nothing_to_measure_says_so_instead_of_zero(district):
    board = accountability.board(district.members["building member"], district.building, NOW)

    assert keys(district, board) == ["P5"]
    assert board.totals.turnout_mean is None
    assert board.totals.on_time_share is None
    assert board.totals.satisfaction.mean is None


def test_other_streets_decisions_stay_on_their_own_board(district):
    board = accountability.board(district.members["far member"], district.far, NOW)
    assert keys(district, board) == ["P9"]
    assert "P9" not in keys(district, street_board(district))


# ---------------------------------------------------------------- the period


def test_board_covers_the_twelve_months_before_now(district):
    p6_decided = at("2026-06-20")
    assert "P8" not in keys(district, street_board(district))
    on_the_day = accountability.board(
        district.members["street member"], district.street, p6_decided + timedelta(days=365)
    )
    assert keys(district, on_the_day)[-1] == "P6"
    a_second_later = accountability.board(
        district.members["street member"],
        district.street,
        p6_decided + timedelta(days=365, seconds=1),
    )
    assert keys(district, a_second_later)[-1] == "P1"
    assert a_second_later.totals.decisions == 6


# ---------------------------------------------------------------- the filters


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("accepted", ["P5", "P4", "P3", "P2", "P1", "P6"]),
        ("rejected", ["P7"]),
        ("not_started", ["P5"]),
        ("in_progress", ["P3"]),
        ("blocked", ["P4"]),
        ("completed", ["P2", "P1"]),
        ("abandoned", ["P6"]),
        ("stale", ["P5", "P4"]),
        ("overdue", ["P4", "P3"]),
    ],
)
def test_filter_by_status(district, status, expected):
    board = street_board(district, status=status)
    assert (keys(district, board), board.status) == (expected, status)


def test_an_unknown_status_filter_shows_everything(district):
    board = street_board(district, status="<script>")
    assert board.status is None
    assert len(board.rows) == 7


def test_filter_by_category(district):
    assert keys(district, street_board(district, category="facilities")) == ["P3", "P1", "P6"]
    assert keys(district, street_board(district, category="environment")) == ["P7", "P2"]


def test_totals_follow_the_filters(district):
    board = street_board(district, status="completed", category="facilities")

    assert keys(district, board) == ["P1"]
    totals = board.totals
    assert (totals.decisions, totals.turnout_mean, totals.on_time_share) == (
        1,
        Fraction(3, 5),
        Fraction(1),
    )
    assert totals.satisfaction.counts == {1: 0, 2: 0, 3: 0, 4: 2, 5: 1}


# ---------------------------------------------------------------- who may read


def test_members_of_the_community_or_a_community_above_may_read_its_board(district):
    members = district.members
    may = {
        (who, where.name)
        for who in ("street member", "garden member", "building member", "bay member")
        for where in (district.street, district.garden, district.building, district.bay)
        if accountability.can_read_board(members[who], where)
    }
    assert may == {
        ("street member", "Happiness Street"),
        ("street member", "Sunny Garden"),
        ("street member", "Building 3"),
        ("street member", "Moon Bay"),
        ("garden member", "Sunny Garden"),
        ("garden member", "Building 3"),
        ("building member", "Building 3"),
        ("bay member", "Moon Bay"),
    }


def test_pending_members_outsiders_and_visitors_may_not_read_the_board(
    district, make_member, make_user
):
    pending = make_member(district.street, status="pending")
    for who in (pending, make_user(), district.members["far member"], None):
        assert not accountability.can_read_board(who, district.street)
        assert not accountability.can_read_board(who, district.garden)
        with pytest.raises(NotFound):
            accountability.board(who, district.garden, NOW)


def test_a_member_of_a_child_community_only_gets_not_found_for_the_parents_board(district):
    with pytest.raises(NotFound):
        accountability.board(district.members["garden member"], district.street, NOW)
    with pytest.raises(NotFound):
        accountability.board_community(district.members["building member"], district.garden.id)


def test_site_admins_may_read_every_board(district, make_user):
    admin = make_user(is_admin=True)
    assert accountability.can_read_board(admin, district.street)


# ---------------------------------------------------------------- downloads


def csv_rows(board) -> list[dict]:
    return list(csv.DictReader(io.StringIO(accountability.board_csv(board))))


def test_csv_has_one_line_per_decision_with_its_figures(district):
    board = street_board(district)
    text = accountability.board_csv(board)
    header = next(csv.reader(io.StringIO(text)))
    assert header == [*accountability.CSV_COLUMNS, *(f"satisfaction_{n}" for n in range(1, 6))]

    rows = csv_rows(board)

    ids = [int(r["proposal_id"]) for r in rows]
    assert ids == [row.proposal_id for row in board.rows]
    p1 = next(r for r in rows if r["title"] == "Repair the lamp")
    assert {k: p1[k] for k in ("community", "result", "turnout", "status", "percent_complete")} == {
        "community": "Sunny Garden",
        "result": "accepted",
        "turnout": "0.600000",
        "status": "completed",
        "percent_complete": "100",
    }
    assert (p1["planned_end"], p1["days_overdue"], p1["on_time"]) == ("2027-03-31", "0", "True")
    assert (p1["ratings"], p1["satisfaction_mean"]) == ("3", "4.3333")
    assert [p1[f"satisfaction_{n}"] for n in range(1, 6)] == ["0", "0", "0", "2", "1"]
    assert p1["decided_at"] == "2027-01-10T02:00:00+00:00"
    p4 = next(r for r in rows if r["title"] == "Cameras at the gate")
    assert (p4["status_reason"], p4["stale"], p4["days_overdue"]) == (
        "Waiting for the permit",
        "True",
        "14",
    )
    p5 = next(r for r in rows if r["title"] == "Bike shed")
    assert (p5["turnout"], p5["planned_end"], p5["on_time"], p5["satisfaction_mean"]) == (
        "",
        "",
        "",
        "",
    )
    assert next(r for r in rows if r["title"] == "Paint the walls pink")["result"] == "rejected"


def test_csv_quotes_a_title_a_spreadsheet_would_run_as_a_formula(district):
    rows = csv_rows(street_board(district))
    benches = next(r for r in rows if int(r["proposal_id"]) == district.proposals["P6"].id)
    assert benches["title"] == "'" + FORMULA_TITLE
    assert not any(value.startswith("=") for r in rows for value in r.values())


def test_csv_follows_the_filters(district):
    rows = csv_rows(street_board(district, status="overdue"))
    assert [r["title"] for r in rows] == ["Cameras at the gate", "Fix the gate"]


def test_json_has_the_totals_and_every_decision(district):
    board = street_board(district, category="facilities")
    document = json.loads(json.dumps(accountability.board_json(board)))

    assert document["community"] == {"id": district.street.id, "name": "Happiness Street"}
    assert document["filters"] == {"status": None, "category": "facilities"}
    assert document["since"] == (NOW - timedelta(days=365)).isoformat()
    # P3 (in progress, 3/4), P1 (completed on time, 3/5), P6 (abandoned, 2/5).
    assert document["totals"] == {
        "decisions": 3,
        "accepted": 3,
        "turnout_mean": "0.5833",
        "on_time": 1,
        "finished_or_due": 2,
        "on_time_share": "0.5000",
        "by_status": {"in_progress": 1, "completed": 1, "abandoned": 1},
        "ratings": 3,
        "satisfaction_mean": "4.3333",
        "satisfaction_counts": {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1},
        "as_decided": {"yes": 2, "partly": 1},
    }
    assert [d["title"] for d in document["decisions"]] == [
        "Fix the gate",
        "Repair the lamp",
        FORMULA_TITLE,
    ]
    gate = document["decisions"][0]
    assert {
        k: gate[k]
        for k in ("result", "turnout", "status", "percent_complete", "days_overdue", "on_time")
    } == {
        "result": "accepted",
        "turnout": "0.750000",
        "status": "in_progress",
        "percent_complete": 40,
        "days_overdue": 45,
        "on_time": None,
    }
    assert gate["planned_end"] == "2027-07-31"
    assert (gate["ratings"], gate["satisfaction_mean"]) == (0, None)


# ---------------------------------------------------------------- pages of rows


def test_the_board_shows_a_page_of_rows_with_the_totals_of_all(district, monkeypatch):
    monkeypatch.setattr(accountability, "PAGE_SIZE", 3)
    pages = {n: street_board(district, page=n) for n in (1, 2, 3, 99)}

    assert [keys(district, pages[n]) for n in (1, 2, 3)] == [
        ["P7", "P5", "P4"],
        ["P3", "P2", "P1"],
        ["P6"],
    ]
    assert (pages[99].page, keys(district, pages[99])) == (3, ["P6"])  # the last page
    assert {(b.pages, b.totals.decisions, b.totals.on_time_share) for b in pages.values()} == {
        (3, 7, Fraction(1, 4))
    }
    everything = accountability.board(
        district.members["street member"], district.street, NOW, page=2, everything=True
    )
    assert keys(district, everything) == ["P7", "P5", "P4", "P3", "P2", "P1", "P6"]
    assert len(csv_rows(everything)) == 7


# ---------------------------------------------------------------- the figures it reads


def recounted(implementation) -> dict:
    """What an implementation's board figures must be, worked out from its milestones and
    its final ratings."""
    db.session.expire_all()
    milestones = implementation.milestones
    ratings = db.session.scalars(
        select(Rating).where(Rating.implementation_id == implementation.id, Rating.stage == "final")
    ).all()
    return {
        "planned_end": max((m.due_on for m in milestones), default=None),
        "next_due": min((m.due_on for m in milestones if m.reached_at is None), default=None),
        **{f"score_{n}": sum(r.satisfaction == n for r in ratings) for n in range(1, 6)},
        **{f"as_{a}": sum(r.as_decided == a for r in ratings) for a in ("yes", "partly", "no")},
    }


def carried(implementation) -> dict:
    db.session.refresh(implementation)
    return {name: getattr(implementation, name) for name in recounted(implementation)}


def test_each_implementation_carries_the_figures_of_its_plan_and_ratings(district):
    """The services keep the figures the board reads (plan, reports, ratings) right."""
    for key in ("P1", "P2", "P3", "P4", "P5", "P6"):
        implementation = work.implementation_of(district.proposals[key])
        assert carried(implementation) == recounted(implementation), key
    lamp = work.implementation_of(district.proposals["P1"])
    assert (lamp.planned_end, lamp.next_due, lamp.on_time) == (date(2027, 3, 31), None, True)
    gate = work.implementation_of(district.proposals["P3"])
    assert (gate.next_due, gate.on_time) == (date(2027, 5, 1), None)  # "Order parts"


def test_a_changed_rating_moves_the_boards_counts(district):
    lamp = work.implementation_of(district.proposals["P1"])
    first_rater = district.members["raters"][0]  # rated 5, "yes"
    work.rate(first_rater, lamp, 2, as_decided="no", now=at("2027-04-10"))
    db.session.commit()

    assert carried(lamp) == recounted(lamp)
    row = row_of(district, street_board(district), "P1")
    assert row.satisfaction.counts == {1: 0, 2: 1, 3: 0, 4: 2, 5: 0}
    assert row.satisfaction.as_decided == {"yes": 1, "partly": 1, "no": 1}
    assert street_board(district).totals.satisfaction.counts == {1: 0, 2: 2, 3: 1, 4: 2, 5: 0}


def test_a_revised_plan_moves_the_end_date_and_the_next_target(district):
    gate = work.implementation_of(district.proposals["P3"])
    work.plan(
        district.members["bay committee"],
        gate,
        work.PlanDraft(
            responsible="Property management",
            milestones=[("Survey", "2027-04-01"), ("Order parts", "2027-06-20")],
        ),
        now=at("2027-06-10"),
    )
    db.session.commit()

    assert (carried(gate)["planned_end"], carried(gate)["next_due"]) == (
        date(2027, 6, 20),
        date(2027, 6, 20),
    )
    row = row_of(district, street_board(district), "P3")
    assert (row.planned_end, row.days_overdue) == (date(2027, 6, 20), 0)
    assert "P3" not in keys(district, street_board(district, status="overdue"))


def at_once(app, jobs: list) -> list:
    """Each job `(prepare, act)` runs in a thread of its own (own app context, session and
    connection, as a POST: BEGIN IMMEDIATE on SQLite): `prepare()` reads what `act(*read)`
    needs, then all threads are released together and act. Returns the errors."""
    barrier = threading.Barrier(len(jobs))
    errors = []

    def run(prepare, act) -> None:
        token = write_intent.set(True)
        try:
            with app.app_context():
                try:
                    read = prepare()
                    db.session.commit()  # hold no write lock while waiting at the barrier
                    barrier.wait(timeout=10)
                    act(*read)
                    db.session.commit()
                except Exception as error:
                    db.session.rollback()
                    errors.append(error)
                finally:
                    db.session.remove()
        finally:
            write_intent.reset(token)

    db.session.commit()  # end the test's read snapshot: its next reads see the threads'
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def rate_at_once(app, implementation_id: int, ratings: list[tuple[int, int, str]]) -> list:
    """Each (user id, score, answer) rates the completed work, all at the same instant."""

    def job(user_id: int, score: int, answer: str):
        def prepare():
            implementation = db.session.get(Implementation, implementation_id)
            assert implementation.status == "completed"
            return db.session.get(User, user_id), implementation

        def act(user, implementation):
            work.rate(user, implementation, score, as_decided=answer, now=at("2027-04-05"))

        return prepare, act

    return at_once(app, [job(*rating) for rating in ratings])


def test_residents_rating_at_the_same_instant_are_all_counted(app, district, make_member):
    lamp = work.implementation_of(district.proposals["P1"])
    raters = [make_member(district.garden) for _ in range(4)]
    db.session.commit()

    errors = rate_at_once(app, lamp.id, [(r.id, 3, "partly") for r in raters])

    assert errors == []
    assert carried(lamp) == recounted(lamp)
    assert carried(lamp)["score_3"] == 4 and carried(lamp)["as_partly"] == 5


def test_one_resident_changing_a_rating_twice_at_once_counts_once(app, district):
    lamp = work.implementation_of(district.proposals["P1"])
    rater = district.members["raters"][0]  # rated 5, "yes"

    errors = rate_at_once(app, lamp.id, [(rater.id, 1, "no"), (rater.id, 2, "no")])

    # Both changes are accepted one after the other, or the later one is told to look
    # again; either way the counts are those of the one rating that stands.
    assert all("look again" in str(e) or "请刷新" in str(e) for e in errors), errors
    assert carried(lamp) == recounted(lamp)
    assert sum(carried(lamp)[f"score_{n}"] for n in range(1, 6)) == 3


def test_two_committee_members_planning_at_the_same_instant_give_one_plan(app, district):
    """A double-submitted first plan: the second waits for the first (row lock) and
    revises it; neither gets an error and the milestones are not doubled."""
    from deliberation.models import Milestone

    benches = decided(
        district.garden, district.members["garden member"], "New benches", at=at("2027-06-01")
    )
    bike_shed = work.implementation_of(benches)  # not planned yet
    committee_id = district.members["garden committee"].id
    implementation_id = bike_shed.id

    def prepare():
        implementation = db.session.get(Implementation, implementation_id)
        assert implementation.milestones == []
        return db.session.get(User, committee_id), implementation

    def act(committee, implementation):
        milestones = [("Order", "2027-07-01"), ("Build", "2027-08-01")]
        draft = work.PlanDraft(responsible="Property management", milestones=milestones)
        work.plan(committee, implementation, draft, now=NOW)

    errors = at_once(app, [(prepare, act), (prepare, act)])

    assert errors == []
    milestones = db.session.scalars(
        select(Milestone).where(Milestone.implementation_id == implementation_id)
    ).all()
    assert sorted((m.position, m.title) for m in milestones) == [(0, "Order"), (1, "Build")]
    assert carried(bike_shed)["planned_end"] == date(2027, 8, 1)
