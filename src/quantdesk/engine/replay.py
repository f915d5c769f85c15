"""The backtest loop: a :class:`~quantdesk.engine.kernel.Kernel` driven over integer-tick bar arrays.

Per bar ``i`` (the same rules as :meth:`Kernel.on_bar`): working orders are matched against
the bar, the market's last price becomes the close, then the strategies see the closed bar;
a bar whose batch has events is flushed to the store before the next one.

Two shortcuts keep a million-bar run cheap without changing what happens:

- When every strategy declares the bars it acts on (:meth:`Strategy.active_bars`), the
  loop steps only on those and on bars with a working order; on any other bar nothing can
  happen (no order to match, no strategy action), and the last price, clock and bar index
  are set to where a full pass would have left them.
- With a :class:`~quantdesk.engine.ports.NullLedgerStore` and a
  :class:`~quantdesk.engine.ports.NullEventBus` nobody reads the batches, so the kernel
  builds no events or batch entries while the loop runs (``Kernel._silent``).
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.strategy import BarData, Strategy

if TYPE_CHECKING:  # the kernel calls in here; importing it at run time would make a cycle
    from quantdesk.engine.kernel import Kernel


PROGRESS_EVERY = 1 << 16  # bars between progress reports


def run_bars(kernel: Kernel, symbol: str, data: BarData,
             ticks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], close_ns: np.ndarray,
             progress: Callable[[int, int], None] | None = None) -> None:
    """Run ``kernel`` over ``symbol``'s bars: int64 ``ticks`` (open, high, low, close) and close times in ns.

    ``progress(done, total)`` is called every ``PROGRESS_EVERY`` bars and once at the end.
    """
    kernel._check_running()
    m = kernel._market(symbol)
    m.data = data
    clock = kernel.clock
    if not isinstance(clock, SimulatedClock):
        raise InvalidInputError("run_bars needs a SimulatedClock", field="clock")
    strategies = m.strategies
    for s in strategies:
        s.prepare(data)
    ctx = m.ctx
    n = len(ticks[0])
    active = active_bars(strategies, n)
    columns = [*ticks, data.time_ns, close_ns]
    if m.broker.engine.volume_limit is not None:
        columns.append(data.volume)
    if active is None:
        # every bar is visited: plain lists index fastest
        cols = [c.tolist() for c in columns]
        start = cols[4][0] if n else None
    else:
        # a few bars are visited: read them from the arrays (converting a million-bar column
        # costs more than the visits)
        cols = [c.item for c in columns]
        start = cols[4](0) if n else None
    if len(cols) == 6:
        cols.append(None)
    if ctx is not None:
        if start is not None:
            clock.set_ns(start)
        for s in strategies:
            s.on_start(ctx)
    # the loop allocates many small acyclic objects; the cyclic GC only costs time here
    gc_was_enabled = gc.isenabled()
    gc.disable()
    kernel._silent = kernel._quiet  # nobody reads the batches: build no events
    try:
        if active is None:
            _every_bar(kernel, m, *cols, progress)
        else:
            _active_bars(kernel, m, n, *cols, active, progress)
    finally:
        kernel._silent = False
        if gc_was_enabled:
            gc.enable()
    if ctx is not None:
        for s in strategies:
            s.on_stop(ctx)
    kernel.flush()
    if progress is not None:
        progress(n, n)


def active_bars(strategies: list[Strategy], n: int) -> list[int] | None:
    """Sorted indices of the bars some strategy acts on, or None (every bar, or no strategy)."""
    if not strategies:
        return None
    union = None
    for s in strategies:
        mask = s.active_bars()
        if mask is None:
            return None
        mask = np.asarray(mask, dtype=np.bool_)
        if mask.shape != (n,):
            raise InvalidInputError(f"strategy {s.name!r} declared active bars for {mask.size} bars, not {n}",
                                    field="active_bars")
        union = mask if union is None else union | mask
    return np.flatnonzero(union).tolist()


def _every_bar(kernel, m, opens, highs, lows, closes, open_ns, close_ns, volumes, progress) -> None:
    clock = kernel.clock
    ledger = kernel.ledger
    engine = m.broker.engine
    on_bar = engine.on_bar
    working = engine.working
    ctx = m.ctx
    strategies = m.strategies
    single = strategies[0].on_bar if len(strategies) == 1 else None
    n = len(opens)
    for i in range(n):
        if progress is not None and not i % PROGRESS_EVERY:
            progress(i, n)
        clock._ns = open_ns[i]  # monotonic by construction (checked by the backtest)
        ledger.index = i
        if working:
            o = opens[i]
            matches, expiries = on_bar(o, highs[i], lows[i], volumes[i] if volumes is not None else None)
            if matches or expiries:
                kernel._process(m, matches, expiries, o, highs[i], lows[i])
            working = engine.working  # _process may replace the list
        m.last = closes[i]
        clock._ns = close_ns[i]
        if ctx is not None:
            ctx.i = i
            if single is not None:
                single(ctx)
            else:
                for s in strategies:
                    s.on_bar(ctx)
            working = engine.working
        if kernel._batch.events:
            kernel.flush()


def _active_bars(kernel, m, n, opens, highs, lows, closes, open_ns, close_ns, volumes, active, progress) -> None:
    # column arguments are getters (``array.item``): ``opens(i)`` is bar i's open as an int
    clock = kernel.clock
    ledger = kernel.ledger
    engine = m.broker.engine
    on_bar = engine.on_bar
    working = engine.working
    ctx = m.ctx
    strategies = m.strategies
    single = strategies[0].on_bar if len(strategies) == 1 else None
    acting = set(active)
    n_active = len(active)
    k = 0
    i = 0
    reported = 0
    while i < n:
        if progress is not None and i - reported >= PROGRESS_EVERY:
            reported = i
            progress(i, n)
        if not working:
            # no order works: nothing happens until the next bar a strategy acts on
            k = bisect_left(active, i, k)
            if k == n_active:
                break
            i = active[k]
        clock._ns = open_ns(i)
        ledger.index = i
        if working:
            o = opens(i)
            h, low = highs(i), lows(i)
            matches, expiries = on_bar(o, h, low, volumes(i) if volumes is not None else None)
            if matches or expiries:
                kernel._process(m, matches, expiries, o, h, low)
            working = engine.working
        m.last = closes(i)
        clock._ns = close_ns(i)
        if ctx is not None and i in acting:
            ctx.i = i
            if single is not None:
                single(ctx)
            else:
                for s in strategies:
                    s.on_bar(ctx)
            working = engine.working
        if kernel._batch.events:
            kernel.flush()
        i += 1
    if n:  # leave the state a full pass would: after the last bar
        last = n - 1
        clock._ns = close_ns(last)
        ledger.index = last
        m.last = closes(last)
        if ctx is not None:
            ctx.i = last


__all__ = ["active_bars", "run_bars"]
