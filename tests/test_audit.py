"""The tamper-evident audit trail (issue 5): privileged actions are chained into one log,
`flask audit verify` names the first altered, missing or reordered entry, the site key
signs the head once a day, concurrent appends keep one chain, and the page shows each
reader what is theirs to read."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from community import audit
from community.audit import AuditEntry, AuditHeadSignature
from crypto import audit as chain
from tests.conftest import PASSWORD

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def actions(db) -> list[str]:
    db.session.commit()
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.n)))


def some_entries(db, count: int = 5) -> None:
    for i in range(count):
        audit.record("roll.invites", subject=("test", i), details={"count": i})
        db.session.commit()


def tamper(db, *statements: str) -> None:
    db.session.commit()
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


# ---------------------------------------------------------------- what is recorded


def test_privileged_actions_of_each_package_are_chained(db, make_community, make_member):
    from ballots import services as ballots
    from community import services
    from community.models import Membership
    from deliberation import services as deliberation
    from tests.deliberation.test_proposals import propose, require_support

    place = make_community("Sunny Garden")
    admin = make_member(place, role="admin")
    committee = make_member(place, role="committee")
    moderator = make_member(place, role="moderator")
    applicant = make_member(place, status="pending")
    resident = make_member(place)
    pending = db.session.scalar(select(Membership).where(Membership.user_id == applicant.id))
    services.decide_join(moderator, pending, approve=True)
    services.assign_role(admin, pending, "owner")
    services.import_roll(committee, place, "unit,owner_name,phone,private_area\nB1-101,Li,,80\n")
    db.session.commit()
    require_support(place, 10)
    proposal = propose(resident, place)
    deliberation.hide_proposal(moderator, proposal, "Off topic here.")
    db.session.commit()
    draft = ballots.RoundDraft(
        title="Fence",
        opens_at=T0,
        closes_at=T0 + timedelta(days=7),
        electorate="residents",
        secrecy="secret",
        objection_days=7,
        questions=[ballots.QuestionDraft(title="Paint?", method="yes_no_abstain")],
    )
    round_ = ballots.create_round(committee, place, draft, now=T0 - timedelta(days=1))
    db.session.commit()
    assert ballots.open_round(round_.id, T0)
    db.session.commit()
    assert ballots.close_round(round_.id, T0 + timedelta(days=7))
    db.session.commit()

    assert actions(db) == [
        "member.approved",
        "member.role",
        "roll.imported",
        "moderation.hide",
        "round.created",
        "round.closed",
    ]
    role = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "member.role"))
    assert (role.actor_id, role.community_id) == (admin.id, place.id)
    assert role.details_data == {"user": applicant.id, "from": "resident", "to": "owner"}
    closed = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "round.closed"))
    assert closed.actor_id is None and closed.details_data == {"ballots": 0, "counted": 0}
    report = audit.verify()
    assert report.ok and report.count == 6


def test_a_rolled_back_action_leaves_no_entry(db):
    audit.record("roll.invites", details={"count": 1})
    db.session.rollback()
    some_entries(db, 1)
    assert db.session.scalar(select(AuditEntry.n)) == 0


def test_details_refuse_floats(db):
    with pytest.raises(ValueError):
        audit.record("roll.invites", details={"share": 0.5})


# ---------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("statements", "position", "reason"),
    [
        (["UPDATE audit_entries SET details = '{\"count\":9}' WHERE n = 2"], 2, "altered"),
        (["UPDATE audit_entries SET subject_id = 42 WHERE n = 3"], 3, None),
        (["DELETE FROM audit_entries WHERE n = 2"], 2, "missing"),
        (["DELETE FROM audit_entries WHERE n = 4"], 4, "missing"),
        (
            [
                "UPDATE audit_entries SET n = 100 WHERE n = 1",
                "UPDATE audit_entries SET n = 1 WHERE n = 3",
                "UPDATE audit_entries SET n = 3 WHERE n = 100",
            ],
            1,
            "reordered",
        ),
        (
            [
                "UPDATE audit_entries SET n = 100 WHERE n = 2",
                "UPDATE audit_entries SET n = 2 WHERE n = 3",
                "UPDATE audit_entries SET n = 3 WHERE n = 100",
            ],
            2,
            "reordered",
        ),
        (["UPDATE audit_entries SET at = '2020-01-01 00:00:00' WHERE n = 0"], 0, "altered"),
    ],
    ids=[
        "edit details",
        "edit subject",
        "delete one",
        "delete the last",
        "swap two",
        "swap neighbours",
        "edit time",
    ],
)
def test_tampering_is_named_with_its_position(db, statements, position, reason):
    some_entries(db, 5)
    assert audit.verify().ok
    tamper(db, *statements)
    problem = audit.verify().problem
    assert problem is not None
    assert problem.position == position
    assert problem.reason == (reason or "altered")


def test_a_rewritten_tail_is_caught_by_the_signed_head(db):
    some_entries(db, 3)
    assert audit.sign_daily_head(T0) == 1
    db.session.commit()
    # Rewrite entry 2 and everything after it consistently, head row included.
    row = db.session.get(AuditEntry, 2)
    forged = chain.entry_hash(
        bytes.fromhex(row.prev_hash),
        {
            "n": 2,
            "at": "2026-12-01T00:00:00Z",
            "community": None,
            "actor": None,
            "action": row.action,
            "subject": {"kind": row.subject_kind, "id": row.subject_id},
            "details": {"count": 99},
        },
    ).hex()
    at = "2026-12-01 00:00:00" if db.engine.dialect.name == "sqlite" else "2026-12-01 00:00:00+00"
    tamper(
        db,
        f"UPDATE audit_entries SET details = '{{\"count\":99}}', at = '{at}', "
        f"hash = '{forged}' WHERE n = 2",
        f"UPDATE audit_head SET hash = '{forged}'",
    )
    problem = audit.verify().problem
    assert (problem.position, problem.reason) == (2, "altered")
    assert "signed on 2026-12-01" in problem.detail


# ---------------------------------------------------------------- the daily signed head


def test_the_head_is_signed_once_a_day_with_the_site_key(app, db):
    from web.scheduler import find_sweep, run_sweep

    some_entries(db, 2)
    sweep = find_sweep("sign_audit_head")
    assert run_sweep(app, sweep, T0 + timedelta(hours=1)) == 1
    assert run_sweep(app, sweep, T0 + timedelta(hours=9)) == 0
    some_entries(db, 1)
    assert run_sweep(app, sweep, T0 + timedelta(days=1)) == 1
    db.session.commit()
    rows = db.session.scalars(select(AuditHeadSignature).order_by(AuditHeadSignature.day)).all()
    assert [(r.day.isoformat(), r.n) for r in rows] == [("2026-12-01", 1), ("2026-12-02", 2)]
    key = chain.public_key(chain.site_seed(app.config["SECRET_KEY"]))
    assert rows[0].public_key == key == audit.site_public_key()
    value = chain.head_value("2026-12-01", 1, rows[0].hash)
    assert chain.verify_head(key, value, rows[0].signature)
    assert not chain.verify_head(key, dict(value, n=0), rows[0].signature)
    assert audit.verify().ok
    tamper(db, "UPDATE audit_head_signatures SET n = 0 WHERE n = 1")
    problem = audit.verify().problem
    assert (problem.position, problem.reason) == (0, "bad signature")


# ---------------------------------------------------------------- concurrency


def test_concurrent_appends_keep_one_chain(app, db):
    from web.database import write_intent

    some_entries(db, 1)
    threads, errors, per_thread = 6, [], 3
    barrier = threading.Barrier(threads)

    def append(i: int) -> None:
        token = write_intent.set(True)
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                for k in range(per_thread):
                    audit.record("roll.invites", subject=("thread", i), details={"k": k})
                    db.session.commit()
                db.session.remove()
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            write_intent.reset(token)

    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not errors, errors
    db.session.commit()
    numbers = list(db.session.scalars(select(AuditEntry.n).order_by(AuditEntry.n)))
    assert numbers == list(range(1 + threads * per_thread))
    report = audit.verify()
    assert report.ok, report.problem


# ---------------------------------------------------------------- the command and the page


def test_flask_audit_verify_reports_ok_or_the_first_bad_position(app, db):
    some_entries(db, 3)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 3 entries" in result.output
    tamper(db, "DELETE FROM audit_entries WHERE n = 1")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "entry 1: missing" in result.output


def test_committee_reads_the_whole_log_members_the_moderation_part(
    app, db, make_community, make_member, make_user, login_as
):
    place = make_community("Sunny Garden")
    other = make_community("Maple Court")
    committee = make_member(place, role="committee")
    resident = make_member(place)
    outsider = make_member(other)
    audit.record("round.created", actor=committee, community_id=place.id, subject=("round", 7))
    audit.record("moderation.hide", community_id=place.id, details={"reason": "Spam link."})
    audit.record("round.created", community_id=other.id, details={"secret": "Maple only"})
    db.session.commit()
    path = f"/c/{place.id}/audit"

    page = login_as(committee).get(path)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Spam link." in body and "round 7" in body and "Maple only" not in body

    body = login_as(resident).get(path).get_data(as_text=True)
    assert "Spam link." in body and "round 7" not in body

    assert login_as(outsider).get(path).status_code == 403
    assert login_as(make_user()).get(path).status_code == 403
    assert app.test_client().get(path).status_code == 302
    assert PASSWORD  # the factories log in with it


def test_an_exported_log_verifies_outside_the_application(app, db, tmp_path, capsys):
    import json

    some_entries(db, 3)
    assert audit.sign_daily_head(T0) == 1
    db.session.commit()
    target = tmp_path / "audit.json"
    result = app.test_cli_runner().invoke(args=["audit", "export", str(target)])
    assert result.exit_code == 0, result.output
    assert chain.main([str(target), "--key", audit.site_public_key()]) == 0
    document = json.loads(target.read_text())
    document["entries"][1]["details"]["count"] = 7
    target.write_text(json.dumps(document))
    assert chain.main([str(target)]) == 1
    assert "entry 1: altered" in capsys.readouterr().out
