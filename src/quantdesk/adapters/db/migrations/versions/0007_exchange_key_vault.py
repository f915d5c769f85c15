"""exchange key vault and ML strategies: a user's encrypted exchange API keys and configured strategies

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quantdesk.adapters.db.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exchange_api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=32), nullable=False),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=True),
    sa.Column('api_key_encrypted', sa.Text(), nullable=False),
    sa.Column('api_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('api_key_hint', sa.String(length=16), nullable=False),
    sa.Column('api_secret_hint', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exchange_api_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_api_keys'))
    )
    op.create_index('ix_exchange_api_keys_user_id_active', 'exchange_api_keys', ['user_id', 'active'], unique=False)
    op.create_table('ml_strategies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', quantdesk.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ml_strategies_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_strategies'))
    )
    op.create_index('ix_ml_strategies_user_id', 'ml_strategies', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ml_strategies_user_id', table_name='ml_strategies')
    op.drop_table('ml_strategies')
    op.drop_index('ix_exchange_api_keys_user_id_active', table_name='exchange_api_keys')
    op.drop_table('exchange_api_keys')
