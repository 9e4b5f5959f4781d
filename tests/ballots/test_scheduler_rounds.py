"""The rounds' scheduled work (RELIABILITY.md T10–T12, T14, T15; DESIGN.md "Scheduled
jobs"): opening, closing, reminding and finalizing happen exactly once, however often,
however late and from however many threads or processes the sweeps run, and a close
that fails half-way leaves no trace and is finished by the next sweep. Times are given
to the sweeps explicitly (`run_all_due(app, now)`); nothing sleeps to wait for a clock,
except where a real scheduler in real processes is the point."""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from tests.ballots.conftest import T0, T1
from tests.ballots.test_concurrency import (
    Gunicorn,
    board_report,
    entries_of,
    finish_script,
    fresh,
    no_errors,
    race,
    start_script,
)
from tests.conftest import csrf_token
from web.database import read_only

AFTER_OBJECTIONS = T1 + timedelta(days=7)  # the fixtures' rounds have 7 objection days


def notified(kind: str) -> list[int]:
    """The user ids notified with `kind`, one entry per notification."""
    from deliberation.models import Notification

    return sorted(fresh().scalars(select(Notification.user_id).where(Notification.kind == kind)))


def electorate_ids(estate) -> list[int]:
    return sorted([estate.committee.id, *(v.id for v in estate.voters)])


def status_of(round_) -> str:
    session = fresh()
    session.refresh(round_)
    return round_.status


def job_lines(caplog, event: str) -> list[dict]:
    """The scheduler's JSON lines of `event` (ballots.jobs also logs plain tracebacks)."""
    lines = []
    for record in caplog.records:
        message = record.getMessage()
        if record.name == "yishi.jobs" and message.startswith("{"):
            lines.append(json.loads(message))
    return [line for line in lines if line["event"] == event]


def scheduled_proposal(db, community, author, title: str):
    """A proposal that went through support and deliberation: scheduled for a vote."""
    from deliberation.models import Proposal

    proposal = Proposal(
        community_id=community.id,
        author_id=author.id,
        title=title,
        body=f"{title}, please.",
        body_html=f"<p>{title}, please.</p>",
        category="environment",
        status="scheduled",
    )
    db.session.add(proposal)
    db.session.commit()
    return proposal


def sweep_job(app, name: str, now: datetime):
    """A job for `race`: one run of the named sweep, as a scheduler thread would run it."""
    from web.scheduler import _run, find_sweep

    def job(arrive):
        arrive()
        changed, failed = _run(app, find_sweep(name), now)
        assert not failed, f"{name} failed"
        return changed

    return job


def in_step_together(monkeypatch, name: str, parties: int = 2) -> None:
    """Make `ballots.services.<name>` wait until `parties` callers are inside it, so that
    their conditional UPDATEs really race (each after its own due-rounds query)."""
    from ballots import services

    barrier = threading.Barrier(parties, timeout=20)
    original = getattr(services, name)

    def together(*args, **kwargs):
        barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(services, name, together)


def crash_once(monkeypatch, target: str) -> dict:
    """Make the function `module.attribute` raise the first time it is called."""
    module_name, attribute = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("crashed half-way through the close")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, attribute, crashing)
    return calls


@pytest.fixture
def gunicorn(app, database_uri, tmp_path):
    servers = Gunicorn(database_uri, tmp_path / "gunicorn")
    yield servers
    servers.stop_all()


# ---------------------------------------------------------------- T10, T11: closing once, on time


def test_a_round_whose_close_passed_while_down_is_closed_by_the_next_sweep_once(
    app, db, estate, make_round, cast
):
    """T10: nothing ran at closes_at; the first sweep six hours later closes it (voting
    ended at closes_at, not when the job ran), the second changes nothing."""
    round_ = make_round()
    for voter, answer in zip(estate.voters, ("yes", "yes", "no", "abstain"), strict=True):
        cast(voter, round_, {"q1": [answer]})
    from web.scheduler import run_all_due

    late = T1 + timedelta(hours=6)
    first = run_all_due(app, late)
    second = run_all_due(app, late + timedelta(seconds=5))

    assert (first["close_rounds"], second["close_rounds"]) == (1, 0)
    assert first["open_rounds"] == second["open_rounds"] == 0
    assert status_of(round_) == "closed"
    assert round_.closed_at == T1
    assert round_.objections_until == T1 + timedelta(days=7)
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    assert round_.result_data["questions"][0]["counts"] == {"yes": 2, "no": 1, "abstain": 1}
    report = board_report(round_.id)
    assert report.ok, report.problems


