"""Paper accounts, their ledger stores and trade history in the database (TradingService's ports)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from quantdesk.adapters.db.ledger import SqlLedgerStore, create_trading_account, list_trading_accounts
from quantdesk.core.portfolio import RoundTrip
from quantdesk.services.trading import PaperAccount

PAPER = "paper"
PAGE = 1000


class SqlPaperAccounts:
    """One persisted paper account per user; its number (the row id) appears in its order ids."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def get_or_create(self, user_id: int, *, currency: str, initial_balance: Decimal, now: datetime,
                      exchange: str) -> PaperAccount:
        row = self._find(user_id)
        if row is None:
            try:
                row = create_trading_account(self._engine, currency=currency, initial_balance=initial_balance,
                                             name=PAPER, kind=PAPER, user_id=user_id, created_at=now)
            except IntegrityError:  # another request created it first
                row = self._find(user_id)
                if row is None:
                    raise
        return PaperAccount(f"acc_{user_id}", user_id, row.id, row.currency, row.initial_balance, row.created_at,
                            exchange)

    def _find(self, user_id: int):
        return next((a for a in list_trading_accounts(self._engine, user_id) if a.name == PAPER and a.kind == PAPER),
                    None)

    def ledger_store(self, account: PaperAccount) -> SqlLedgerStore:
        """The LedgerStoreFactory: every command of the account committed in one transaction."""
        return SqlLedgerStore(self._engine, account.number)

    def closed_trades(self, account: PaperAccount) -> Sequence[RoundTrip]:
        """Every closed trade of the account, oldest first (the TradeQuery port)."""
        store = SqlLedgerStore(self._engine, account.number)
        out: list[RoundTrip] = []
        offset = 0
        while True:
            page = store.list_trades(limit=PAGE, offset=offset)
            out.extend(page.trades)
            offset += len(page.trades)
            if not page.trades or offset >= page.total:
                break
        out.reverse()
        return out
