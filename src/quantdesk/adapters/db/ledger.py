"""SqlLedgerStore: the engine's LedgerStore on SQLAlchemy Core, SQLite or PostgreSQL.

:meth:`SqlLedgerStore.commit` writes one :class:`~quantdesk.engine.ports.LedgerBatch` in ONE
transaction: the journal row (its primary key ``(account, sequence)`` refuses a batch applied
twice or a second writer), upserts of orders, positions (with their FIFO lots) and balances,
inserts of fills and closed trades, leverage settings, id counters and the account's running
totals. Either all of it is stored or none of it (a crash mid-commit leaves the previous state).

:meth:`SqlLedgerStore.load` reads back a :class:`~quantdesk.engine.ports.LedgerSnapshot` for
``Kernel.restore``; the ``list_*``/``get_*`` methods are the queries the HTTP layer needs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from quantdesk.adapters.db.tables import (
    trading_accounts,
    trading_balances,
    trading_fills,
    trading_id_counters,
    trading_journal,
    trading_leverage,
    trading_orders,
    trading_position_lots,
    trading_positions,
    trading_trades,
)
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.events import Event, LeverageChanged
from quantdesk.core.money import MONEY_CONTEXT
from quantdesk.core.orders import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from quantdesk.core.portfolio import (
    Balance,
    ExitReason,
    Fill,
    Liquidity,
    Lot,
    Position,
    PositionSide,
    RoundTrip,
)
from quantdesk.engine.ports import LedgerBatch, LedgerSnapshot

ZERO = Decimal(0)
OPEN_STATUSES = (OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)
_ORDER_SLOTS = 100_000  # orders per batch in the creation sequence ``batch.sequence × slots + index``


# ------------------------------------------------------------------ accounts


@dataclass(frozen=True, slots=True)
class TradingAccount:
    """A trading account row: ``kind`` is ``paper`` or ``live``; ``initial_balance`` in ``currency``."""

    id: int
    user_id: int | None
    name: str
    kind: str
    currency: str
    initial_balance: Decimal
    created_at: datetime


def _account(row: Any) -> TradingAccount:
    return TradingAccount(row.id, row.user_id, row.name, row.kind, row.currency, row.initial_balance, row.created_at)


def create_trading_account(engine: Engine, *, currency: str, initial_balance: Decimal, name: str = "paper",
                           kind: str = "paper", user_id: int | None = None,
                           created_at: datetime | None = None) -> TradingAccount:
    """Create an account with its opening balance (one transaction); return it."""
    if initial_balance < 0:
        raise InvalidInputError(f"initial_balance must not be negative, got {initial_balance}", field="initial_balance")
    at = created_at or datetime.now(UTC)
    with engine.begin() as conn:
        res = conn.execute(insert(trading_accounts).values(
            user_id=user_id, name=name, kind=kind, currency=currency, initial_balance=initial_balance,
            realized_pnl=ZERO, fees_paid=ZERO, last_sequence=0, created_at=at, updated_at=at))
        account_id = res.inserted_primary_key[0]
        if initial_balance > 0:
            conn.execute(insert(trading_balances).values(account_id=account_id, asset=currency, free=initial_balance,
                                                         locked=ZERO, total=initial_balance, updated_at=at))
    return TradingAccount(account_id, user_id, name, kind, currency, initial_balance, at)


def get_trading_account(engine: Engine, account_id: int) -> TradingAccount | None:
    """The account with ``account_id``, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(trading_accounts).where(trading_accounts.c.id == account_id)).first()
    return _account(row) if row else None


def list_trading_accounts(engine: Engine, user_id: int | None = None) -> list[TradingAccount]:
    """Accounts of ``user_id`` (every account when None), oldest first."""
    q = select(trading_accounts).order_by(trading_accounts.c.id)
    if user_id is not None:
        q = q.where(trading_accounts.c.user_id == user_id)
    with engine.connect() as conn:
        return [_account(r) for r in conn.execute(q)]