def test_two_sweeps_at_the_same_instant_close_a_round_once(
    app, db, estate, make_round, cast, monkeypatch
):
    """T10/T12 in one process: two scheduler threads, each with its own session, both find
    the round due and both try to close it at once."""
    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    in_step_together(monkeypatch, "close_round")

    outcomes = race(app, [sweep_job(app, "close_rounds", T1)] * 2)

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [0, 1]
    assert status_of(round_) == "closed"
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    report = board_report(round_.id)
    assert report.ok, report.problems


CLOSE_IN_STEP = """
from ballots import services
from web.scheduler import _run, find_sweep

here, me, now = Path(sys.argv[1]), sys.argv[2], datetime.fromisoformat(sys.argv[3])
original = services.close_round


def together(round_id, now):
    # Both processes have found the round due; now both try to close it.
    (here / f"ready-{me}").touch()
    deadline = time.monotonic() + 30
    while len(list(here.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.002)
    return original(round_id, now)


services.close_round = together
changed, failed = _run(app, find_sweep("close_rounds"), now)
print(json.dumps({"changed": changed, "failed": failed}))
"""


@pytest.mark.xdist_group("servers")
def test_two_processes_sweeping_at_once_close_a_round_once(
    db, estate, make_round, cast, database_uri, tmp_path
):
    """T10/T12 across processes: two processes with their own engines and connections run
    the close sweep on the same database at the same moment."""
    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    here = tmp_path / "two-closers"
    processes = [
        start_script(
            database_uri, here, "close", CLOSE_IN_STEP, args=[str(here), str(i), T1.isoformat()]
        )
        for i in range(2)
    ]
    results = [finish_script(process) for process in processes]

    assert not any(r["failed"] for r in results), results
    assert sorted(r["changed"] for r in results) == [0, 1]
    assert status_of(round_) == "closed"
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    assert round_.result_data["counted"] == 2


def test_a_restart_before_the_close_still_closes_on_time(app, app_config, db, estate, make_round):
    """T11: sweeps before closes_at leave the round open; after a restart (a new app on the
    same database) the sweep at closes_at closes it."""
    from app import create_app
    from web.extensions import db as database
    from web.scheduler import run_all_due

    round_ = make_round()
    assert run_all_due(app, T1 - timedelta(milliseconds=1))["close_rounds"] == 0
    assert status_of(round_) == "open"
    restarted = create_app(app_config)
    try:
        assert run_all_due(restarted, T1 - timedelta(milliseconds=1))["close_rounds"] == 0
        assert run_all_due(restarted, T1)["close_rounds"] == 1
        assert run_all_due(restarted, T1 + timedelta(seconds=5))["close_rounds"] == 0
    finally:
        with restarted.app_context():
            database.engine.dispose()
    assert status_of(round_) == "closed" and round_.closed_at == T1


def test_a_started_scheduler_catches_up_on_a_round_that_closed_while_down(
    app_config, db, estate, make_round, cast
):
    """T10 with the real scheduler: a round closed (by the real clock) five minutes before
    the server started is closed within seconds of the start, once."""
    from app import create_app
    from web.extensions import db as database
    from web.scheduler import start_scheduler, stop_scheduler

    now = datetime.now(UTC).replace(microsecond=0)
    round_ = make_round(opens_at=now - timedelta(minutes=20), closes_at=now - timedelta(minutes=5))
    cast(estate.voters[0], round_, {"q1": ["yes"]}, now=now - timedelta(minutes=10))
    serving = create_app(dict(app_config, SCHEDULER_ENABLED=True))
    try:
        assert start_scheduler(serving) is not None
        deadline = time.monotonic() + 30
        with read_only():  # on SQLite, polling takes no write lock from the sweeps
            while status_of(round_) == "open" and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop_scheduler(serving)
        with serving.app_context():
            database.engine.dispose()
    assert status_of(round_) == "closed"
    assert round_.closed_at == now - timedelta(minutes=5)
    assert len(entries_of(round_.id, "close")) == 1
    assert notified("round_closed") == electorate_ids(estate)


