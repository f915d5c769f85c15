"""ML job types: train a multi-step OHLC LightGBM model, predict with it, backtest on its signals.

Each job is a module-level ``fn(ctx, **params) -> dict`` so a worker process or a Ray task
imports it by dotted path. Bars travel in the parameters as plain columns (see
``backtest_jobs.bars_to_columns``); the model travels as a file path under the data directory
(a Ray cluster of several machines needs that directory on shared storage, as the scan spool).

The model ("multi_ohlc") is one LightGBM regressor in LightGBM's own text format. Each training
row is one bar ``t``, one horizon ``h`` and one target kind (close, high, low); the target is
``log(price[t+h] / close[t])`` and the horizon and kind are features, so one booster predicts
the whole path. Features are causal: row ``t`` sees bars up to and including ``t`` only.
Training is deterministic for a fixed seed (one thread, LightGBM's deterministic mode).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.analytics import indicators as ind
from quantdesk.core.errors import InvalidInputError
from quantdesk.engine.backtest import BacktestConfig, run_backtest
from quantdesk.engine.strategy import BarData, Parameter, Signals, Strategy, create_strategy, signal_step
from quantdesk.services.backtest_jobs import _frame
from quantdesk.services.job_ports import JobContext, JobType

MODEL_TYPE = "multi_ohlc"
FEATURES = (
    "ret_1", "ret_3", "ret_6", "ret_12", "ret_24", "volatility_20", "rsi_14", "macd", "macd_signal", "macd_hist",
    "atr_14", "volume_z_20", "range", "body", "close_in_range", "sma_10_gap", "sma_30_gap",
)
TARGET_FEATURES = ("horizon", "kind")  # the step ahead (bars) and the target: 0 close, 1 high, 2 low
KINDS = ("close", "high", "low")
WARMUP = 35  # bars before the first row whose features are all defined (MACD 26+9)
MIN_SAMPLES = 60  # training bars needed after warm-up, horizon and the train/validation embargo
VALIDATION_FRACTION = 0.2
MAX_ANCHORS = 12

TRAIN_JOB = JobType("ml_train", "quantdesk.services.ml_jobs:train_model", cpu_cores=1.0, ram_gb=1.0,
                    internal=True, summary="Train a LightGBM multi-step OHLC model on one symbol's bars")
PREDICT_JOB = JobType("ml_predict", "quantdesk.services.ml_jobs:predict_model", cpu_cores=0.5, ram_gb=0.25,
                      internal=True, summary="Predict the next steps of a symbol with a trained model")
BACKTEST_JOB = JobType("ml_backtest", "quantdesk.services.ml_jobs:backtest", cpu_cores=1.0, ram_gb=0.5,
                       internal=True, summary="Backtest a registered strategy or a model's signals")
JOB_TYPES = (TRAIN_JOB, PREDICT_JOB, BACKTEST_JOB)


# ---------------------------------------------------------------------------- features


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """Causal features of each bar (NaN during warm-up); prices enter only as ratios, so any scale works."""
    o, h, low, c, v = (frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))
    logc = np.log(c)
    out: dict[str, np.ndarray] = {}
    for n in (1, 3, 6, 12, 24):
        r = np.full(c.size, np.nan)
        r[n:] = logc[n:] - logc[:-n]
        out[f"ret_{n}"] = r
    out["volatility_20"] = pd.Series(out["ret_1"]).rolling(20).std().to_numpy()
    out["rsi_14"] = np.asarray(ind.rsi(c, 14), dtype=np.float64) / 100.0
    m, s, hist = (np.asarray(x, dtype=np.float64) / c for x in ind.macd(c, 12, 26, 9))
    out["macd"], out["macd_signal"], out["macd_hist"] = m, s, hist
    out["atr_14"] = np.asarray(ind.atr(h, low, c, 14), dtype=np.float64) / c
    vol = pd.Series(v)
    std = vol.rolling(20).std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["volume_z_20"] = np.where(std > 0, (v - vol.rolling(20).mean().to_numpy()) / std, 0.0)
        span = h - low
        out["range"] = span / c
        out["body"] = (c - o) / c
        out["close_in_range"] = np.where(span > 0, (c - low) / span, 0.5)
    out["sma_10_gap"] = c / np.asarray(ind.sma(c, 10), dtype=np.float64) - 1.0
    out["sma_30_gap"] = c / np.asarray(ind.sma(c, 30), dtype=np.float64) - 1.0
    return pd.DataFrame({k: out[k] for k in FEATURES}, index=frame.index)


def anchors(n_steps: int) -> list[int]:
    """The horizons the model learns (1..n when few, else about 12 spread geometrically, always 1 and n)."""
    if n_steps <= MAX_ANCHORS:
        return list(range(1, n_steps + 1))
    geo = np.unique(np.round(np.geomspace(1, n_steps, MAX_ANCHORS)).astype(int))
    return sorted({1, n_steps, *geo.tolist()})


def min_bars(n_steps: int) -> int:
    """Bars a training run needs for ``n_steps`` ahead: warm-up, the horizon twice (target and embargo), samples."""
    return WARMUP + 2 * n_steps + MIN_SAMPLES


def _rows(feats: np.ndarray, frame: pd.DataFrame, horizons: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                               np.ndarray]:
    """Stack (bar, horizon, kind) rows: X, y (log ratio), the bar index t and the base close, for defined rows."""
    c = frame["close"].to_numpy(dtype=np.float64)
    prices = {"close": c, "high": frame["high"].to_numpy(dtype=np.float64),
              "low": frame["low"].to_numpy(dtype=np.float64)}
    valid = np.isfinite(feats).all(axis=1)
    xs, ys, ts = [], [], []
    n = c.size
    for h in horizons:
        t = np.arange(n - h)
        t = t[valid[: n - h]]
        for k, kind in enumerate(KINDS):
            x = np.empty((t.size, feats.shape[1] + 2))
            x[:, : feats.shape[1]] = feats[t]
            x[:, -2] = h
            x[:, -1] = k
            xs.append(x)
            ys.append(np.log(prices[kind][t + h] / c[t]))
            ts.append(np.stack([t, np.full(t.size, h), np.full(t.size, k)], axis=1))
    idx = np.concatenate(ts)
    return np.concatenate(xs), np.concatenate(ys), idx, c[idx[:, 0]]


def _lgb_params(seed: int, learning_rate: float) -> dict[str, Any]:
    return {
        "objective": "regression", "learning_rate": learning_rate, "num_leaves": 31, "min_data_in_leaf": 20,
        "feature_fraction": 0.9, "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": 1,
        "verbose": -1,
    }


def _regression(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {"r2": float(r2_score(y, p)), "mae": float(mean_absolute_error(y, p)),
            "rmse": float(math.sqrt(mean_squared_error(y, p)))}


def _direction(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    up, guess = actual > 0, predicted > 0
    out: dict[str, float | None] = {
        "accuracy": float(accuracy_score(up, guess)),
        "precision": float(precision_score(up, guess, zero_division=0)),
        "recall": float(recall_score(up, guess, zero_division=0)),
        "f1": float(f1_score(up, guess, zero_division=0)),
        "auc": None,
    }
    if 0 < up.sum() < up.size:
        out["auc"] = float(roc_auc_score(up, predicted))
    return out


def train(frame: pd.DataFrame, n_steps: int, *, seed: int = 42, n_estimators: int = 200,
          learning_rate: float = 0.05, progress: Callable[[float, str], None] | None = None) -> tuple[Any, dict]:
    """Train the multi-step OHLC booster on ``frame``; return it and its metadata (metrics, importance, calibration).

    The split is by time: the first 80% of bars train, the last 20% validate, with ``n_steps``
    bars between them so no training target overlaps a validation bar. Raises
    InvalidInputError (field ``days_history``) when there are too few bars.
    """
    import lightgbm as lgb

    report = progress or (lambda pct, msg: None)
    need = min_bars(n_steps)
    if len(frame) < need:
        raise InvalidInputError(
            f"{len(frame)} bars are too few to train {n_steps} steps ahead; need at least {need} "
            "(raise days_history or lower n_steps_ahead)", field="days_history",
            details={"bars": len(frame), "required": need})
    report(15, f"Engineering {len(FEATURES)} features on {len(frame)} bars...")
    feats = features(frame).to_numpy()
    horizons = anchors(n_steps)
    x, y, idx, base = _rows(feats, frame, horizons)
    t = idx[:, 0]
    usable = np.flatnonzero(np.isfinite(feats).all(axis=1))
    first, last = int(usable[0]), len(frame) - 1
    split = first + int((last - first) * (1 - VALIDATION_FRACTION))
    train_mask = t + idx[:, 1] < split  # the target is known before the split
    val_mask = t >= split + n_steps  # embargo
    if train_mask.sum() < MIN_SAMPLES or val_mask.sum() < len(horizons) * len(KINDS):
        raise InvalidInputError(f"{len(frame)} bars leave too few training or validation rows for {n_steps} steps "
                                "ahead (raise days_history or lower n_steps_ahead)", field="days_history")
    names = [*FEATURES, *TARGET_FEATURES]
    report(30, f"Training LightGBM ({n_estimators} trees) on {int(train_mask.sum())} rows...")
    data = lgb.Dataset(x[train_mask], y[train_mask], feature_name=names, free_raw_data=True)
    booster = lgb.train(_lgb_params(seed, learning_rate), data, num_boost_round=n_estimators)
    report(80, "Evaluating on the validation period...")
    pred = booster.predict(x)
    close_rows = idx[:, 2] == 0
    perf: dict[str, Any] = {}
    for part, mask in (("train", train_mask), ("val", val_mask)):
        m = mask & close_rows
        stats = _regression(base[m] * np.exp(y[m]), base[m] * np.exp(pred[m]))
        perf.update({f"{part}_{k}": v for k, v in stats.items()})
    far = val_mask & close_rows & (idx[:, 1] == horizons[-1])
    perf.update({f"val_direction_{k}": v for k, v in _direction(y[far], pred[far]).items()})
    # per-horizon error of the close log-return on validation: the scale of a prediction's confidence
    rmse = {}
    for h in horizons:
        m = val_mask & close_rows & (idx[:, 1] == h)
        rmse[str(h)] = float(np.sqrt(np.mean((y[m] - pred[m]) ** 2))) if m.any() else None
    gain = booster.feature_importance(importance_type="gain")
    total = float(gain.sum()) or 1.0
    importance = sorted(({"feature": n, "importance": round(float(g) / total, 6)} for n, g in zip(names, gain,
                                                                                                 strict=True)),
                        key=lambda r: -r["importance"])
    meta = {
        "performance": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in perf.items()},
        "feature_importance": importance,
        "anchors": horizons,
        "val_rmse": rmse,
        "features": names,
        "bars": len(frame),
        "train_rows": int(train_mask.sum()),
        "val_rows": int(val_mask.sum()),
        "split_at": frame.index[split].isoformat(),
        "seed": seed,
        "n_estimators": n_estimators,
        "learning_rate": learning_rate,
    }
    return booster, meta


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def predict_path(booster: Any, frame: pd.DataFrame, n_steps: int, meta: dict[str, Any],
                 step_seconds: int) -> dict[str, Any]:
    """Predict the next ``n_steps`` bars after the last bar of ``frame`` (its close is the current price).

    Returns the ML reference's prediction body: per step OHLC, ``predicted_return`` (close over
    the current price − 1), ``direction``, ``probability_up`` and ``confidence`` (the chance the
    direction is right, from the validation error at that horizon).
    """
    horizons = [int(h) for h in meta["anchors"]]
    feats = features(frame).to_numpy()
    last = feats[-1]
    if not np.isfinite(last).all():
        raise InvalidInputError(f"{len(frame)} bars are too few to compute features; need at least {WARMUP + 1}",
                                field="symbol")
    x = np.empty((len(horizons) * len(KINDS), last.size + 2))
    for i, (h, k) in enumerate((h, k) for h in horizons for k in range(len(KINDS))):
        x[i, : last.size] = last
        x[i, -2], x[i, -1] = h, k
    raw = booster.predict(x).reshape(len(horizons), len(KINDS))
    steps = np.arange(1, n_steps + 1)
    # interpolate between learned horizons in log(step): a smooth path, exact at every anchor
    logs = np.log(np.asarray(horizons, dtype=np.float64))
    curve = {kind: np.interp(np.log(steps), logs, raw[:, k]) for k, kind in enumerate(KINDS)}
    rmse_at = np.interp(np.log(steps), logs, [meta["val_rmse"].get(str(h)) or 0.0 for h in horizons])
    current = float(frame["close"].iloc[-1])
    last_open = frame.index[-1]
    close = current * np.exp(curve["close"])
    opens = np.concatenate(([current], close[:-1]))
    high = np.maximum(current * np.exp(curve["high"]), np.maximum(opens, close))
    low = np.minimum(current * np.exp(curve["low"]), np.minimum(opens, close))
    rows = []
    for i, step in enumerate(steps.tolist()):
        ret = float(close[i] / current - 1.0)
        sd = float(rmse_at[i])
        p_up = _phi(curve["close"][i] / sd) if sd > 0 else (1.0 if ret > 0 else 0.0)
        rows.append({
            "step": step,
            "minutes_ahead": step * step_seconds // 60,
            "predicted_open": float(opens[i]), "predicted_high": float(high[i]),
            "predicted_low": float(low[i]), "predicted_close": float(close[i]),
            "predicted_return": ret,
            "direction": "up" if ret > 0 else "down" if ret < 0 else "flat",
            "probability_up": round(p_up, 6),
            "confidence": round(max(p_up, 1.0 - p_up), 6),
            # the bar ``step`` ahead closes at its open time + one bar
            "timestamp": (last_open + pd.Timedelta(seconds=step_seconds * (step + 1))).isoformat(),
        })
    diffs = np.diff(np.concatenate(([current], close)))
    smooth = 1.0
    if diffs.size > 1 and np.abs(diffs).sum() > 0:
        smooth = float(max(0.0, 1.0 - np.abs(np.diff(diffs)).sum() / (2 * np.abs(diffs).sum())))
    return {
        "timestamp": (last_open + pd.Timedelta(seconds=step_seconds)).isoformat(),
        "current_price": current,
        "predictions": rows,
        "smoothness_score": round(smooth, 6),
        "bars_end": last_open.isoformat(),
    }


def write_model(booster: Any, path: Path) -> int:
    """Write the booster in LightGBM's text format atomically; return the file size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(booster.model_to_string(), encoding="utf-8")
    os.replace(tmp, path)
    return path.stat().st_size


