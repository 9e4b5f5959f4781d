"""privacy: a deleted account keeps its row, emptied (users.erased_at)

A member who deletes their account keeps a users row so that every foreign key to it
still holds, but without phone, email, name or password (community/privacy.py). The
row then has no contact, so the has_contact check allows that for erased rows only.

Revision ID: 0007_privacy
Revises: 0006_board_figures
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_privacy'
down_revision = '0006_board_figures'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f('ck_users_has_contact'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_users_has_contact'),
            'phone IS NOT NULL OR email IS NOT NULL OR erased_at IS NOT NULL',
        )


def downgrade():
    # The old check needs a contact on every row: erased rows get an address that can
    # never receive mail (.invalid is reserved, RFC 2606).
    op.execute(
        "UPDATE users SET email = 'deleted-' || id || '@erased.invalid' "
        "WHERE phone IS NULL AND email IS NULL"
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_users_has_contact'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_users_has_contact'), 'phone IS NOT NULL OR email IS NOT NULL'
        )
        batch_op.drop_column('erased_at')
