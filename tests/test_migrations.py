"""The schema goes through the migrations (Flask-Migrate): the migrated schema is the one
the models describe, and a site with data moves down and up again through the recent
migrations without losing a row, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, inspect, select, text

from deliberation.models import Implementation, Milestone, Rating
from web.database import migration_include_object
from web.extensions import db

# The last revisions that change tables holding data; going down to the one before them and
# up again runs each of their upgrades on a site with rows in every table.
DOWN_TO = "0005_audit"


def test_the_migrated_schema_is_the_schema_the_models_describe(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": migration_include_object, "compare_type": False},
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def row_counts() -> dict[str, int]:
    names = [n for n in inspect(db.engine).get_table_names() if not n.startswith("proposal_fts")]
    with db.engine.connect() as connection:
        return {
            name: connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in names
            if name != "alembic_version"
        }


def board_figures() -> dict[int, tuple]:
    return {
        i.id: (i.planned_end, i.next_due, i.on_time, i.score_4, i.score_5, i.as_yes)
        for i in db.session.scalars(select(Implementation))
    }


@pytest.mark.xdist_group("migrations")
def test_a_site_with_data_goes_down_and_up_the_recent_migrations_keeping_every_row(app):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.commit()
    before, figures = row_counts(), board_figures()
    assert before["users"] and before["rounds"] and before["ratings"] and before["audit_entries"]
    assert db.session.scalar(select(func.count()).select_from(Milestone))
    assert db.session.scalar(select(func.count()).select_from(Rating))
    db.session.remove()

    downgrade(revision=DOWN_TO)
    upgrade()

    assert row_counts() == before
    # The board's figures are worked out again from the milestones and ratings.
    assert board_figures() == figures
    assert any(f[0] is not None for f in figures.values())
