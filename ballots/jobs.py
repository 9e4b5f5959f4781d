"""Scheduled sweeps of voting rounds: each does all work due at `now`, round by round.

Each round's step (open, close, finalize) is one transaction begun by a conditional UPDATE,
committed on its own so that one failing round neither blocks nor undoes the others; a
failed round is retried by the next sweep. Several processes may run these at once: the
conditional UPDATE lets exactly one of them do each step (DESIGN.md, Scheduled jobs)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ballots import services
from ballots.models import RoundStatus
from web.extensions import db
from web.scheduler import register_sweep

logger = logging.getLogger("yishi.jobs")


def _each_round(status: RoundStatus, step: Callable[[int, datetime], bool], now: datetime) -> int:
    done, failed = 0, []
    for round_id in services.due_round_ids(status, now):
        db.session.commit()  # end the read, so each step begins its own write transaction
        try:
            if step(round_id, now):
                done += 1
            db.session.commit()
        except Exception:
            db.session.rollback()
            logger.exception("round %s: %s failed; the next sweep retries", round_id, step.__name__)
            failed.append(round_id)
    if failed:
        raise RuntimeError(f"{step.__name__} failed for rounds {failed}")
    return done


@register_sweep("open_rounds", every_seconds=5)
def open_rounds(now: datetime) -> int:
    return _each_round(RoundStatus.SCHEDULED, services.open_round, now)


@register_sweep("close_rounds", every_seconds=5)
def close_rounds(now: datetime) -> int:
    """Close and tally rounds whose closing time has passed (also after downtime)."""
    return _each_round(RoundStatus.OPEN, services.close_round, now)


@register_sweep("finalize_rounds", every_seconds=60)
def finalize_rounds(now: datetime) -> int:
    """Publish final results when the objection period ends."""
    return _each_round(RoundStatus.CLOSED, services.finalize_round, now)


@register_sweep("remind_voters", every_seconds=300)
def remind_voters(now: datetime) -> int:
    """Remind voters who have not voted, 24 hours before the close."""
    return services.remind_due_voters(now)