@pytest.mark.xdist_group("servers")
def test_two_gunicorn_workers_with_schedulers_close_a_round_once(
    db, estate, make_round, cast, gunicorn
):
    """T12: two workers, each running the scheduler (ticking every second); the round
    closes a few seconds after the start, once, and no sweep fails in either worker."""
    now = datetime.now(UTC).replace(microsecond=0)
    closes_at = now + timedelta(seconds=4)
    round_ = make_round(opens_at=closes_at - timedelta(minutes=11), closes_at=closes_at)
    cast(estate.voters[0], round_, {"q1": ["yes"]}, now=now)
    cast(estate.voters[1], round_, {"q1": ["no"]}, now=now)
    server = gunicorn.start(workers=2, SCHEDULER_ENABLED=True, SCHEDULER_TICK_SECONDS=1)
    deadline = time.monotonic() + 40
    with read_only():  # on SQLite, polling takes no write lock from the workers' sweeps
        while status_of(round_) == "open" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert status_of(round_) == "closed", server.log_text()[-3000:]
    time.sleep(2)  # both schedulers sweep again at least once
    log = server.log_text()
    assert log.count('"event": "scheduler_started"') == 2, log[-3000:]
    assert '"job_failed"' not in log and "Traceback" not in log, log[-3000:]
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    assert round_.closed_at == closes_at
    report = board_report(round_.id)
    assert report.ok, report.problems


# ---------------------------------------------------------------- T14: a close that crashes


@pytest.mark.parametrize(
    "target", ["crypto.tally.tally", "crypto.writer.result_payload", "deliberation.services.notify"]
)
def test_a_close_that_crashes_half_way_leaves_no_trace_and_the_next_sweep_finishes(
    app, db, estate, make_round, cast, monkeypatch, caplog, target
):
    """T14: the close fails while tallying, while signing the result, or while notifying
    (after the board entries were added): the round stays open with no close entry, no
    result and no notification, refuses ballots all the same, and the next sweep closes
    it with the tally of the same ballots."""
    from ballots import services
    from web.scheduler import run_all_due

    caplog.set_level(logging.INFO, logger="yishi.jobs")
    round_ = make_round()
    for voter, answer in zip(estate.voters, ("yes", "no", "no", "abstain"), strict=True):
        cast(voter, round_, {"q1": [answer]})
    head_before = (round_.head_n, round_.head_hash)
    entries_before = len(entries_of(round_.id))
    calls = crash_once(monkeypatch, target)

    crashed = run_all_due(app, T1)

    assert calls["n"] == 1
    assert crashed["close_rounds"] == 0
    [failure] = [line for line in job_lines(caplog, "job_failed") if line["job"] == "close_rounds"]
    assert failure["error_type"] == "RuntimeError"
    assert status_of(round_) == "open"
    assert (round_.closed_at, round_.result, round_.objections_until) == (None, None, None)
    assert (round_.head_n, round_.head_hash) == head_before
    assert len(entries_of(round_.id)) == entries_before
    assert entries_of(round_.id, "close") == [] and entries_of(round_.id, "result") == []
    assert notified("round_closed") == []
    with pytest.raises(services.RoundClosed):  # I2: closed by the clock, whatever the job did
        cast(estate.voters[0], round_, {"q1": ["yes"]}, now=T1 + timedelta(seconds=1))
    db.session.rollback()

    finished = run_all_due(app, T1 + timedelta(seconds=5))

    assert finished["close_rounds"] == 1
    assert run_all_due(app, T1 + timedelta(seconds=10))["close_rounds"] == 0
    assert status_of(round_) == "closed" and round_.closed_at == T1
    assert round_.result_data["questions"][0]["counts"] == {"yes": 1, "no": 2, "abstain": 1}
    assert round_.result_data["counted"] == 4
    assert len(entries_of(round_.id, "close")) == 1
    assert len(entries_of(round_.id, "result")) == 1
    assert notified("round_closed") == electorate_ids(estate)
    report = board_report(round_.id)
    assert report.ok, report.problems


