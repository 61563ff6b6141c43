"""ids never reused, case-insensitive user names, sessions, sign-in failures

SQLite gives a deleted row's id to the next row unless the table is AUTOINCREMENT: an erased
patient's id (and account id) went to the next new patient, so an erased patient's open tab
read the new patient's record (issue #16). Every table with an integer id is rebuilt as
AUTOINCREMENT (SQLite only; PostgreSQL sequences never give an id twice).

``users.username_key`` holds the casefolded user name and is unique: "Doctor2" and "doctor2"
are one account. ``sessions`` holds signed-in browsers (hashes of their secrets only) and
``sign_in_failures`` counts failed sign-ins in a row, per account and per client.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_TABLES = ("users", "patients", "treatments", "photos", "analyses", "checkins", "notes",
           "lesion_corrections", "audit_log")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _TABLES:
        # Rebuilt (SQLite) with AUTOINCREMENT; the store turns foreign keys off meanwhile.
        with op.batch_alter_table(table, recreate="always" if sqlite else "auto",
                                  table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            if table == "users":
                batch_op.add_column(sa.Column('username_key', sa.String(length=80),
                                              nullable=True))
    users = sa.table("users", sa.column("username", sa.String), sa.column("username_key",
                                                                           sa.String))
    op.execute(users.update().values(username_key=sa.func.lower(users.c.username)))
    with op.batch_alter_table('users', table_kwargs={"sqlite_autoincrement": True}) \
            as batch_op:
        batch_op.alter_column('username_key', existing_type=sa.String(length=80),
                              nullable=False)
        batch_op.create_unique_constraint('uq_users_username_key', ['username_key'])

    op.create_table('sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('ticket_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_hash'),
    sa.UniqueConstraint('token_hash'),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)
    op.create_table('sign_in_failures',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(), nullable=False),
    sa.Column('not_before', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('sign_in_failures')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_user_id'))
    op.drop_table('sessions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_username_key', type_='unique')
        batch_op.drop_column('username_key')
