"""`flask ballots verify ROUND`, `flask ballots board ROUND FILE`, `flask ballots sweep`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from ballots import services
from ballots.models import Round
from community import backup
from crypto import writer
from web.extensions import db


def _round(round_id: int) -> Round:
    found = db.session.get(Round, round_id)
    if found is None:
        raise click.ClickException(f"There is no round {round_id}.")
    if found.round_hash is None:
        raise click.ClickException(f"Round {round_id} has not opened yet: it has no board.")
    return found


def board_report(round_: Round):
    """The standalone verifier's report on a round's board in the live database."""
    from crypto.verify import verify_board

    return verify_board(services.board_document(round_, released_only=False))


def _summary(report) -> str:
    return ", ".join(f"{k}: {v}" for k, v in report.summary.items() if k != "questions")


@backup.restored.connect
def _verify_restored_boards(_app, **_extra) -> list[backup.Verification]:
    """After `flask restore`: every round that has a board (tallied or still open)."""
    rounds = db.session.scalars(
        select(Round).where(Round.round_hash.is_not(None)).order_by(Round.id)
    )
    checks = []
    for round_ in rounds:
        report = board_report(round_)
        detail = _summary(report)
        if not report.ok:
            detail = "; ".join(f"{p.position}: {p.reason}" for p in report.problems[:5])
        checks.append(
            backup.Verification(f"round {round_.id} ({round_.status})", report.ok, detail)
        )
    return checks


def register(app) -> None:
    group = AppGroup("ballots", help="Voting rounds: verify a board, export it.")

    @group.command("verify")
    @click.argument("round_id", type=int)
    def verify_command(round_id: int):
        """Run the standalone verifier on a round's board in the live database (also while
        the round is open: then there is no result to compare yet)."""
        report = board_report(_round(round_id))
        for problem in report.problems:
            click.echo(f"{problem.position}: {problem.reason}", err=True)
        summary = _summary(report)
        if not report.ok:
            raise click.ClickException(f"round {round_id}: the board is NOT valid ({summary})")
        click.echo(f"round {round_id}: the board is valid ({summary})")

    @group.command("board")
    @click.argument("round_id", type=int)
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    def board_command(round_id: int, path: Path):
        """Write a round's board (as published after the close) to PATH."""
        document = services.board_document(_round(round_id), released_only=False)
        path.write_text(writer.document_text(document))
        click.echo(f"wrote {len(document['entries'])} entries to {path}")

    @group.command("sweep")
    def sweep_command():
        """Open, close and finalize every round that is due now (what the scheduler does)."""
        from ballots import jobs
        from web.scheduler import find_sweep, run_sweep

        application = current_app._get_current_object()
        for name in ("open_rounds", "close_rounds", "finalize_rounds", "remind_voters"):
            click.echo(f"{name}: {run_sweep(application, find_sweep(name))}")
        jobs  # noqa: B018  (importing registers the sweeps)

    app.cli.add_command(group)
