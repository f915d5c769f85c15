"""Backtests over the kernel (event path) or the compiled fast path, with the same results.

Inputs: a registered strategy and its parameters, a bars DataFrame (columns ``open high low
close volume``, UTC DatetimeIndex of bar open times) and a frozen :class:`BacktestConfig`.
Conventions (STYLE.md §3, kernc/backtesting.py): a strategy sees a bar once it has closed and
its market orders fill at the next bar's open. Deterministic: same inputs, same result.

Prices are converted once to integer ticks of ``tick_size`` (inferred from the data when not
given: the coarsest power of ten every price sits on), so the fills are exact Decimals
equal to the data's printed prices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.analytics.metrics import SECONDS_PER_YEAR, equity_metrics, format_duration, trade_metrics
from quantdesk.core.errors import InvalidInputError
from quantdesk.core.instruments import Instrument, InstrumentKind, Venue, parse_symbol
from quantdesk.core.money import MONEY_CONTEXT, to_decimal
from quantdesk.core.portfolio import ExitReason, Fill, RoundTrip
from quantdesk.engine.clocks import SimulatedClock
from quantdesk.engine.fastpath import run_fast
from quantdesk.engine.kernel import FeeSchedule, Kernel, KernelConfig
from quantdesk.engine.matching import (
    BpsSlippage,
    FixedTickSlippage,
    NoSlippage,
    SimulatedBroker,
    SimulatedBrokerConfig,
)
from quantdesk.engine.risk import RiskLimits, RiskManager
from quantdesk.engine.strategy import BarData, Strategy, create_strategy

_C = MONEY_CONTEXT
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that determines a backtest's result (stored with the result for exact reruns).

    ``commission`` is a fraction of notional per side (0.002 = 0.2%); ``maker_commission``
    overrides it for maker fills. ``slippage_bps`` / ``slippage_ticks`` move taker fills
    against the trader. ``mode`` is ``event``, ``fast`` (error if the strategy or config
    cannot run there) or ``auto`` (fast when possible). ``close_at_end`` closes a
    position still open after the last bar at its close (otherwise it stays open and only
    counts in equity, as in kernc/backtesting.py).
    """

    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    symbol: str = "BTCUSDT"
    initial_balance: Decimal = Decimal(10_000)
    leverage: int = 1
    commission: Decimal = Decimal(0)
    maker_commission: Decimal | None = None
    slippage_bps: Decimal = Decimal(0)
    slippage_ticks: int = 0
    tick_size: Decimal | None = None
    lot_size: Decimal = Decimal(1)
    currency: str | None = None
    maintenance_margin_rate: Decimal = Decimal(0)
    liquidation: bool = True
    volume_limit: Decimal | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)
    periods_per_year: float | None = None
    close_at_end: bool = False
    mode: str = "event"

    def __post_init__(self) -> None:
        for name in ("initial_balance", "commission", "slippage_bps", "lot_size", "maintenance_margin_rate"):
            object.__setattr__(self, name, to_decimal(getattr(self, name), field=name))
        for name in ("maker_commission", "tick_size", "volume_limit"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, to_decimal(getattr(self, name), field=name))
        if self.initial_balance <= 0:
            raise InvalidInputError(f"initial_balance must be positive, got {self.initial_balance}",
                                    field="initial_balance")
        if not (Decimal("-0.1") <= self.commission < Decimal("0.1")):
            raise InvalidInputError(f"commission must be a fraction per side in [-0.1, 0.1), got {self.commission}",
                                    field="commission")
        if self.leverage < 1:
            raise InvalidInputError(f"leverage must be at least 1, got {self.leverage}", field="leverage")
        if self.mode not in ("event", "fast", "auto"):
            raise InvalidInputError(f"mode {self.mode!r} is not one of event, fast, auto", field="mode")
        if self.slippage_bps < 0 or self.slippage_ticks < 0:
            raise InvalidInputError("slippage cannot be negative", field="slippage_bps")