def load_model(path: str | Path) -> Any:
    """Load a booster from its LightGBM text file."""
    import lightgbm as lgb

    return lgb.Booster(model_file=str(path))


# ---------------------------------------------------------------------------- jobs


def train_model(ctx: JobContext, *, bars: dict[str, list], n_steps_ahead: int, model_path: str, seed: int = 42,
                n_estimators: int = 200, learning_rate: float = 0.05) -> dict[str, Any]:
    """Train on ``bars`` and write the model to ``model_path``; return its metadata and file size."""
    ctx.progress(5, f"Preparing {len(bars.get('t', []))} bars...")
    booster, meta = train(_frame(bars), int(n_steps_ahead), seed=int(seed), n_estimators=int(n_estimators),
                          learning_rate=float(learning_rate), progress=ctx.progress)
    ctx.progress(90, "Saving the model...")
    meta["size_bytes"] = write_model(booster, Path(model_path))
    return meta


def predict_model(ctx: JobContext, *, bars: dict[str, list], model_path: str, n_steps_ahead: int,
                  meta: dict[str, Any], step_seconds: int) -> dict[str, Any]:
    """Load the model at ``model_path`` and predict the steps after the last of ``bars``."""
    ctx.progress(20, "Loading the model...")
    booster = load_model(model_path)
    ctx.progress(60, "Predicting...")
    return predict_path(booster, _frame(bars), int(n_steps_ahead), meta, int(step_seconds))