# ------------------------------------------------------------------ read models


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """A stored position, open or closed; size, entry and margin are the last seen while open."""

    id: str
    symbol: str
    side: PositionSide
    status: str
    leverage: int
    quantity: Decimal
    entry_price: Decimal
    margin: Decimal
    liquidation_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy: str | None
    realized_pnl: Decimal
    fees_paid: Decimal
    opened_at: datetime
    updated_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TradePage:
    """One page of closed trades (newest first) and the total matching the filter."""

    trades: list[RoundTrip]
    total: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One committed batch: its sequence, engine time, equity and events (JSON, amounts as decimal text)."""

    sequence: int
    at: datetime | None
    committed_at: datetime
    equity: Decimal | None
    events: list[dict[str, Any]]


# ------------------------------------------------------------------ row mapping


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact; Decimal(str(d)) == d
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def event_json(event: Event) -> dict[str, Any]:
    """An event as a JSON object: ``{"event": "OrderFilled", ...fields}``, amounts as exact decimal text."""
    return {"event": type(event).__name__, **_plain(event)}


def _order_row(account_id: int, order: Order, seq: int) -> dict[str, Any]:
    return {
        "account_id": account_id, "id": order.id, "seq": seq, "symbol": order.symbol, "side": order.side.value,
        "type": order.type.value, "quantity": order.quantity, "price": order.price, "stop_price": order.stop_price,
        "time_in_force": order.time_in_force.value, "reduce_only": order.reduce_only,
        "stop_loss": order.stop_loss, "take_profit": order.take_profit, "strategy": order.strategy,
        "tag": order.tag, "client_order_id": order.client_order_id, "equity_fraction": order.equity_fraction,
        "status": order.status.value, "filled_quantity": order.filled_quantity,
        "filled_notional": order.filled_notional, "avg_fill_price": order.avg_fill_price, "fees": order.fees,
        "triggered": order.triggered, "reason_code": order.reason_code, "reason": order.reason,
        "history": [[s.value, at.isoformat()] for s, at in order.history],
        "created_at": order.created_at, "updated_at": order.updated_at or order.created_at,
    }


def _order(row: Any) -> Order:
    return Order(
        id=row.id, symbol=row.symbol, side=OrderSide(row.side), type=OrderType(row.type), quantity=row.quantity,
        created_at=row.created_at, price=row.price, stop_price=row.stop_price,
        time_in_force=TimeInForce(row.time_in_force), reduce_only=bool(row.reduce_only), stop_loss=row.stop_loss,
        take_profit=row.take_profit, strategy=row.strategy, tag=row.tag, client_order_id=row.client_order_id,
        equity_fraction=row.equity_fraction, status=OrderStatus(row.status), filled_quantity=row.filled_quantity,
        filled_notional=row.filled_notional, fees=row.fees, updated_at=row.updated_at,
        triggered=bool(row.triggered), reason_code=row.reason_code, reason=row.reason,
        history=[(OrderStatus(s), datetime.fromisoformat(t)) for s, t in row.history],
    )


def _fill_row(account_id: int, fill: Fill, sequence: int) -> dict[str, Any]:
    return {
        "account_id": account_id, "id": fill.id, "order_id": fill.order_id, "symbol": fill.symbol,
        "side": fill.side.value, "quantity": fill.quantity, "price": fill.price, "fee": fill.fee,
        "fee_asset": fill.fee_asset, "liquidity": fill.liquidity.value,
        "reason": fill.reason.value if fill.reason is not None else None, "filled_at": fill.filled_at,
        "sequence": sequence,
    }


def _fill(row: Any) -> Fill:
    return Fill(row.id, row.order_id, row.symbol, OrderSide(row.side), row.quantity, row.price, row.fee,
                row.fee_asset, row.filled_at, Liquidity(row.liquidity),
                ExitReason(row.reason) if row.reason is not None else None)


def _trade_row(account_id: int, trip: RoundTrip, sequence: int) -> dict[str, Any]:
    return {
        "account_id": account_id, "id": trip.id, "symbol": trip.symbol, "side": trip.side.value,
        "quantity": trip.quantity, "entry_price": trip.entry_price, "exit_price": trip.exit_price,
        "entry_at": trip.entry_at, "exit_at": trip.exit_at, "entry_fee": trip.entry_fee,
        "exit_fee": trip.exit_fee, "pnl": trip.pnl, "pnl_pct": trip.pnl_pct, "strategy": trip.strategy,
        "exit_reason": trip.exit_reason.value, "initial_risk": trip.initial_risk, "leverage": trip.leverage,
        "sequence": sequence,
    }


def _trade(row: Any) -> RoundTrip:
    return RoundTrip(row.id, row.symbol, PositionSide(row.side), row.quantity, row.entry_price, row.exit_price,
                     row.entry_at, row.exit_at, row.entry_fee, row.exit_fee, row.strategy,
                     ExitReason(row.exit_reason), row.initial_risk, row.leverage)


def _position_record(row: Any) -> PositionRecord:
    return PositionRecord(row.id, row.symbol, PositionSide(row.side), row.status, row.leverage, row.quantity,
                          row.entry_price, row.margin, row.liquidation_price, row.stop_loss, row.take_profit,
                          row.strategy, row.realized_pnl, row.fees_paid, row.opened_at, row.updated_at,
                          row.closed_at)


def _id_number(identifier: str) -> tuple[str, int] | None:
    prefix, _, number = identifier.rpartition("_")
    return (prefix, int(number)) if prefix and number.isdigit() else None


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...],
            update: Iterable[str] | None = None) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike."""
    if not rows:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    columns = list(update) if update is not None else [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys],
                                      set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, rows)


