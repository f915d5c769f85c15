"""Order-book imbalance: lean with the side of the book that carries more size.

Model: over the top ``depth`` levels of a :class:`~quantdesk.core.market.BookTop`,

    imbalance = (Σ bid size − Σ ask size) / (Σ bid size + Σ ask size)   ∈ [−1, 1]

A strongly bid book (imbalance ≥ ``entry_threshold``) predicts short-horizon upticks, so
the strategy buys ``quantity`` at market; a strongly offered book (≤ −``entry_threshold``)
sells when ``allow_short`` is on. A position is closed when the imbalance falls back
through ``exit_threshold`` toward the other side (hysteresis keeps it from flapping),
and at most one decision is taken per ``cooldown_s`` seconds. It reacts only to
``on_book``; bars are ignored, so it needs a feed that delivers book snapshots (paper or
live), not a bar backtest.
"""

from __future__ import annotations

from decimal import Decimal

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import BookTop
from quantdesk.engine.strategy import Parameter, Strategy, register_strategy


def book_imbalance(book: BookTop, depth: int) -> float | None:
    """Size imbalance of the top ``depth`` levels in [−1, 1], or None for an empty book."""
    bid = sum(float(size) for _, size in book.bids[:depth])
    ask = sum(float(size) for _, size in book.asks[:depth])
    total = bid + ask
    return None if total <= 0 else (bid - ask) / total


@register_strategy("orderbook_imbalance")
class OrderbookImbalance(Strategy):
    kind = "orderbook"
    description = "Trade the top-of-book size imbalance"
    parameters = (
        Parameter("depth", int, 5, "book levels summed per side", minimum=1, maximum=50),
        Parameter("entry_threshold", float, 0.3, "imbalance that opens a position", minimum=0.01, maximum=1),
        Parameter("exit_threshold", float, 0.0, "imbalance that closes it (toward the other side)",
                  minimum=-1, maximum=1),
        Parameter("quantity", Decimal, Decimal("0.01"), "order quantity (base units)", minimum=0),
        Parameter("allow_short", bool, True, "sell into an offered book"),
        Parameter("cooldown_s", float, 5.0, "minimum seconds between decisions", minimum=0, maximum=3_600),
    )

    def validate(self) -> None:
        if self.params["exit_threshold"] >= self.params["entry_threshold"]:
            raise InvalidInputError("exit_threshold must be below entry_threshold",
                                    field="parameters.exit_threshold")
        if self.params["quantity"] <= 0:
            raise InvalidInputError("quantity must be positive", field="parameters.quantity")

    def on_start(self, ctx) -> None:
        self._last_decision = None
        self.last_imbalance: float | None = None

    def on_book(self, ctx, book: BookTop) -> None:
        imbalance = book_imbalance(book, self.params["depth"])
        self.last_imbalance = imbalance
        if imbalance is None:
            return
        now = ctx.now
        last = getattr(self, "_last_decision", None)
        if last is not None and (now - last).total_seconds() < self.params["cooldown_s"]:
            return
        entry, exit_ = self.params["entry_threshold"], self.params["exit_threshold"]
        qty = ctx.position_quantity
        acted = True
        if qty > 0 and imbalance <= -exit_:
            ctx.close_position()
        elif qty < 0 and imbalance >= exit_:
            ctx.close_position()
        elif qty == 0 and imbalance >= entry:
            ctx.buy(self.params["quantity"])
        elif qty == 0 and imbalance <= -entry and self.params["allow_short"]:
            ctx.sell(self.params["quantity"])
        else:
            acted = False
        if acted:
            self._last_decision = now
