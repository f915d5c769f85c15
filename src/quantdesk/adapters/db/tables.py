"""Table definitions (SQLAlchemy Core metadata). Rows are not domain objects; repositories map them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from quantdesk.adapters.db.types import Money, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Key/value settings per installation (surfaces' settings pages store their documents here).
app_settings = Table(
    "app_settings",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("user_id", Integer, nullable=True),
    Column("action", String(64), nullable=False),
    Column("detail", Text, nullable=True),
)

# Background jobs (backtests, scans, training...): see services/jobs.py. ``seq`` orders the queue FIFO.
jobs = Table(
    "jobs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("description", Text, nullable=False, default=""),
    Column("reason", Text, nullable=True),
    Column("runner", String(32), nullable=True),  # the dispatcher instance running it
    Column("cpu_cores", Float, nullable=False),
    Column("ram_gb", Float, nullable=False),
    Column("params", JSON, nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
)

# FluxScan tables live in their own module on the same metadata (imported here so migrations see them).
from quantdesk.adapters.db import fluxscan_tables  # noqa: E402, F401

# ======================================================================================
# Trading ledger (adapters/db/ledger.py). One row per trading account; every other trading
# table is keyed by (account_id, ...). Order, fill, position and trade ids are the engine's
# (``ord_12``, ``fill_3``), unique within an account. Money through ``Money``, time ``UtcDateTime``.
# ======================================================================================

def _account_fk(primary_key: bool = True) -> Column:
    return Column("account_id", Integer, ForeignKey("trading_accounts.id", ondelete="CASCADE"),
                  primary_key=primary_key, nullable=False)


trading_accounts = Table(
    "trading_accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # paper | live
    Column("currency", String(16), nullable=False),
    Column("initial_balance", Money, nullable=False),
    # running totals the ledger's invariant needs (wallet = deposits + realized P&L − fees)
    Column("realized_pnl", Money, nullable=False),
    Column("fees_paid", Money, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),  # the last committed batch
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("user_id", "name"),
)

trading_orders = Table(
    "trading_orders",
    metadata,
    _account_fk(),
    Column("id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # creation order within the account
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("type", String(16), nullable=False),
    Column("quantity", Money, nullable=True),  # None: sized at fill time (equity_fraction)
    Column("price", Money, nullable=True),
    Column("stop_price", Money, nullable=True),
    Column("time_in_force", String(8), nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("stop_loss", Money, nullable=True),
    Column("take_profit", Money, nullable=True),
    Column("strategy", String(128), nullable=True),
    Column("tag", String(128), nullable=True),
    Column("client_order_id", String(64), nullable=True),
    Column("equity_fraction", Money, nullable=True),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", Money, nullable=False),
    Column("filled_notional", Money, nullable=False),
    Column("avg_fill_price", Money, nullable=True),
    Column("fees", Money, nullable=False),
    Column("triggered", Boolean, nullable=False),
    Column("reason_code", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("history", JSON, nullable=False),  # [[status, iso time], ...]
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_trading_orders_account_status", "account_id", "status"),
    Index("ix_trading_orders_account_symbol", "account_id", "symbol"),
    Index("ix_trading_orders_account_seq", "account_id", "seq"),
)

trading_fills = Table(
    "trading_fills",
    metadata,
    _account_fk(),
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("fee_asset", String(16), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("reason", String(16), nullable=True),
    Column("filled_at", UtcDateTime, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Index("ix_trading_fills_account_order", "account_id", "order_id"),
)

trading_positions = Table(
    "trading_positions",
    metadata,
    _account_fk(),
    Column("id", String(64), primary_key=True),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("status", String(8), nullable=False),  # open | closed
    Column("leverage", Integer, nullable=False),
    # size, entry, margin and liquidation price while open; kept as last seen once closed
    Column("quantity", Money, nullable=False),
    Column("entry_price", Money, nullable=False),
    Column("margin", Money, nullable=False),
    Column("liquidation_price", Money, nullable=True),
    Column("stop_loss", Money, nullable=True),
    Column("take_profit", Money, nullable=True),
    Column("strategy", String(128), nullable=True),
    Column("realized_pnl", Money, nullable=False),
    Column("fees_paid", Money, nullable=False),
    Column("net_filled", Money, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Index("ix_trading_positions_account_status", "account_id", "status"),
)

# The FIFO entry lots of open positions: exact entry prices, so a restart closes lots as before.
trading_position_lots = Table(
    "trading_position_lots",
    metadata,
    Column("account_id", Integer, primary_key=True),
    Column("position_id", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("initial_risk_per_unit", Money, nullable=True),
    ForeignKeyConstraint(["account_id", "position_id"], ["trading_positions.account_id", "trading_positions.id"],
                         ondelete="CASCADE"),
)

trading_trades = Table(
    "trading_trades",
    metadata,
    _account_fk(),
    Column("id", String(64), primary_key=True),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("entry_price", Money, nullable=False),
    Column("exit_price", Money, nullable=False),
    Column("entry_at", UtcDateTime, nullable=False),
    Column("exit_at", UtcDateTime, nullable=False),
    Column("entry_fee", Money, nullable=False),
    Column("exit_fee", Money, nullable=False),
    Column("pnl", Money, nullable=False),  # net of both fees
    Column("pnl_pct", Money, nullable=False),
    Column("strategy", String(128), nullable=True),
    Column("exit_reason", String(16), nullable=False),
    Column("initial_risk", Money, nullable=True),
    Column("leverage", Integer, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Index("ix_trading_trades_account_exit_at", "account_id", "exit_at"),
)

trading_balances = Table(
    "trading_balances",
    metadata,
    _account_fk(),
    Column("asset", String(16), primary_key=True),
    Column("free", Money, nullable=False),
    Column("locked", Money, nullable=False),
    Column("total", Money, nullable=False),  # the wallet amount
    Column("updated_at", UtcDateTime, nullable=False),
)

# Append-only: one row per committed batch, its events as JSON (amounts as exact decimal text).
trading_journal = Table(
    "trading_journal",
    metadata,
    _account_fk(),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=True),  # engine time of the batch's last event
    Column("committed_at", UtcDateTime, nullable=False),
    Column("equity", Money, nullable=True),
    Column("events", JSON, nullable=False),
)

trading_leverage = Table(
    "trading_leverage",
    metadata,
    _account_fk(),
    Column("symbol", String(32), primary_key=True),
    Column("leverage", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Highest id number used per prefix (ord, fill, pos, trade, sl, tp, liq): a restart never reuses one.
trading_id_counters = Table(
    "trading_id_counters",
    metadata,
    _account_fk(),
    Column("prefix", String(16), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

from quantdesk.adapters.db import bot_state_tables, instrument_tables  # noqa: E402, F401
from quantdesk.adapters.db import breakout_tables as breakout_tables  # noqa: E402, F401
from quantdesk.adapters.db import key_vault_tables as key_vault_tables  # noqa: E402, F401
from quantdesk.adapters.db import ml_model_tables as ml_model_tables  # noqa: E402, F401
from quantdesk.adapters.db import pystrategies_tables as pystrategies_tables  # noqa: E402, F401