# ---------------------------------------------------------------- opening, reminding, finalizing


def test_open_rounds_opens_a_due_round_once_and_moves_its_proposal_to_voting(
    app, db, estate, make_round, monkeypatch
):
    """A scheduled round is opened by the first sweep at or after opens_at (also two at
    once), with one frozen electorate, one setup and one open entry; its proposal moves
    from scheduled to voting once."""
    from ballots.models import Voter
    from ballots.services import QuestionDraft
    from web.scheduler import run_all_due

    proposal = scheduled_proposal(db, estate.community, estate.voters[0], "Plant ginkgo trees")
    round_ = make_round(
        [QuestionDraft(title="Plant the trees?", proposal_id=proposal.id)], opened=False
    )
    assert run_all_due(app, T0 - timedelta(milliseconds=1))["open_rounds"] == 0
    assert status_of(round_) == "scheduled"
    in_step_together(monkeypatch, "open_round")

    outcomes = race(app, [sweep_job(app, "open_rounds", T0 + timedelta(hours=2))] * 2)

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [0, 1]
    monkeypatch.undo()
    assert run_all_due(app, T0 + timedelta(hours=3))["open_rounds"] == 0
    assert status_of(round_) == "open"
    assert round_.opened_at == T0 + timedelta(hours=2)
    voters = fresh().scalars(select(Voter).where(Voter.round_id == round_.id)).all()
    assert len(voters) == 5 == round_.electorate_voters
    assert [e.type for e in entries_of(round_.id)] == ["setup", "open"]
    db.session.refresh(proposal)
    assert proposal.status == "voting"
    report = board_report(round_.id)
    assert report.ok, report.problems


def test_reminders_go_out_once_24_hours_before_the_close_to_those_who_have_not_voted(
    app, db, estate, make_round, cast, monkeypatch
):
    from web.scheduler import run_all_due

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    assert run_all_due(app, T1 - timedelta(hours=24, seconds=1))["remind_voters"] == 0
    assert notified("round_reminder") == []
    in_step_together(monkeypatch, "remind_due_voters")

    outcomes = race(app, [sweep_job(app, "remind_voters", T1 - timedelta(hours=23))] * 2)

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [0, 3]
    monkeypatch.undo()
    assert run_all_due(app, T1 - timedelta(hours=1))["remind_voters"] == 0
    not_voted = sorted([estate.committee.id, estate.voters[2].id, estate.voters[3].id])
    assert notified("round_reminder") == not_voted
    status_of(round_)
    assert round_.reminded_at == T1 - timedelta(hours=23)


def test_no_reminder_for_a_round_whose_close_passed_while_down(app, db, estate, make_round):
    from web.scheduler import run_all_due

    round_ = make_round()
    results = run_all_due(app, T1 + timedelta(hours=1))
    assert results["remind_voters"] == 0 and results["close_rounds"] == 1
    assert notified("round_reminder") == []
    assert status_of(round_) == "closed"


