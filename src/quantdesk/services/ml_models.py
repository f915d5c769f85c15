"""The ML backend's models, predictions and backtests: one user's LightGBM models over the core's bars and jobs.

Training, background predictions and backtests are internal jobs (``services.ml_jobs``) in the
one task queue, so they show in ``/api/system/*`` with their progress; this service records
their outcome (a model row, a prediction, a backtest) when the job ends. Everything is per
user: another user's model, prediction or backtest is "not found". Model names follow the
reference: ``{SYMBOL}_{timeframe}_{n}steps_multi_ohlc`` with crypto pairs spelled ``ETH_USDT``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.instruments import Instrument
from quantdesk.core.market import Timeframe
from quantdesk.engine.strategy import create_strategy
from quantdesk.services.accounts import Principal
from quantdesk.services.backtest_jobs import bars_to_columns
from quantdesk.services.job_ports import JobStatus, JobUpdate
from quantdesk.services.jobs import JobService, JobView
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.ml_jobs import (
    BACKTEST_JOB,
    MODEL_TYPE,
    PREDICT_JOB,
    TRAIN_JOB,
    WARMUP,
    PredictionSignals,
    min_bars,
)

log = logging.getLogger(__name__)
RESTART_REASON = "server restarted before it finished"

ML_STRATEGIES = ("mlpredictive", "ml_predictive")  # backtest strategy names that trade a model's signals
MAX_STEPS = 1000
MAX_DAYS = 3650
PREDICT_BARS = 200  # bars read for a prediction's features (warm-up is 35)
AUTO_TRAIN_STEPS = 24
AUTO_TRAIN_BARS = 1000
# how old a model may be before auto_train retrains it (the reference: 1m 2 days, 1h 7 days, 1d 30 days)
MAX_AGE_DAYS = {Timeframe.M1: 2, Timeframe.M5: 3, Timeframe.M15: 4, Timeframe.M30: 5, Timeframe.H1: 7,
                Timeframe.H4: 14, Timeframe.D1: 30}
DEFAULT_WAIT_S = 900.0


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A trained model: ``path`` is relative to the data directory; ``details`` holds importance and calibration."""

    id: str
    user_id: int
    name: str
    type: str
    symbol: str
    timeframe: str
    n_steps_ahead: int
    path: str
    size_bytes: int
    trained_at: datetime
    performance: dict[str, Any]
    details: dict[str, Any]
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """A stored prediction: ``result`` is the reference's prediction body once ``status`` is completed."""

    id: str
    user_id: int
    symbol: str
    timeframe: str
    status: str
    created_at: datetime
    model_name: str | None = None
    task_id: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BacktestRecord:
    """A backtest run: ``status`` queued, running, success or failed; ``result`` the engine's figures."""

    id: str
    user_id: int
    strategy: str
    symbol: str
    timeframe: str
    start_date: datetime
    end_date: datetime
    config: dict[str, Any]
    status: str
    created_at: datetime
    task_id: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    completed_at: datetime | None = None