class BacktestResult:
    """Trades, fills, equity curve and metrics of one run; exact money as Decimal.

    ``trades`` and ``fills`` may be built on first access (the fast path keeps its trades as
    integer arrays until then); the values are the same either way.
    """

    def __init__(self, *, config: BacktestConfig, equity: pd.Series, final_equity: Decimal,
                 metrics: dict[str, Any], bars: int, mode: str, entry_index: list[int], exit_index: list[int],
                 open_position: dict[str, Any] | None = None, trades: list[RoundTrip] | None = None,
                 fills: list[Fill] | None = None,
                 build: Callable[[], tuple[list[RoundTrip], list[Fill]]] | None = None) -> None:
        if (trades is None or fills is None) and build is None:
            raise ValueError("BacktestResult needs trades and fills, or a builder for them")
        self.config = config
        self.equity = equity
        self.final_equity = final_equity
        self.metrics = metrics
        self.bars = bars
        self.mode = mode
        self.entry_index = entry_index
        self.exit_index = exit_index
        self.open_position = open_position
        self._trades = trades
        self._fills = fills
        self._build = build if trades is None or fills is None else None

    def _materialise(self) -> None:
        build = self._build
        if build is not None:
            self._trades, self._fills = build()
            self._build = None

    @property
    def trades(self) -> list[RoundTrip]:
        self._materialise()
        return self._trades  # type: ignore[return-value]

    @property
    def fills(self) -> list[Fill]:
        self._materialise()
        return self._fills  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"BacktestResult(strategy={self.config.strategy!r}, mode={self.mode!r}, bars={self.bars}, "
                f"trades={len(self.entry_index)}, final_equity={self.final_equity})")

    def trade_rows(self) -> list[dict[str, Any]]:
        rows = []
        for t, ei, xi in zip(self.trades, self.entry_index, self.exit_index, strict=True):
            rows.append({
                "id": t.id, "symbol": t.symbol, "side": t.side.value, "size": float(t.quantity),
                "entry_time": t.entry_at.isoformat(), "exit_time": t.exit_at.isoformat(),
                "entry_bar": ei, "exit_bar": xi,
                "entry_price": float(t.entry_price), "exit_price": float(t.exit_price),
                "pnl": float(t.pnl), "pnl_pct": float(t.pnl_pct), "commission": float(t.commission),
                "duration_seconds": int(t.duration.total_seconds()),
                "r_multiple": None if t.r_multiple is None else float(t.r_multiple),
                "exit_reason": t.exit_reason.value, "strategy": t.strategy,
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers as floats (quantize first if a surface needs a fixed precision)."""
        cfg = self.config
        return {
            "strategy": cfg.strategy,
            "parameters": dict(cfg.params),
            "symbol": cfg.symbol,
            "mode": self.mode,
            "bars": self.bars,
            "initial_balance": float(cfg.initial_balance),
            "final_equity": float(self.final_equity),
            "metrics": self.metrics,
            "trades": self.trade_rows(),
            "open_position": self.open_position,
            "equity_curve": [
                {"time": ts.isoformat(), "equity": float(v)} for ts, v in self.equity.items()
            ],
        }


# ---------------------------------------------------------------------------- data


def _prepare(bars: pd.DataFrame) -> tuple[pd.DatetimeIndex, BarData, np.ndarray]:
    """Validate ``bars``; return the UTC index, float64 copies of the columns and the bar steps (ns)."""
    if not isinstance(bars, pd.DataFrame) or bars.empty:
        raise InvalidInputError("bars must be a non-empty DataFrame", field="bars")
    cols = {c.lower(): c for c in bars.columns}
    missing = [c for c in ("open", "high", "low", "close") if c not in cols]
    if missing:
        raise InvalidInputError(f"bars lack column(s) {', '.join(missing)}; need open high low close volume",
                                field="bars")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidInputError("bars need a DatetimeIndex of bar open times", field="bars")
    if index.tz is None:
        raise InvalidInputError("bars index must be timezone-aware UTC (tz_localize('UTC') if it is UTC)",
                                field="bars")
    index = index.tz_convert("UTC")
    time_ns = index.as_unit("ns").asi8.astype(np.int64)
    steps = np.diff(time_ns)
    if steps.size and steps.min() <= 0:
        raise InvalidInputError("bars index must be strictly increasing", field="bars")
    arrays = {c: _read_only(bars[cols[c]]) for c in ("open", "high", "low", "close")}
    for values in arrays.values():
        # min is NaN when any value is: NaN > 0 is false, so NaN, inf and non-positive all fail
        if not (values.min() > 0 and values.max() < np.inf):
            raise InvalidInputError("bar prices must be finite and positive", field="bars")
    volume = _read_only(bars[cols["volume"]]) if "volume" in cols else np.zeros(len(time_ns))
    data = BarData(arrays["open"], arrays["high"], arrays["low"], arrays["close"], volume, time_ns)
    return index, data, steps


def _read_only(column: pd.Series) -> np.ndarray:
    # a read-only view, not a copy (a million-bar copy costs more than the compiled loop):
    # a strategy writing into its bars gets an error instead of changing the caller's frame
    values = np.ascontiguousarray(column.to_numpy(dtype=np.float64)).view()
    values.flags.writeable = False
    return values


def _on_grid(values: np.ndarray, k: int) -> bool:
    scaled = values * (10.0 ** k)
    err = scaled - np.rint(scaled)
    np.abs(err, out=err)
    return bool(err.max() <= 1e-9 * max(1.0, float(np.abs(scaled).max())) + 1e-7)


def infer_tick_size(prices: np.ndarray) -> Decimal:
    """Coarsest power of ten (down to 1e-10) on which every price sits, within float noise."""
    flat = np.asarray(prices, dtype=np.float64).ravel()
    sample = flat[:: max(1, flat.size // 2048)]
    for k in range(0, 11):
        # a cheap sample rules most exponents out before the full check
        if _on_grid(sample, k) and _on_grid(flat, k):
            return Decimal(1).scaleb(-k)
    raise InvalidInputError("prices carry more than 10 decimals; pass tick_size explicitly", field="tick_size")


def to_ticks(prices: np.ndarray, tick: Decimal) -> np.ndarray:
    """Round float prices to integer ticks (nearest)."""
    return np.rint(np.asarray(prices, dtype=np.float64) / float(tick)).astype(np.int64)


def _instrument(cfg: BacktestConfig, tick: Decimal) -> Instrument:
    try:
        iid = parse_symbol(cfg.symbol)
    except InvalidInputError:
        iid = parse_symbol("BACKTEST", venue=Venue.NSE)
    kind = InstrumentKind.PERPETUAL if iid.quote else InstrumentKind.EQUITY
    currency = cfg.currency or iid.quote or "USD"
    return Instrument(iid, kind, cfg.symbol, currency, tick, cfg.lot_size, max_leverage=max(cfg.leverage, 125))


def _periods_per_year(cfg: BacktestConfig, steps: np.ndarray) -> float:
    if cfg.periods_per_year:
        return float(cfg.periods_per_year)
    if not steps.size:
        return 252.0
    step = float(steps.min()) / 1e9
    return SECONDS_PER_YEAR / step if step > 0 else 252.0


# ---------------------------------------------------------------------------- running


def run_backtest(config: BacktestConfig, bars: pd.DataFrame, strategy: Strategy | None = None,
                 progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Run ``config`` over ``bars``; raise InvalidInputError for bad data or parameters."""
    index, data, steps = _prepare(bars)
    strategy = strategy or create_strategy(config.strategy, dict(config.params))
    fast_reason = fast_path_blocker(config, strategy)
    if config.mode == "fast" and fast_reason:
        raise InvalidInputError(f"this backtest cannot run on the fast path: {fast_reason}", field="mode")
    use_fast = config.mode == "fast" or (config.mode == "auto" and fast_reason is None)
    # the fast path only ever trades at the open and marks at the close
    columns = (data.open, data.close) if use_fast else (data.open, data.high, data.low, data.close)
    tick = config.tick_size or infer_tick_size(np.concatenate(columns))
    instrument = _instrument(config, tick)
    if use_fast:
        ticks = (to_ticks(data.open, tick), None, None, to_ticks(data.close, tick))
        result = _run_fast(config, strategy, index, steps, data, ticks, instrument)
        if progress is not None:
            progress(len(index), len(index))
        return result
    ticks = tuple(to_ticks(c, tick) for c in columns)
    step_ns = int(steps.min()) if steps.size else 86_400 * 10**9
    close_ns = data.time_ns + step_ns
    return _run_event(config, strategy, index, steps, close_ns, data, ticks, instrument, progress)


def fast_path_blocker(config: BacktestConfig, strategy: Strategy) -> str | None:
    """Why ``config`` cannot run on the fast path, or None if it can."""
    if type(strategy).signals is Strategy.signals:
        return f"strategy {strategy.name!r} has no vectorised signals"
    if config.maker_commission is not None and config.maker_commission != config.commission:
        return "separate maker commission"
    if config.slippage_bps or config.slippage_ticks:
        return "slippage"
    if config.volume_limit is not None:
        return "volume limit"
    if config.liquidation and (config.leverage > 1 or strategy.params.get("allow_short")):
        return "liquidation modelling (set liquidation=False or trade long-only at leverage 1)"
    if config.close_at_end:
        return "close_at_end"
    if any(getattr(config.risk, f) is not None for f in ("max_daily_loss", "max_daily_loss_r",
                                                         "max_consecutive_losses", "max_concurrent_positions")):
        return "risk limits"
    return None


def _make_kernel(config: BacktestConfig, instrument: Instrument) -> Kernel:
    fees = FeeSchedule(config.maker_commission if config.maker_commission is not None else config.commission,
                       config.commission)
    kconf = KernelConfig(currency=instrument.currency, initial_balance=config.initial_balance, fees=fees,
                         default_leverage=config.leverage, maintenance_margin_rate=config.maintenance_margin_rate,
                         liquidation=config.liquidation)
    kernel = Kernel(kconf, clock=SimulatedClock(), risk=RiskManager(config.risk))
    if config.slippage_ticks:
        slippage = FixedTickSlippage(config.slippage_ticks)
    elif config.slippage_bps:
        slippage = BpsSlippage(config.slippage_bps)
    else:
        slippage = NoSlippage()
    broker = SimulatedBroker(SimulatedBrokerConfig(slippage, config.volume_limit, False), instrument.lot_size)
    kernel.add_market(instrument, broker, config.leverage)
    return kernel


def _run_event(config, strategy, index, steps, close_ns, data, ticks, instrument, progress=None) -> BacktestResult:
    kernel = _make_kernel(config, instrument)
    symbol = instrument.symbol
    kernel.add_strategy(symbol, strategy)
    kernel.run_bars(symbol, data, ticks, close_ns, progress)
    if config.close_at_end and kernel.position(symbol) is not None:
        kernel.close_at_last(symbol, ExitReason.END_OF_DATA)
    ledger = kernel.ledger
    final = kernel.equity()
    time_ns = data.time_ns
    equity = _equity_curve(config, ledger.snapshots, ticks[3], instrument.tick_size, len(time_ns))
    position = kernel.position(symbol)
    open_position = None
    if position is not None:
        open_position = {"side": position.side.value, "size": float(position.quantity),
                         "entry_price": float(position.entry_price),
                         "unrealized_pnl": float(position.unrealized_pnl(kernel.mark(symbol)))}
    trades = list(ledger.trades)

    def bar_of(at: datetime) -> int:
        delta = at - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        return int(np.searchsorted(time_ns, ns, side="right")) - 1

    return _result(config, index, steps, equity, final, "event", open_position, _trip_fields(trades),
                   [bar_of(t.entry_at) for t in trades], [bar_of(t.exit_at) for t in trades],
                   trades=trades, fills=list(ledger.fills))


def _equity_curve(config: BacktestConfig, snapshots, close_ticks: np.ndarray, tick: Decimal, n: int) -> np.ndarray:
    wallet = np.full(n, float(config.initial_balance))
    qty = np.zeros(n)
    cost = np.zeros(n)
    if snapshots:
        idx = np.array([s[0] for s in snapshots], dtype=np.int64)
        w = np.array([float(s[2]) for s in snapshots])
        q = np.array([float(s[3]) for s in snapshots])
        c = np.array([float(s[4]) for s in snapshots])
        # the last snapshot of each bar holds from that bar on
        marker = np.full(n, -1, dtype=np.int64)
        marker[idx] = np.arange(len(idx))
        marker = np.maximum.accumulate(marker)
        has = marker >= 0
        wallet[has] = w[marker[has]]
        qty[has] = q[marker[has]]
        cost[has] = c[marker[has]]
    closes = close_ticks.astype(np.float64) * float(tick)
    return wallet + qty * closes - cost


def _run_fast(config, strategy, index, steps, data, ticks, instrument) -> BacktestResult:
    sig = strategy.signals(data)
    if sig is None:
        raise InvalidInputError(f"strategy {strategy.name!r} returned no signals", field="mode")
    fraction = Decimal(str(strategy.params.get("size_fraction", 1)))
    res = run_fast(opens=ticks[0], closes=ticks[3], long_entry=sig.long_entry, long_exit=sig.long_exit,
                   short_entry=sig.short_entry, short_exit=sig.short_exit, initial_balance=config.initial_balance,
                   fee_rate=config.commission, tick=instrument.tick_size, lot=instrument.lot_size,
                   leverage=config.leverage, fraction=fraction)
    tick, lot = instrument.tick_size, instrument.lot_size
    time_ns = data.time_ns
    last_close = int(ticks[3][-1])
    final = res.final_equity(last_close)
    open_position = None
    if res.position_lots:
        qty = _C.multiply(Decimal(abs(res.position_lots)), lot)
        entry = _C.multiply(Decimal(res.entry_price_ticks), tick)
        mark = _C.multiply(Decimal(last_close), tick)
        sign = 1 if res.position_lots > 0 else -1
        open_position = {"side": "long" if sign > 0 else "short", "size": float(qty), "entry_price": float(entry),
                         "unrealized_pnl": float(sign * _C.multiply(qty, _C.subtract(mark, entry)))}

    # the exact Decimal trades and fills are built only if someone reads them
    def build() -> tuple[list[RoundTrip], list[Fill]]:
        return res.round_trips(time_ns=time_ns, symbol=instrument.symbol, currency=instrument.currency,
                               strategy=strategy.name, leverage=config.leverage, fee_rate=config.commission)

    return _result(config, index, steps, res.equity, final, "fast", open_position, res.trade_fields(time_ns),
                   res.entry_index.tolist(), res.exit_index.tolist(), build=build)


def _trip_fields(trades: list[RoundTrip]) -> dict[str, np.ndarray]:
    # statistics are floats (STYLE §3): convert each trade's exact fields once, then vectorise
    fields = np.array([(t.side.sign, float(t.quantity), float(t.entry_price), float(t.exit_price),
                        float(t.entry_fee) + float(t.exit_fee),
                        float(t.initial_risk) if t.initial_risk else np.nan,
                        (t.exit_at - t.entry_at).total_seconds()) for t in trades],
                      dtype=np.float64).reshape(-1, 7)
    names = ("sign", "quantity", "entry_price", "exit_price", "commission", "initial_risk", "duration_s")
    return {name: np.ascontiguousarray(fields[:, k]) for k, name in enumerate(names)}


def _result(config, index, steps, equity, final, mode, open_position, fields, entry_index, exit_index,
            **trades: Any) -> BacktestResult:
    curve = pd.Series(np.asarray(equity, dtype=np.float64), index=index, name="equity")
    ppy = _periods_per_year(config, steps)
    years = float(steps.sum()) / 1e9 / SECONDS_PER_YEAR if steps.size else 0.0
    metrics = equity_metrics(curve.to_numpy(), periods_per_year=ppy, years=years or None)
    sign, qty, entry, exit_ = fields["sign"], fields["quantity"], fields["entry_price"], fields["exit_price"]
    commission = fields["commission"]
    pnl = sign * qty * (exit_ - entry) - commission
    with np.errstate(divide="ignore", invalid="ignore"):
        metrics.update(trade_metrics(pnl, pnl_pct=pnl / (qty * entry) * 100, duration_s=fields["duration_s"],
                                     r_multiples=pnl / fields["initial_risk"], commission=commission))
    metrics["avg_trade_duration"] = format_duration(metrics["avg_duration_s"])
    metrics["initial_balance"] = float(config.initial_balance)
    metrics["final_equity"] = float(final)
    metrics["total_return_pct"] = float(_C.divide(_C.multiply(_C.subtract(final, config.initial_balance), 100),
                                                  config.initial_balance))
    return BacktestResult(config=config, equity=curve, final_equity=final, metrics=metrics, bars=len(index),
                          mode=mode, entry_index=entry_index, exit_index=exit_index, open_position=open_position,
                          **trades)


__all__ = ["BacktestConfig", "BacktestResult", "fast_path_blocker", "infer_tick_size", "run_backtest"]
