"""board figures: each implementation carries the figures of the accountability board

The plan's last target date, the earliest target date not yet reached, whether finished
work was done by the plan's end, and the counts of its final ratings by score and by
"was it done as decided?" answer: kept by the services in the same transaction as the
change they follow, so that a district's board reads one row per decision.

Revision ID: 0006_board_figures
Revises: 0005_audit
Create Date: 2026-12-01

"""
from datetime import UTC
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_board_figures'
down_revision = '0005_audit'
branch_labels = None
depends_on = None

SCORES = [f'score_{n}' for n in range(1, 6)]
ANSWERS = {'as_yes': 'yes', 'as_partly': 'partly', 'as_no': 'no'}


def upgrade():
    with op.batch_alter_table('implementations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('planned_end', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('next_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('on_time', sa.Boolean(), nullable=True))
        for name in [*SCORES, *ANSWERS]:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), server_default='0', nullable=False)
            )
    _backfill()


def _backfill():
    """The figures of the implementations that exist, from their milestones and ratings."""
    implementations = sa.table(
        'implementations',
        sa.column('id', sa.Integer),
        sa.column('community_id', sa.Integer),
        sa.column('status', sa.String),
        sa.column('completed_at', sa.DateTime(timezone=True)),
        sa.column('planned_end', sa.Date),
        sa.column('next_due', sa.Date),
        sa.column('on_time', sa.Boolean),
        *(sa.column(name, sa.Integer) for name in [*SCORES, *ANSWERS]),
    )
    milestones = sa.table(
        'milestones',
        sa.column('implementation_id', sa.Integer),
        sa.column('due_on', sa.Date),
        sa.column('reached_at', sa.DateTime(timezone=True)),
    )
    ratings = sa.table(
        'ratings',
        sa.column('implementation_id', sa.Integer),
        sa.column('stage', sa.String),
        sa.column('satisfaction', sa.Integer),
        sa.column('as_decided', sa.String),
    )
    communities = sa.table(
        'communities', sa.column('id', sa.Integer), sa.column('timezone', sa.String)
    )
    mine = milestones.c.implementation_id == implementations.c.id
    final = sa.and_(
        ratings.c.implementation_id == implementations.c.id, ratings.c.stage == 'final'
    )

    def count_of(condition):
        return sa.select(sa.func.count()).where(final, condition).scalar_subquery()

    values = {
        'planned_end': sa.select(sa.func.max(milestones.c.due_on)).where(mine).scalar_subquery(),
        'next_due': sa.select(sa.func.min(milestones.c.due_on))
        .where(mine, milestones.c.reached_at.is_(None))
        .scalar_subquery(),
        **{f'score_{n}': count_of(ratings.c.satisfaction == n) for n in range(1, 6)},
        **{name: count_of(ratings.c.as_decided == a) for name, a in ANSWERS.items()},
    }
    connection = op.get_bind()
    connection.execute(sa.update(implementations).values(**values))
    # Finished work: done by the plan's last target date in the community's time zone
    # (abandoned work, and completed work without a plan, are not on time).
    finished = connection.execute(
        sa.select(
            implementations.c.id,
            implementations.c.status,
            implementations.c.completed_at,
            implementations.c.planned_end,
            communities.c.timezone,
        )
        .join(communities, communities.c.id == implementations.c.community_id)
        .where(implementations.c.status.in_(['completed', 'abandoned']))
    ).all()
    for iid, status, completed_at, planned_end, zone in finished:
        on_time = False
        if status == 'completed' and planned_end is not None and completed_at is not None:
            if completed_at.tzinfo is None:  # SQLite keeps UTC without an offset
                completed_at = completed_at.replace(tzinfo=UTC)
            on_time = completed_at.astimezone(ZoneInfo(zone)).date() <= planned_end
        connection.execute(
            sa.update(implementations)
            .where(implementations.c.id == iid)
            .values(on_time=on_time)
        )


def downgrade():
    with op.batch_alter_table('implementations', schema=None) as batch_op:
        for name in [*reversed(list(ANSWERS)), *reversed(SCORES)]:
            batch_op.drop_column(name)
        batch_op.drop_column('on_time')
        batch_op.drop_column('next_due')
        batch_op.drop_column('planned_end')