class MlStore(Protocol):
    """Persistence of models, predictions and backtests; every read is by owner."""

    def save_model(self, model: ModelRecord) -> None:
        """Insert the model, or replace the user's model of the same name."""
        ...

    def get_model(self, user_id: int, name: str) -> ModelRecord | None: ...

    def list_models(self, user_id: int) -> list[ModelRecord]:
        """The user's models, newest first."""
        ...

    def add_prediction(self, prediction: PredictionRecord) -> None: ...

    def update_prediction(self, prediction_id: str, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Set columns of one prediction (with ``only_if``, only while its status is one of those)."""
        ...

    def get_prediction(self, user_id: int, prediction_id: str) -> PredictionRecord | None: ...

    def list_predictions(self, user_id: int, *, symbol: str | None = None, timeframe: str | None = None,
                         limit: int = 100) -> list[PredictionRecord]:
        """The user's predictions, newest first."""
        ...

    def add_backtest(self, backtest: BacktestRecord) -> None: ...

    def update_backtest(self, backtest_id: str, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool: ...

    def get_backtest(self, user_id: int, backtest_id: str) -> BacktestRecord | None: ...

    def fail_unfinished(self, error: str, now: datetime) -> int:
        """Mark every queued or running prediction and backtest failed with ``error``; return how many."""
        ...

    def list_backtests(self, user_id: int, *, limit: int = 100) -> list[BacktestRecord]:
        """The user's backtests, newest first."""
        ...


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    """A training request: the model once trained (``model``), else the job still queued or running."""

    job: JobView
    name: str
    model: ModelRecord | None = None


@dataclass
class _Tracked:
    listeners: list[asyncio.Queue] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: JobUpdate | None = None


def ml_symbol(instrument: Instrument) -> str:
    """The ML reference's spelling: ``ETH_USDT`` for pairs, the ticker for stocks."""
    return instrument.id.spell("underscore")


def model_name(symbol: str, timeframe: str, n_steps: int) -> str:
    return f"{symbol}_{timeframe}_{n_steps}steps_{MODEL_TYPE}"


class MlModels:
    """Train, list and use each user's models; store predictions; run backtests on the one engine."""

    def __init__(self, store: MlStore, market: MarketDataService, jobs: JobService, data_dir: Path,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._store = store
        self._market = market
        self._jobs = jobs
        self._data_dir = Path(data_dir)
        self._now = now
        self._tracked: dict[str, _Tracked] = {}
        self._tasks: set[asyncio.Task] = set()
        for job_type in (TRAIN_JOB, PREDICT_JOB, BACKTEST_JOB):
            jobs.register(job_type)

    # -- inputs -------------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        try:
            return self._market.resolve(symbol)
        except NotFoundError:
            raise InvalidInputError(f"symbol {symbol!r} is not a known instrument; see /api/market/symbols",
                                    field="symbol", details={"symbol": symbol}) from None

    @staticmethod
    def _timeframe(timeframe: str) -> Timeframe:
        return Timeframe.parse(timeframe)

    def recover(self) -> int:
        """At server start: predictions and backtests a previous process left unfinished are failed
        (their tasks, internal to that process, were failed by the job service)."""
        count = self._store.fail_unfinished(RESTART_REASON, datetime.now(UTC))
        if count:
            log.warning("%d prediction(s)/backtest(s) were unfinished when the server stopped; marked failed", count)
        return count

    def model_file(self, model: ModelRecord) -> Path:
        """Where the model's LightGBM text file is."""
        return self._data_dir / model.path

    # -- job tracking -------------------------------------------------------------------------

    def _watch(self, on_end: Callable[[JobUpdate], Awaitable[None]],
               on_progress: Callable[[JobUpdate], Awaitable[None]] | None = None) -> tuple[Callable, _Tracked]:
        tracked = _Tracked()
        first = [True]

        def watcher(update: JobUpdate) -> None:  # on the event loop; must not block
            if update.status is JobStatus.RUNNING:
                for q in tracked.listeners:
                    q.put_nowait(update)
                if first[0] and on_progress is not None:
                    first[0] = False
                    self._spawn(on_progress(update))
                return
            self._spawn(self._end(update, tracked, on_end))

        return watcher, tracked

    async def _end(self, update: JobUpdate, tracked: _Tracked, on_end: Callable[[JobUpdate], Awaitable[None]]):
        try:
            await on_end(update)
        except Exception:  # the job ended; a failure recording it must still release the waiters
            log.exception("recording the end of job %s failed", update.job_id)
        tracked.final = update
        tracked.done.set()
        for q in tracked.listeners:
            q.put_nowait(update)
        self._tracked.pop(update.job_id, None)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, owner: int, job_type: str, params: dict[str, Any], description: str,
                      on_end: Callable[[JobUpdate], Awaitable[None]],
                      on_progress: Callable[[JobUpdate], Awaitable[None]] | None = None,
                      listener: asyncio.Queue | None = None) -> tuple[JobView, _Tracked]:
        watcher, tracked = self._watch(on_end, on_progress)
        if listener is not None:
            tracked.listeners.append(listener)
        job = await self._jobs.submit_internal(owner, job_type, params, watcher=watcher, description=description)
        self._tracked[job.id] = tracked
        view = await self._jobs.get(None, job.id)
        return view, tracked

    @staticmethod
    async def _wait(tracked: _Tracked, timeout_s: float) -> JobUpdate:
        async with asyncio.timeout(timeout_s):
            await tracked.done.wait()
        if tracked.final is None:  # set before done; guards against a future reordering
            raise RuntimeError("job tracking ended without a final update")
        return tracked.final

    # -- models -------------------------------------------------------------------------------

    async def train(self, principal: Principal, *, symbol: str, timeframe: str, n_steps_ahead: int,
                    days_history: int | None = None, bars: int | None = None, seed: int = 42,
                    n_estimators: int = 200, wait: bool = True, wait_s: float = DEFAULT_WAIT_S) -> TrainOutcome:
        """Queue a training job (history of ``days_history`` days, or the last ``bars`` bars).

        With ``wait`` and a job that started at once, return when the model is saved. Raises
        InvalidInputError naming the field: unknown symbol or timeframe, steps or days out of
        range, too little history for the horizon.
        """
        instrument = self._instrument(symbol)
        tf = self._timeframe(timeframe)
        if not 1 <= n_steps_ahead <= MAX_STEPS:
            raise InvalidInputError(f"n_steps_ahead {n_steps_ahead} must be between 1 and {MAX_STEPS}",
                                    field="n_steps_ahead")
        if days_history is not None and not 1 <= days_history <= MAX_DAYS:
            raise InvalidInputError(f"days_history {days_history} must be between 1 and {MAX_DAYS}",
                                    field="days_history")
        if bars is not None:
            frame = await asyncio.to_thread(self._market.history, instrument, tf, limit=bars)
        else:
            now = self._now()
            frame = await asyncio.to_thread(self._market.history, instrument, tf,
                                            now - timedelta(days=days_history or 30), now)
        need = min_bars(n_steps_ahead)
        if len(frame) < need:
            raise InvalidInputError(
                f"{len(frame)} {tf.value} bars of {ml_symbol(instrument)} in the last {days_history or 30} days are "
                f"too few to train {n_steps_ahead} steps ahead; need at least {need} (raise days_history or lower "
                "n_steps_ahead)", field="days_history", details={"bars": len(frame), "required": need})
        sym = ml_symbol(instrument)
        name = model_name(sym, tf.value, n_steps_ahead)
        rel = Path("models") / str(principal.user_id) / f"{name}.txt"
        params = {"bars": bars_to_columns(frame), "n_steps_ahead": n_steps_ahead,
                  "model_path": str(self._data_dir / rel), "seed": seed, "n_estimators": n_estimators}
        user_id = principal.user_id

        async def on_end(update: JobUpdate) -> None:
            if update.status is not JobStatus.COMPLETED or not update.result:
                return
            meta = dict(update.result)
            record = ModelRecord(
                id=str(uuid.uuid4()), user_id=user_id, name=name, type=MODEL_TYPE, symbol=sym, timeframe=tf.value,
                n_steps_ahead=n_steps_ahead, path=rel.as_posix(), size_bytes=int(meta.pop("size_bytes", 0)),
                trained_at=self._now(), performance=meta.pop("performance", {}), details=meta,
                task_id=update.job_id,
            )
            await asyncio.to_thread(self._store.save_model, record)

        view, tracked = await self._submit(user_id, TRAIN_JOB.name, params, f"Training {name}", on_end)
        if not wait or view.job.status is JobStatus.QUEUED:
            return TrainOutcome(view, name)
        final = await self._wait(tracked, wait_s)
        if final.status is not JobStatus.COMPLETED:
            raise InvalidInputError(f"training {name} {final.status.value}: {final.error or 'no result'}",
                                    field="symbol")
        return TrainOutcome(await self._jobs.get(None, view.job.id), name, await self.model(principal, name))

    async def models(self, principal: Principal) -> list[ModelRecord]:
        """The caller's models, newest first."""
        return await asyncio.to_thread(self._store.list_models, principal.user_id)

    async def model(self, principal: Principal, name: str) -> ModelRecord:
        """One of the caller's models by name; NotFoundError otherwise."""
        found = await asyncio.to_thread(self._store.get_model, principal.user_id, name)
        if found is None:
            raise NotFoundError("model", name, message=f"model {name!r} not found")
        return found

    async def _freshest(self, user_id: int, symbol: str, timeframe: str) -> ModelRecord | None:
        models = await asyncio.to_thread(self._store.list_models, user_id)
        mine = [m for m in models if m.symbol == symbol and m.timeframe == timeframe]
        return max(mine, key=lambda m: m.trained_at) if mine else None

    # -- predictions --------------------------------------------------------------------------

    async def _model_for(self, principal: Principal, instrument: Instrument, tf: Timeframe, *, auto_train: bool,
                         force_retrain: bool = False, progress: Callable[[str, str, str], Awaitable[None]] | None = None
                         ) -> tuple[ModelRecord, bool]:
        sym = ml_symbol(instrument)
        model = await self._freshest(principal.user_id, sym, tf.value)
        outdated = model is not None and self._now() - model.trained_at > timedelta(days=MAX_AGE_DAYS[tf])
        if model is not None and not force_retrain and not (outdated and auto_train):
            return model, False
        if not auto_train and model is None:
            raise NotFoundError("model", f"{sym} {tf.value}",
                                message=f"no trained model for {sym} {tf.value}; train one with POST /api/models/train "
                                        "or ask with auto_train=true")
        if not auto_train:
            return model, False  # type: ignore[return-value]  # force_retrain without auto_train: keep it
        if progress is not None:
            await progress("train", "Training model", f"Training a model for {sym} {tf.value}...")
        steps = model.n_steps_ahead if model is not None else AUTO_TRAIN_STEPS
        outcome = await self.train(principal, symbol=sym, timeframe=tf.value, n_steps_ahead=steps,
                                   bars=max(AUTO_TRAIN_BARS, 2 * min_bars(steps)), wait=False)
        tracked = self._tracked.get(outcome.job.job.id)
        if tracked is not None:
            await self._wait(tracked, DEFAULT_WAIT_S)
        job = await self._jobs.wait(outcome.job.job.id, timeout_s=DEFAULT_WAIT_S)
        if job.status is not JobStatus.COMPLETED:
            raise InvalidInputError(f"training a model for {sym} {tf.value} {job.status.value}: {job.error}",
                                    field="symbol")
        return await self.model(principal, outcome.name), True

    async def _latest_bars(self, instrument: Instrument, tf: Timeframe) -> dict[str, list]:
        frame = await asyncio.to_thread(self._market.history, instrument, tf, limit=PREDICT_BARS)
        if len(frame) <= WARMUP:
            raise InvalidInputError(f"only {len(frame)} {tf.value} bars of {ml_symbol(instrument)}; a prediction needs "
                                    f"more than {WARMUP}", field="symbol")
        return bars_to_columns(frame)

    def _predict_params(self, model: ModelRecord, bars: dict[str, list], tf: Timeframe) -> dict[str, Any]:
        return {"bars": bars, "model_path": str(self.model_file(model)), "n_steps_ahead": model.n_steps_ahead,
                "meta": {"anchors": model.details["anchors"], "val_rmse": model.details["val_rmse"]},
                "step_seconds": tf.seconds}

    def _decorate(self, result: dict[str, Any], model: ModelRecord, trained: bool) -> dict[str, Any]:
        age = (self._now() - model.trained_at).days
        return {**result, "model_trained": trained, "model_name": model.name, "model_age_days": age}

    async def predict(self, principal: Principal, *, symbol: str, timeframe: str, auto_train: bool = True,
                      force_retrain: bool = False,
                      progress: Callable[[str, str, str], Awaitable[None]] | None = None) -> PredictionRecord:
        """Predict now with the freshest model for symbol and timeframe (training first if allowed); stored.

        Raises InvalidInputError (unknown symbol or timeframe, too little history) and
        NotFoundError (no model and ``auto_train`` false).
        """
        instrument = self._instrument(symbol)
        tf = self._timeframe(timeframe)
        if progress is not None:
            await progress("check", "Checking for model", "Looking for trained model...")
        model, trained = await self._model_for(principal, instrument, tf, auto_train=auto_train,
                                               force_retrain=force_retrain, progress=progress)
        if progress is not None:
            await progress("fetch", "Fetching market data", f"Reading the latest {tf.value} bars...")
        bars = await self._latest_bars(instrument, tf)
        if progress is not None:
            await progress("predict", "Generating predictions", f"Predicting {model.n_steps_ahead} steps ahead...")
        record = PredictionRecord(str(uuid.uuid4()), principal.user_id, ml_symbol(instrument), tf.value, "running",
                                  self._now(), model_name=model.name)
        await asyncio.to_thread(self._store.add_prediction, record)
        holder: dict[str, Any] = {}

        async def on_end(update: JobUpdate) -> None:
            holder.update(await self._finish_prediction(record.id, update, model, trained))

        _view, tracked = await self._submit(principal.user_id, PREDICT_JOB.name,
                                            self._predict_params(model, bars, tf),
                                            f"Predicting {model.name}", on_end)
        await asyncio.to_thread(self._store.update_prediction, record.id, task_id=_view.job.id)
        final = await self._wait(tracked, DEFAULT_WAIT_S)
        if final.status is not JobStatus.COMPLETED:
            raise InvalidInputError(f"prediction {final.status.value}: {final.error or 'no result'}", field="symbol")
        return await self.prediction(principal, record.id)

    async def _finish_prediction(self, prediction_id: str, update: JobUpdate, model: ModelRecord,
                                 trained: bool) -> dict[str, Any]:
        values: dict[str, Any] = {"completed_at": self._now()}
        if update.status is JobStatus.COMPLETED and update.result is not None:
            values.update(status="completed", result=self._decorate(update.result, model, trained))
        else:
            values.update(status="failed" if update.status is JobStatus.FAILED else update.status.value,
                          error=update.error or update.status.value)
        await asyncio.to_thread(self._store.update_prediction, prediction_id, **values)
        return values

    async def generate(self, principal: Principal, *, symbol: str, timeframe: str,
                       auto_train: bool = True) -> tuple[PredictionRecord, JobView]:
        """Start a prediction in the background (training first when needed and allowed); return it and its job."""
        instrument = self._instrument(symbol)
        tf = self._timeframe(timeframe)
        sym = ml_symbol(instrument)
        model = await self._freshest(principal.user_id, sym, tf.value)
        if model is None and not auto_train:
            raise NotFoundError("model", f"{sym} {tf.value}",
                                message=f"no trained model for {sym} {tf.value}; train one with POST /api/models/train "
                                        "or ask with auto_train=true")
        record = PredictionRecord(str(uuid.uuid4()), principal.user_id, sym, tf.value, "queued", self._now(),
                                  model_name=model.name if model else None)
        await asyncio.to_thread(self._store.add_prediction, record)
        if model is None:  # train first, in the background, then predict
            outcome = await self.train(principal, symbol=sym, timeframe=tf.value, n_steps_ahead=AUTO_TRAIN_STEPS,
                                       bars=max(AUTO_TRAIN_BARS, 2 * min_bars(AUTO_TRAIN_STEPS)), wait=False)
            await asyncio.to_thread(self._store.update_prediction, record.id, task_id=outcome.job.job.id)
            self._spawn(self._predict_after_training(principal, record, instrument, tf, outcome))
            return replace(record, task_id=outcome.job.job.id), outcome.job
        bars = await self._latest_bars(instrument, tf)
        view, _tracked = await self._start_prediction(principal, record, model, bars, tf, trained=False)
        return replace(record, task_id=view.job.id), view

    async def _start_prediction(self, principal: Principal, record: PredictionRecord, model: ModelRecord,
                                bars: dict[str, list], tf: Timeframe, *, trained: bool) -> tuple[JobView, _Tracked]:
        async def on_end(update: JobUpdate) -> None:
            await self._finish_prediction(record.id, update, model, trained)

        async def on_progress(update: JobUpdate) -> None:
            await asyncio.to_thread(self._store.update_prediction, record.id, only_if=("queued",), status="running")

        view, tracked = await self._submit(principal.user_id, PREDICT_JOB.name, self._predict_params(model, bars, tf),
                                           f"Predicting {model.name}", on_end, on_progress)
        await asyncio.to_thread(self._store.update_prediction, record.id, task_id=view.job.id,
                                model_name=model.name)
        return view, tracked

    async def _predict_after_training(self, principal: Principal, record: PredictionRecord, instrument: Instrument,
                                      tf: Timeframe, outcome: TrainOutcome) -> None:
        try:
            job = await self._jobs.wait(outcome.job.job.id, timeout_s=DEFAULT_WAIT_S)
            if job.status is not JobStatus.COMPLETED:
                raise InvalidInputError(f"training {outcome.name} {job.status.value}: {job.error}", field="symbol")
            tracked = self._tracked.get(job.id)
            if tracked is not None:
                await self._wait(tracked, DEFAULT_WAIT_S)
            model = await self.model(principal, outcome.name)
            bars = await self._latest_bars(instrument, tf)
            await self._start_prediction(principal, record, model, bars, tf, trained=True)
        except Exception as exc:  # a background step: record why the prediction failed
            log.warning("prediction %s failed before predicting: %s", record.id, exc)
            await asyncio.to_thread(self._store.update_prediction, record.id, status="failed", error=str(exc),
                                    completed_at=self._now())

    async def prediction(self, principal: Principal, prediction_id: str) -> PredictionRecord:
        """One of the caller's predictions; NotFoundError otherwise."""
        found = await asyncio.to_thread(self._store.get_prediction, principal.user_id, prediction_id)
        if found is None:
            raise NotFoundError("prediction", prediction_id, message=f"prediction {prediction_id!r} not found")
        return found

    async def predictions(self, principal: Principal, *, symbol: str | None = None, timeframe: str | None = None,
                          limit: int = 100) -> list[PredictionRecord]:
        """The caller's predictions newest first, optionally of one symbol and timeframe."""
        sym = ml_symbol(self._instrument(symbol)) if symbol else None
        tf = self._timeframe(timeframe).value if timeframe else None
        return await asyncio.to_thread(self._store.list_predictions, principal.user_id, symbol=sym, timeframe=tf,
                                       limit=limit)

    # -- backtests ----------------------------------------------------------------------------

    async def run_backtest(self, principal: Principal, *, strategy: str, symbol: str, start: datetime, end: datetime,
                           initial_capital: float, params: dict[str, Any] | None = None, timeframe: str = "1h",
                           commission: float = 0.0,
                           listener: asyncio.Queue | None = None) -> tuple[BacktestRecord, JobView]:
        """Queue a backtest of a registered strategy, or of a model's signals (``MLPredictive``), on the one engine.

        ``params.model_path`` names the caller's model for ``MLPredictive``; its other keys are
        ``threshold``, ``position_size``, ``stop_loss_pct``, ``allow_short`` and ``horizon``.
        Raises InvalidInputError naming the field for an unknown strategy, symbol, timeframe or
        model, bad parameters, ``start_date`` not before ``end_date`` or no bars.
        """
        instrument = self._instrument(symbol)
        tf = self._timeframe(timeframe)
        if start >= end:
            raise InvalidInputError(f"start_date {start.isoformat()} must be before end_date {end.isoformat()}",
                                    field="start_date")
        if not initial_capital > 0:
            raise InvalidInputError(f"initial_capital {initial_capital} must be positive", field="initial_capital")
        if not 0 <= commission < 0.1:
            raise InvalidInputError(f"commission {commission} must be a fraction per side in [0, 0.1)",
                                    field="commission")
        params = dict(params or {})
        job: dict[str, Any] = {}
        fetch_start = start
        if strategy.strip().lower() in ML_STRATEGIES:
            name = params.pop("model_path", None) or params.pop("model_name", None)
            if not name:
                raise InvalidInputError("MLPredictive needs params.model_path, the name of one of your models",
                                        field="params.model_path")
            try:
                model = await self.model(principal, str(name))
            except NotFoundError:
                raise InvalidInputError(f"model {name!r} not found among your models", field="params.model_path",
                                        details={"model_path": name}) from None
            horizon = int(params.pop("horizon", 1))
            if not 1 <= horizon <= model.n_steps_ahead:
                raise InvalidInputError(f"horizon {horizon} must be between 1 and {model.n_steps_ahead}",
                                        field="params.horizon")
            params = dict(PredictionSignals(np.zeros(0), **params).params)
            job.update(model_path=str(self.model_file(model)), horizon=horizon,
                       model_meta={"anchors": model.details["anchors"]})
            fetch_start = start - tf.delta * (WARMUP + 5)
        else:
            try:
                params = dict(create_strategy(strategy, params).params)
            except NotFoundError:
                raise InvalidInputError(f"strategy {strategy!r} is not registered; see /api/strategies/available "
                                        "or use MLPredictive", field="strategy") from None
        frame = await asyncio.to_thread(self._market.history, instrument, tf, fetch_start, end)
        start_index = int((frame.index < start).sum())
        if len(frame) - start_index < 2:
            raise InvalidInputError(f"no {tf.value} bars of {ml_symbol(instrument)} between {start.isoformat()} and "
                                    f"{end.isoformat()}", field="start_date")
        jparams = {k: (str(v) if not isinstance(v, int | float | bool | str) else v) for k, v in params.items()}
        config = {"initial_capital": initial_capital, "commission": commission, "params": jparams, **(
            {"model_path": job["model_path"].rsplit("/", 1)[-1][:-4], "horizon": job["horizon"]}
            if "model_path" in job else {})}
        record = BacktestRecord(str(uuid.uuid4()), principal.user_id, strategy, ml_symbol(instrument), tf.value,
                                start, end, config, "queued", self._now())
        await asyncio.to_thread(self._store.add_backtest, record)
        job.update(strategy=strategy, symbol=instrument.symbol, bars=bars_to_columns(frame), start_index=start_index,
                   parameters=jparams, initial_balance=str(initial_capital), commission=str(commission),
                   currency=instrument.currency, lot_size=str(instrument.lot_size), timeframe=tf.value)

        async def on_end(update: JobUpdate) -> None:
            values: dict[str, Any] = {"completed_at": self._now()}
            if update.status is JobStatus.COMPLETED:
                values.update(status="success", result=update.result)
            else:
                values.update(status="failed", error=update.error or update.status.value)
            await asyncio.to_thread(self._store.update_backtest, record.id, **values)

        async def on_progress(update: JobUpdate) -> None:
            await asyncio.to_thread(self._store.update_backtest, record.id, only_if=("queued",), status="running")

        view, _tracked = await self._submit(principal.user_id, BACKTEST_JOB.name, job,
                                            f"Backtesting {strategy} on {record.symbol}", on_end, on_progress, listener)
        await asyncio.to_thread(self._store.update_backtest, record.id, task_id=view.job.id)
        return replace(record, task_id=view.job.id), view

    async def backtest(self, principal: Principal, backtest_id: str) -> BacktestRecord:
        """One of the caller's backtests; NotFoundError otherwise."""
        found = await asyncio.to_thread(self._store.get_backtest, principal.user_id, backtest_id)
        if found is None:
            raise NotFoundError("backtest", backtest_id, message=f"backtest {backtest_id!r} not found")
        return found

    async def backtests(self, principal: Principal, limit: int = 100) -> list[BacktestRecord]:
        """The caller's backtests, newest first."""
        return await asyncio.to_thread(self._store.list_backtests, principal.user_id, limit=limit)

    async def backtest_events(self, principal: Principal, **request: Any) -> AsyncIterator[tuple[str, dict]]:
        """Run a backtest and yield ``(event, data)``: status updates with progress, then complete or error."""
        queue: asyncio.Queue = asyncio.Queue()
        record, view = await self.run_backtest(principal, listener=queue, **request)
        yield "status", {"step": "queue", "status": view.job.status.value, "title": "Backtest submitted",
                         "message": view.job.reason or view.job.description, "backtest_id": record.id,
                         "task_id": view.job.id, "progress": 0.0}
        while True:
            update: JobUpdate = await queue.get()
            if update.status is JobStatus.RUNNING:
                yield "status", {"step": "run", "status": "in-progress", "title": "Running backtest",
                                 "message": f"{update.progress:.0f}% done", "backtest_id": record.id,
                                 "progress": update.progress}
                continue
            done = await self.backtest(principal, record.id)
            if done.status == "success":
                yield "complete", {"backtest_id": record.id, **(done.result or {})}
            else:
                yield "error", {"message": done.error or "backtest failed", "backtest_id": record.id}
            return