class PredictionSignals(Strategy):
    """Trade precomputed model predictions: long above ``threshold``, out (or short) below ``-threshold``.

    Not registered: the ML backtest job builds one per run with the model's per-bar predictions.
    """

    name = "MLPredictive"
    description = "Trade a trained model's predicted return"
    parameters = (
        Parameter("threshold", float, 0.0, "minimum predicted return to act on (fraction)", minimum=0.0, maximum=1.0),
        Parameter("position_size", Decimal, Decimal(1), "fraction of available margin per entry",
                  minimum=0.0001, maximum=1),
        Parameter("stop_loss_pct", float, 0.0, "close when price moves this fraction against the position (0: off)",
                  minimum=0.0, maximum=1.0),
        Parameter("allow_short", bool, False, "go short on a predicted fall instead of only exiting"),
    )

    def __init__(self, predicted: np.ndarray, **params: Any):
        super().__init__(**params)
        self._predicted = np.asarray(predicted, dtype=np.float64)

    def signals(self, data: BarData) -> Signals:
        th = self.params["threshold"]
        with np.errstate(invalid="ignore"):
            up = self._predicted > th
            down = self._predicted < -th
        short = self.params["allow_short"]
        return Signals(up, down, down if short else None, up if short else None)

    def prepare(self, data: BarData) -> None:
        s = self.signals(data)
        none = np.zeros(len(data), dtype=np.bool_)
        self._sig = [a.tolist() for a in (s.long_entry, s.long_exit, none if s.short_entry is None else s.short_entry,
                                          none if s.short_exit is None else s.short_exit)]
        self._close = data.close

    def on_bar(self, ctx) -> None:
        i = ctx.i
        stop = self.params["stop_loss_pct"]
        position = ctx.position
        if stop and position is not None and ctx.position_quantity:
            entry = float(position.entry_price)
            move = (self._close[i] - entry) / entry * (1 if ctx.position_quantity > 0 else -1)
            if move <= -stop:
                ctx.close_position()
                return
        signal_step(ctx, self._sig[0][i], self._sig[1][i], self._sig[2][i], self._sig[3][i],
                    self.params["position_size"])