# ------------------------------------------------------------------ the store


class SqlLedgerStore:
    """Persist one account's ledger batches and read them back (LedgerStore and LedgerSource ports).

    ``recent_trades`` bounds how many closed trades :meth:`load` returns. The engine is not
    thread-safe and neither is the write side here: one kernel writes one account.
    """

    def __init__(self, engine: Engine, account_id: int, *, recent_trades: int = 500):
        self._engine = engine
        self.account_id = account_id
        self.recent_trades = recent_trades

    # -------------------------------------------------------------- write

    def commit(self, batch: LedgerBatch) -> None:
        """Write ``batch`` in one transaction; on any error nothing of it is stored and the error propagates."""
        aid = self.account_id
        now = datetime.now(UTC)
        seq = batch.sequence
        with self._engine.begin() as conn:
            # journal first: a duplicate sequence (batch replayed, a second writer) fails before anything else
            conn.execute(insert(trading_journal).values(
                account_id=aid, sequence=seq, at=max((e.at for e in batch.events), default=None),
                committed_at=now, equity=batch.equity, events=[event_json(e) for e in batch.events]))
            _upsert(conn, trading_orders, [_order_row(aid, o, seq * _ORDER_SLOTS + i) for i, o in enumerate(batch.orders)],
                    ("account_id", "id"),
                    [c.name for c in trading_orders.columns if c.name not in ("account_id", "id", "seq", "created_at")])
            if batch.fills:
                conn.execute(insert(trading_fills), [_fill_row(aid, f, seq) for f in batch.fills])
            self._write_positions(conn, batch)
            if batch.trades:
                conn.execute(insert(trading_trades), [_trade_row(aid, t, seq) for t in batch.trades])
            _upsert(conn, trading_balances, [
                {"account_id": aid, "asset": b.asset, "free": b.free, "locked": b.locked, "total": b.total,
                 "updated_at": now} for b in batch.balances], ("account_id", "asset"))
            leverage = {e.symbol: e for e in batch.events if isinstance(e, LeverageChanged)}
            _upsert(conn, trading_leverage, [{"account_id": aid, "symbol": s, "leverage": e.leverage,
                                              "updated_at": e.at} for s, e in leverage.items()],
                    ("account_id", "symbol"))
            self._write_counters(conn, batch)
            self._write_totals(conn, batch, now)

    def _write_positions(self, conn: sa.Connection, batch: LedgerBatch) -> None:
        aid = self.account_id
        if not batch.positions:
            return
        # the engine's liquidation price is the stop of the position's live liquidation order
        liq = {o.symbol: o.stop_price for o in batch.orders if o.id.startswith("liq_") and o.status.is_open}
        open_rows, closed_rows, lots = [], [], []
        for p in batch.positions:
            row = {"account_id": aid, "id": p.id, "symbol": p.symbol, "side": p.side.value,
                   "leverage": p.leverage, "stop_loss": p.stop_loss, "take_profit": p.take_profit,
                   "strategy": p.strategy, "realized_pnl": p.realized_pnl, "fees_paid": p.fees_paid,
                   "net_filled": p.net_filled, "opened_at": p.opened_at, "updated_at": p.updated_at}
            if p.is_open:
                row.update(status="open", quantity=p.quantity, entry_price=p.entry_price, margin=p.margin,
                           liquidation_price=liq.get(p.symbol), closed_at=None)
                open_rows.append(row)
                lots.extend({"account_id": aid, "position_id": p.id, "idx": i, "quantity": lot.quantity,
                             "price": lot.price, "fee": lot.fee, "opened_at": lot.opened_at,
                             "initial_risk_per_unit": lot.initial_risk_per_unit} for i, lot in enumerate(p.lots))
            else:
                # size, entry and margin stay as last seen open (zero if it opened and closed in this batch)
                row.update(status="closed", quantity=ZERO, entry_price=ZERO, margin=ZERO, liquidation_price=None,
                           closed_at=p.updated_at)
                closed_rows.append(row)
        _upsert(conn, trading_positions, open_rows, ("account_id", "id"))
        _upsert(conn, trading_positions, closed_rows, ("account_id", "id"),
                ["status", "stop_loss", "take_profit", "realized_pnl", "fees_paid", "net_filled", "updated_at",
                 "closed_at"])
        ids = [p.id for p in batch.positions]
        conn.execute(sa.delete(trading_position_lots).where(trading_position_lots.c.account_id == aid,
                                                            trading_position_lots.c.position_id.in_(ids)))
        if lots:
            conn.execute(insert(trading_position_lots), lots)

    def _write_counters(self, conn: sa.Connection, batch: LedgerBatch) -> None:
        highest: dict[str, int] = {}
        for identifier in [o.id for o in batch.orders] + [f.id for f in batch.fills] \
                + [p.id for p in batch.positions] + [t.id for t in batch.trades]:
            parsed = _id_number(identifier)
            if parsed is not None and parsed[1] > highest.get(parsed[0], 0):
                highest[parsed[0]] = parsed[1]
        if not highest:
            return
        t = trading_id_counters
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.account_id, t.c.prefix],
            set_={"value": sa.case((stmt.excluded.value > t.c.value, stmt.excluded.value), else_=t.c.value)})
        conn.execute(stmt, [{"account_id": self.account_id, "prefix": k, "value": v} for k, v in highest.items()])

    def _write_totals(self, conn: sa.Connection, batch: LedgerBatch, now: datetime) -> None:
        a = trading_accounts
        row = conn.execute(select(a.c.realized_pnl, a.c.fees_paid).where(a.c.id == self.account_id)
                           .with_for_update()).first()
        if row is None:
            raise NotFoundError("trading account", self.account_id, code="ACCOUNT_NOT_FOUND")
        realized, fees = row.realized_pnl, row.fees_paid
        for trip in batch.trades:
            realized = MONEY_CONTEXT.add(realized, trip.gross_pnl)
        for fill in batch.fills:
            fees = MONEY_CONTEXT.add(fees, fill.fee)
        conn.execute(sa.update(a).where(a.c.id == self.account_id).values(
            realized_pnl=realized, fees_paid=fees, last_sequence=batch.sequence, updated_at=now))

    # -------------------------------------------------------------- read

    def load(self, account_id: int | None = None) -> LedgerSnapshot:
        """Everything ``Kernel.restore`` needs for the account, read in one transaction.

        Raises NotFoundError (``ACCOUNT_NOT_FOUND``) for an unknown account.
        """
        aid = self.account_id if account_id is None else account_id
        with self._engine.begin() as conn:
            acct = conn.execute(select(trading_accounts).where(trading_accounts.c.id == aid)).first()
            if acct is None:
                raise NotFoundError("trading account", aid, code="ACCOUNT_NOT_FOUND")
            wallets = {r.asset: r.total for r in conn.execute(
                select(trading_balances).where(trading_balances.c.account_id == aid))}
            positions = self._open_positions(conn, aid)
            o = trading_orders
            orders = [_order(r) for r in conn.execute(
                select(o).where(o.c.account_id == aid, o.c.status.in_(OPEN_STATUSES)).order_by(o.c.seq))]
            leverage = {r.symbol: r.leverage for r in conn.execute(
                select(trading_leverage).where(trading_leverage.c.account_id == aid))}
            counters = {r.prefix: r.value for r in conn.execute(
                select(trading_id_counters).where(trading_id_counters.c.account_id == aid))}
            trades = self._trades(conn, aid, None, None, None, self.recent_trades, 0)
        trades.reverse()
        return LedgerSnapshot(
            currency=acct.currency, sequence=acct.last_sequence, wallets=wallets, deposited=acct.initial_balance,
            realized_pnl=acct.realized_pnl, fees_paid=acct.fees_paid, positions=positions, open_orders=orders,
            leverage=leverage, id_counters=counters, trades=trades)

    def _open_positions(self, conn: sa.Connection, aid: int) -> list[Position]:
        p, lt = trading_positions, trading_position_lots
        # creation order, as the kernel holds them: ids ``pos_<account>_<n>`` break ties of opened_at
        # (by length, then text, so pos_1_10 follows pos_1_9)
        rows = conn.execute(select(p).where(p.c.account_id == aid, p.c.status == "open")
                            .order_by(p.c.opened_at, sa.func.length(p.c.id), p.c.id))
        positions = {r.id: Position(r.id, r.symbol, PositionSide(r.side), r.leverage, r.opened_at,
                                    stop_loss=r.stop_loss, take_profit=r.take_profit, strategy=r.strategy,
                                    realized_pnl=r.realized_pnl, fees_paid=r.fees_paid, net_filled=r.net_filled,
                                    updated_at=r.updated_at) for r in rows}
        if positions:
            for r in conn.execute(select(lt).where(lt.c.account_id == aid, lt.c.position_id.in_(list(positions)))
                                  .order_by(lt.c.position_id, lt.c.idx)):
                positions[r.position_id].lots.append(
                    Lot(r.quantity, r.price, r.fee, r.opened_at, r.initial_risk_per_unit))
        return list(positions.values())

    def get_order(self, order_id: str) -> Order | None:
        """The order ``order_id`` of this account, or None."""
        o = trading_orders
        with self._engine.connect() as conn:
            row = conn.execute(select(o).where(o.c.account_id == self.account_id, o.c.id == order_id)).first()
        return _order(row) if row else None

    def list_orders(self, *, status: OrderStatus | str | Iterable[OrderStatus | str] | None = None,
                    symbol: str | None = None, open_only: bool = False, limit: int | None = None,
                    offset: int = 0) -> list[Order]:
        """Orders newest first, filtered by status (one or several), symbol, or open ones only."""
        o = trading_orders
        q = select(o).where(o.c.account_id == self.account_id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            q = q.where(o.c.status.in_([OrderStatus.parse(s, field="status").value for s in wanted]))
        if open_only:
            q = q.where(o.c.status.in_(OPEN_STATUSES))
        if symbol is not None:
            q = q.where(o.c.symbol == symbol)
        q = q.order_by(o.c.seq.desc()).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self._engine.connect() as conn:
            return [_order(r) for r in conn.execute(q)]

    def fills_for_order(self, order_id: str) -> list[Fill]:
        """The fills of ``order_id`` in the order they happened."""
        f = trading_fills
        q = select(f).where(f.c.account_id == self.account_id, f.c.order_id == order_id) \
            .order_by(f.c.sequence, func.length(f.c.id), f.c.id)
        with self._engine.connect() as conn:
            return [_fill(r) for r in conn.execute(q)]

    def list_fills(self, *, symbol: str | None = None, limit: int = 100, offset: int = 0) -> list[Fill]:
        """Fills newest first."""
        f = trading_fills
        q = select(f).where(f.c.account_id == self.account_id)
        if symbol is not None:
            q = q.where(f.c.symbol == symbol)
        q = q.order_by(f.c.sequence.desc(), func.length(f.c.id).desc(), f.c.id.desc()).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            return [_fill(r) for r in conn.execute(q)]

    def _trades(self, conn: sa.Connection, aid: int, start: datetime | None, end: datetime | None,
                symbol: str | None, limit: int | None, offset: int, *, count: bool = False) -> Any:
        t = trading_trades
        cond = [t.c.account_id == aid]
        if start is not None:
            cond.append(t.c.exit_at >= start)
        if end is not None:
            cond.append(t.c.exit_at < end)
        if symbol is not None:
            cond.append(t.c.symbol == symbol)
        if count:
            return conn.execute(select(func.count()).select_from(t).where(*cond)).scalar_one()
        q = select(t).where(*cond).order_by(t.c.exit_at.desc(), t.c.sequence.desc(), func.length(t.c.id).desc(),
                                            t.c.id.desc()).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return [_trade(r) for r in conn.execute(q)]

    def list_trades(self, *, start: datetime | None = None, end: datetime | None = None, symbol: str | None = None,
                    limit: int = 100, offset: int = 0) -> TradePage:
        """Closed trades with ``start <= exit_at < end`` (UTC), newest first, and how many match in all."""
        if limit < 0 or offset < 0:
            raise InvalidInputError("limit and offset must not be negative", field="limit")
        with self._engine.connect() as conn:
            total = self._trades(conn, self.account_id, start, end, symbol, None, 0, count=True)
            trades = self._trades(conn, self.account_id, start, end, symbol, limit, offset)
        return TradePage(trades, total)

    def list_positions(self, *, status: str | None = "open", symbol: str | None = None) -> list[PositionRecord]:
        """Stored positions (``status`` ``open``, ``closed`` or None for both), most recently opened first."""
        p = trading_positions
        q = select(p).where(p.c.account_id == self.account_id)
        if status is not None:
            q = q.where(p.c.status == status)
        if symbol is not None:
            q = q.where(p.c.symbol == symbol)
        with self._engine.connect() as conn:
            return [_position_record(r) for r in conn.execute(q.order_by(p.c.opened_at.desc()))]

    def balances(self) -> list[Balance]:
        """The account's balances as of the last commit."""
        b = trading_balances
        with self._engine.connect() as conn:
            rows = conn.execute(select(b).where(b.c.account_id == self.account_id).order_by(b.c.asset))
            return [Balance(r.asset, r.free, r.locked) for r in rows]

    def journal(self, *, after: int = 0, limit: int = 100) -> list[JournalEntry]:
        """Committed batches with a sequence above ``after``, oldest first."""
        j = trading_journal
        q = select(j).where(j.c.account_id == self.account_id, j.c.sequence > after).order_by(j.c.sequence) \
            .limit(limit)
        with self._engine.connect() as conn:
            return [JournalEntry(r.sequence, r.at, r.committed_at, r.equity, r.events) for r in conn.execute(q)]


__all__ = [
    "JournalEntry", "PositionRecord", "SqlLedgerStore", "TradePage", "TradingAccount", "create_trading_account",
    "event_json", "get_trading_account", "list_trading_accounts",
]