def test_finalize_after_the_objection_period_decides_the_proposals_once(
    app, db, estate, make_round, cast, monkeypatch
):
    """At objections_until (not before) the final result is published and the linked
    proposals become accepted (and go into implementation) or rejected, exactly once (also
    from two threads at once)."""
    from ballots.services import QuestionDraft
    from web.scheduler import run_all_due

    author = estate.voters[0]
    passing = scheduled_proposal(db, estate.community, author, "Repair the gate")
    failing = scheduled_proposal(db, estate.community, author, "Paint the walls pink")
    round_ = make_round(
        [
            QuestionDraft(title="Repair the gate?", proposal_id=passing.id),
            QuestionDraft(title="Paint the walls pink?", proposal_id=failing.id),
        ]
    )
    for voter in estate.voters[:3]:
        cast(voter, round_, {"q1": ["yes"], "q2": ["no"]})
    assert run_all_due(app, T1)["close_rounds"] == 1
    for proposal in (passing, failing):
        db.session.refresh(proposal)
        assert proposal.status == "voting"
    assert run_all_due(app, AFTER_OBJECTIONS - timedelta(seconds=1))["finalize_rounds"] == 0
    assert status_of(round_) == "closed"
    in_step_together(monkeypatch, "finalize_round")

    outcomes = race(app, [sweep_job(app, "finalize_rounds", AFTER_OBJECTIONS)] * 2)

    no_errors(outcomes)
    assert sorted(o.value for o in outcomes) == [0, 1]
    monkeypatch.undo()
    assert run_all_due(app, AFTER_OBJECTIONS + timedelta(days=1))["finalize_rounds"] == 0
    assert status_of(round_) == "final" and round_.final_at == AFTER_OBJECTIONS
    fresh()
    db.session.refresh(passing)
    db.session.refresh(failing)
    # Accepted goes straight on into implementation; each has one recorded decision.
    assert (passing.status, failing.status) == ("implementation", "rejected")
    from deliberation.implementation import decision_of

    assert (decision_of(passing).accepted, decision_of(failing).accepted) == (True, False)
    changed_at = (passing.status_changed_at, failing.status_changed_at)
    assert run_all_due(app, AFTER_OBJECTIONS + timedelta(days=2))["finalize_rounds"] == 0
    db.session.refresh(passing)
    db.session.refresh(failing)
    assert (passing.status_changed_at, failing.status_changed_at) == changed_at
    assert [e.type for e in entries_of(round_.id)][-3:] == ["close", "result", "final"]
    assert notified("round_final") == electorate_ids(estate)
    report = board_report(round_.id)
    assert report.ok, report.problems


def test_an_annulled_round_sends_its_proposal_back_and_is_never_finalized(
    app, db, estate, make_round, cast
):
    """T16-style: the committee annuls a closed round; its proposal is scheduled for a vote
    again (and can go into a new round), the annulment is recorded once, and the finalize
    sweep leaves the annulled round alone."""
    from ballots import services
    from ballots.services import QuestionDraft
    from web.errors import Conflict
    from web.scheduler import run_all_due

    proposal = scheduled_proposal(db, estate.community, estate.voters[0], "Replace the lift")
    round_ = make_round([QuestionDraft(title="Replace the lift?", proposal_id=proposal.id)])
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    assert run_all_due(app, T1)["close_rounds"] == 1
    status_of(round_)
    services.annul_round(
        estate.committee, round_, "The notice was not posted.", now=T1 + timedelta(days=1)
    )
    db.session.commit()
    with pytest.raises(Conflict):
        services.annul_round(estate.committee, round_, "Again.", now=T1 + timedelta(days=2))
    db.session.rollback()

    assert run_all_due(app, AFTER_OBJECTIONS + timedelta(days=1))["finalize_rounds"] == 0
    assert status_of(round_) == "annulled"
    db.session.refresh(proposal)
    assert proposal.status == "scheduled"
    finals = [json.loads(e.payload) for e in entries_of(round_.id, "final")]
    assert [f["outcome"] for f in finals] == ["annulled"]
    assert notified("round_annulled") == electorate_ids(estate)
    assert notified("round_final") == []
    report = board_report(round_.id)
    assert report.ok, report.problems
    # The proposal can be put to the vote again.
    later = T1 + timedelta(days=10)
    again = services.create_round(
        estate.committee,
        estate.community,
        services.RoundDraft(
            title="Spring decisions, again",
            opens_at=later,
            closes_at=later + timedelta(days=7),
            questions=[QuestionDraft(title="Replace the lift?", proposal_id=proposal.id)],
        ),
        now=later - timedelta(days=1),
    )
    db.session.commit()
    assert run_all_due(app, later)["open_rounds"] == 1
    db.session.refresh(proposal)
    assert proposal.status == "voting" and again.id != round_.id


