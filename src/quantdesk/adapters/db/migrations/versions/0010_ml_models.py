"""ml models: each user's trained LightGBM models, stored predictions and backtests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 16:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quantdesk.adapters.db.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ml_models',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('n_steps_ahead', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('trained_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('performance', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ml_models_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_models')),
    sa.UniqueConstraint('user_id', 'name', name='uq_ml_models_user_id_name')
    )
    op.create_index('ix_ml_models_user_id_symbol_timeframe', 'ml_models', ['user_id', 'symbol', 'timeframe'],
                    unique=False)
    op.create_table('ml_predictions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('model_name', sa.String(length=120), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ml_predictions_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_predictions'))
    )
    op.create_index('ix_ml_predictions_user_id_created_at', 'ml_predictions', ['user_id', 'created_at'],
                    unique=False)
    op.create_table('ml_backtests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('start_date', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('end_date', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ml_backtests_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_backtests'))
    )
    op.create_index('ix_ml_backtests_user_id_created_at', 'ml_backtests', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ml_backtests_user_id_created_at', table_name='ml_backtests')
    op.drop_table('ml_backtests')
    op.drop_index('ix_ml_predictions_user_id_created_at', table_name='ml_predictions')
    op.drop_table('ml_predictions')
    op.drop_index('ix_ml_models_user_id_symbol_timeframe', table_name='ml_models')
    op.drop_table('ml_models')
