"""`flask ballots verify|board|sweep` on the live database."""

from __future__ import annotations

import json

from sqlalchemy import update

from tests.ballots.conftest import close


def test_verify_reports_a_valid_board_and_names_a_tampered_entry(app, db, estate, make_round, cast):
    from ballots.models import BoardEntry

    round_ = make_round()
    ballot = cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    runner = app.test_cli_runner()
    open_run = runner.invoke(args=["ballots", "verify", str(round_.id)])
    assert open_run.exit_code == 0, open_run.output
    assert "the board is valid" in open_run.output
    close(db, round_)
    assert runner.invoke(args=["ballots", "verify", str(round_.id)]).exit_code == 0

    entry = db.session.query(BoardEntry).filter_by(round_id=round_.id, n=ballot.board_n).one()
    payload = json.loads(entry.payload)
    payload["ballot"]["answers"]["q1"] = ["no"]
    db.session.execute(
        update(BoardEntry)
        .where(BoardEntry.id == entry.id)
        .values(payload=json.dumps(payload, sort_keys=True, separators=(",", ":")))
    )
    db.session.commit()
    tampered = runner.invoke(args=["ballots", "verify", str(round_.id)])
    assert tampered.exit_code != 0
    assert f"{ballot.board_n}:" in tampered.output
    assert "NOT valid" in tampered.output


def test_board_command_writes_what_the_standalone_verifier_accepts(
    app, db, estate, make_round, cast, tmp_path
):
    import subprocess
    import sys

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    close(db, round_)
    path = tmp_path / "board.json"
    result = app.test_cli_runner().invoke(args=["ballots", "board", str(round_.id), str(path)])
    assert result.exit_code == 0, result.output
    verified = subprocess.run(
        [sys.executable, "-m", "crypto.verify", str(path)], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_unknown_or_unopened_round_is_a_clear_error(app, db, make_round):
    round_ = make_round(opened=False)
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["ballots", "verify", "999"])
    assert missing.exit_code != 0 and "no round 999" in missing.output
    unopened = runner.invoke(args=["ballots", "verify", str(round_.id)])
    assert unopened.exit_code != 0 and "has not opened" in unopened.output
