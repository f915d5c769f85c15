"""breakout: each user's Breakout engine (state, preset document, markets, R counters) and preset changes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 14:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quantdesk.adapters.db.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('breakout_engines',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('preset', sa.String(length=64), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('started_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('symbols', sa.JSON(), nullable=False),
    sa.Column('daily_r', quantdesk.adapters.db.types.Money(), nullable=False),
    sa.Column('daily_r_day', sa.Date(), nullable=True),
    sa.Column('consecutive_losses', sa.Integer(), nullable=False),
    sa.Column('losses_since', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('kill_switch', sa.Boolean(), nullable=False),
    sa.Column('cycle_count', sa.Integer(), nullable=False),
    sa.Column('total_signals', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_breakout_engines_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_breakout_engines'))
    )
    op.create_index(op.f('ix_breakout_engines_state'), 'breakout_engines', ['state'], unique=False)
    op.create_table('breakout_presets',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('updated_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_breakout_presets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'name', name=op.f('pk_breakout_presets'))
    )


def downgrade() -> None:
    op.drop_table('breakout_presets')
    op.drop_index(op.f('ix_breakout_engines_state'), table_name='breakout_engines')
    op.drop_table('breakout_engines')
