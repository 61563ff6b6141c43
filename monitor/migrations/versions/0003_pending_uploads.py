"""pending uploads: announced before a photo's object is written

An upload writes a ``pending_uploads`` row before it puts the photo's object in storage (a
folder, or an object store shared by several hosts) and removes it when the photo's row is
committed, so the sweep of unreferenced objects never takes the object of an upload in
progress (issue #15).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('pending_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_uploads_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_uploads_sha256'))
    op.drop_table('pending_uploads')
