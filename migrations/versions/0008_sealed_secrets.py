"""sealed secrets: round keys' and custodial credentials' seeds are encrypted at rest

`rounds.key_seed` and `round_credentials.seed` held 64 hex digits; they now hold the
sealed text of crypto/sealed.py (`s1:` + base64, 99 characters), sealed with the storage
key (YISHI_KEY_FILE, else derived from SECRET_KEY: the application's configuration) for
their column and their row's public key, as ballots/keys.py does. The upgrade seals the
seeds stored in plain text, the downgrade opens them again; both need the site's key
only when there are seeds to change.

Revision ID: 0008_sealed_secrets
Revises: 0007_privacy
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa
from flask import current_app

from crypto import sealed


# revision identifiers, used by Alembic.
revision = '0008_sealed_secrets'
down_revision = '0007_privacy'
branch_labels = None
depends_on = None

BATCH = 1000

# (table, seed column, null allowed, the place a value is sealed for): as ballots/keys.py.
SEEDS = [
    ('rounds', 'key_seed', False, 'rounds.key_seed:{}'),
    ('round_credentials', 'seed', True, 'round_credentials.seed:{}'),
]


def upgrade():
    for table, column, nullable, _place in SEEDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=64),
                type_=sa.String(length=128),
                existing_nullable=nullable,
            )
    _convert(seal=True)


def downgrade():
    _convert(seal=False)
    for table, column, nullable, _place in SEEDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=128),
                type_=sa.String(length=64),
                existing_nullable=nullable,
            )


def _storage_key() -> bytes:
    config = current_app.config
    return sealed.storage_key(config['SECRET_KEY'], config.get('YISHI_KEY_FILE'))


def _convert(seal: bool) -> None:
    """Seal every plain seed (upgrade) or open every sealed one (downgrade), a batch of
    rows at a time; rows already in the target form are left as they are."""
    connection = op.get_bind()
    key = None
    for name, column, _nullable, place in SEEDS:
        table = sa.table(
            name,
            sa.column('id', sa.Integer),
            sa.column('public_key', sa.String),
            sa.column(column, sa.String),
        )
        seed = table.c[column]
        change = (
            sa.update(table)
            .where(table.c.id == sa.bindparam('row_id'))
            .values({column: sa.bindparam('value')})
        )
        last = 0
        while True:
            rows = connection.execute(
                sa.select(table.c.id, table.c.public_key, seed)
                .where(table.c.id > last, seed.is_not(None))
                .order_by(table.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            changes = []
            for row_id, public_key, value in rows:
                if sealed.is_sealed(value) == seal:
                    continue
                key = key or _storage_key()
                context = place.format(public_key)
                if seal:
                    new = sealed.seal(key, bytes.fromhex(value), context)
                else:
                    try:
                        new = sealed.unseal(key, value, context).hex()
                    except sealed.SealError as error:
                        raise RuntimeError(
                            f'{name}.{column} of row {row_id} does not open with the '
                            'storage key of this configuration (SECRET_KEY, YISHI_KEY_FILE)'
                        ) from error
                changes.append({'row_id': row_id, 'value': new})
            if changes:
                connection.execute(change, changes)