# ---------------------------------------------------------------- T15: time zones and DST


def test_rounds_created_in_local_time_across_a_dst_change_close_at_the_same_utc_instant(
    app, db, estate, make_community, make_member, login_as
):
    """T15: a round of a Shanghai compound (UTC+8, no DST) and one of a Berlin compound
    that opens in winter time (UTC+1) and closes in summer time (UTC+2; the clocks go
    forward on 28 March 2027) are created through the form in local time. Both are stored
    in UTC, close at 10:00 UTC by the same sweep, and are shown in their own zone."""
    from babel.dates import format_datetime

    from ballots.models import Round
    from web.scheduler import run_all_due

    berlin = make_community("Lindenhof", timezone="Europe/Berlin")
    berlin_committee = make_member(berlin, role="committee", area=Decimal("70.00"))
    make_member(berlin, role="owner", area=Decimal("55.00"))
    opening = datetime(2027, 3, 27, 11, 0, tzinfo=UTC)
    closing = datetime(2027, 3, 29, 10, 0, tzinfo=UTC)
    local = {
        "Asia/Shanghai": ("2027-03-27T19:00", "2027-03-29T18:00"),
        "Europe/Berlin": ("2027-03-27T12:00", "2027-03-29T12:00"),
    }
    rounds = {}
    for community, committee in ((estate.community, estate.committee), (berlin, berlin_committee)):
        client = login_as(committee)
        path = f"/c/{community.id}/rounds/new"
        opens, closes = local[community.timezone]
        response = client.post(
            path,
            data={
                "csrf_token": csrf_token(client, path),
                "title": f"Spring vote in {community.name}",
                "opens_at": opens,
                "closes_at": closes,
                "electorate": "residents",
                "secrecy": "secret",
                "objection_days": "7",
                "questions-0-title": "Renew the playground?",
                "questions-0-method": "yes_no_abstain",
                "questions-0-rule": "simple_majority",
                "questions-0-max_choices": "1",
                "questions-0-proposal": "",
            },
        )
        assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
        rounds[community.timezone] = fresh().scalar(
            select(Round).where(Round.community_id == community.id)
        )

    for zone, round_ in rounds.items():
        assert round_.opens_at == opening and round_.closes_at == closing, zone
        assert round_.closes_at.utcoffset() == timedelta(0)
        stored = (
            fresh()
            .execute(
                text("SELECT opens_at, closes_at FROM rounds WHERE id = :id"), {"id": round_.id}
            )
            .one()
        )
        for value, instant in zip(stored, (opening, closing), strict=True):
            if isinstance(value, str):  # SQLite: naive UTC text
                assert value.startswith(instant.strftime("%Y-%m-%d %H:%M:%S")), value
            else:
                assert value == instant, value
    berlin_round = rounds["Europe/Berlin"]
    local_open = berlin_round.opens_at.astimezone(ZoneInfo("Europe/Berlin"))
    local_close = berlin_round.closes_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local_open.utcoffset(), local_close.utcoffset()) == (
        timedelta(hours=1),
        timedelta(hours=2),
    )
    assert berlin_round.closes_at - berlin_round.opens_at == timedelta(hours=47)

    assert run_all_due(app, opening - timedelta(milliseconds=1))["open_rounds"] == 0
    assert run_all_due(app, opening)["open_rounds"] == 2
    assert run_all_due(app, closing - timedelta(milliseconds=1))["close_rounds"] == 0
    assert run_all_due(app, closing)["close_rounds"] == 2
    for zone, round_ in rounds.items():
        assert status_of(round_) == "closed" and round_.closed_at == closing, zone
        manifest = round_.manifest_data
        assert manifest["closes_at"] == "2027-03-29T10:00:00Z"
        committee = estate.committee if zone == "Asia/Shanghai" else berlin_committee
        page = login_as(committee).get(f"/r/{round_.id}").get_data(as_text=True)
        shown = format_datetime(closing, "medium", tzinfo=ZoneInfo(zone), locale="en")
        assert shown in page, (zone, shown)
    report = board_report(berlin_round.id)
    assert report.ok, report.problems
