"""python strategies: uploaded strategy scripts hosted as processes (scripts on disk, state here)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 13:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quantdesk.adapters.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('py_strategies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('file_name', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('started_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('stopped_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('exit_reason', sa.String(length=200), nullable=True),
    sa.Column('is_scheduled', sa.Boolean(), nullable=False),
    sa.Column('schedule_start', sa.String(length=5), nullable=True),
    sa.Column('schedule_stop', sa.String(length=5), nullable=True),
    sa.Column('schedule_days', sa.JSON(), nullable=False),
    sa.Column('env_regular', sa.JSON(), nullable=False),
    sa.Column('env_secure', sa.JSON(), nullable=False),
    sa.Column('created_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('modified_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_py_strategies_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_py_strategies'))
    )
    op.create_index('ix_py_strategies_user_id', 'py_strategies', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_py_strategies_user_id', table_name='py_strategies')
    op.drop_table('py_strategies')