def model_returns(booster: Any, frame: pd.DataFrame, meta: dict[str, Any], horizon: int) -> np.ndarray:
    """The model's predicted close return ``horizon`` bars ahead at every bar (NaN in warm-up)."""
    feats = features(frame).to_numpy()
    ok = np.isfinite(feats).all(axis=1)
    out = np.full(len(frame), np.nan)
    if ok.any():
        x = np.empty((int(ok.sum()), feats.shape[1] + 2))
        x[:, : feats.shape[1]] = feats[ok]
        x[:, -2], x[:, -1] = horizon, 0
        out[ok] = np.expm1(booster.predict(x))
    return out


def backtest(ctx: JobContext, *, strategy: str, symbol: str, bars: dict[str, list], start_index: int = 0,
             parameters: dict[str, Any] | None = None, initial_balance: str = "10000", commission: str = "0",
             currency: str = "USDT", lot_size: str = "1", timeframe: str = "1h", model_path: str | None = None,
             model_meta: dict[str, Any] | None = None, horizon: int = 1) -> dict[str, Any]:
    """Backtest on the one engine: a registered strategy, or (with ``model_path``) the model's signals.

    Bars before ``start_index`` only warm the model's features up; trading starts there.
    Returns the engine's metrics, the trades and the equity curve (floats).
    """
    frame = _frame(bars)
    params = dict(parameters or {})
    if model_path is not None:
        ctx.progress(10, "Loading the model and predicting every bar...")
        predicted = model_returns(load_model(model_path), frame, model_meta or {}, int(horizon))[int(start_index):]
        frame = frame.iloc[int(start_index):]
        engine_strategy: Strategy = PredictionSignals(predicted, **params)
    else:
        frame = frame.iloc[int(start_index):]
        engine_strategy = create_strategy(strategy, params)
    config = BacktestConfig(strategy=strategy, params=dict(engine_strategy.params), symbol=symbol,
                            initial_balance=Decimal(initial_balance), commission=Decimal(commission),
                            lot_size=Decimal(lot_size), currency=currency)
    ctx.progress(30, f"Running {strategy} on {len(frame)} {timeframe} bars of {symbol}...")
    total = max(1, len(frame))

    def step(done: int, _n: int) -> None:
        if done % 500 == 0:
            ctx.progress(30 + 60 * done / total, f"Bar {done} of {total}")

    result = run_backtest(config, frame, strategy=engine_strategy, progress=step)
    ctx.progress(95, "Computing statistics...")
    out = result.to_dict()
    out["parameters"] = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in out["parameters"].items()}
    out["timeframe"] = timeframe
    return out
