"""Composition root: build adapters and services from settings, mount the five surfaces."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from quantdesk import __version__
from quantdesk.adapters.bars.parquet import ParquetBarStore
from quantdesk.adapters.bus.memory import InMemoryEventBus
from quantdesk.adapters.db.accounts import SqlAccountStore
from quantdesk.adapters.db.bot_state import SqlBotStateStore
from quantdesk.adapters.db.breakout import SqlBreakoutStore
from quantdesk.adapters.db.engine import make_engine, migrate, ping
from quantdesk.adapters.db.fluxscan import SqlFluxScanStore
from quantdesk.adapters.db.instruments import SqlInstrumentRegistry
from quantdesk.adapters.db.jobs import SqlJobStore
from quantdesk.adapters.db.key_vault import SqlKeyVaultStore
from quantdesk.adapters.db.ml_models import SqlMlStore
from quantdesk.adapters.db.ml_strategies import SqlConfiguredStrategyStore
from quantdesk.adapters.db.paper_accounts import SqlPaperAccounts
from quantdesk.adapters.db.pystrategies import SqlStrategyStore
from quantdesk.adapters.executors.local import LocalExecutor
from quantdesk.adapters.executors.resources import machine_resources
from quantdesk.adapters.feeds.calendars import nse_session_rules
from quantdesk.adapters.feeds.file import FileFeed
from quantdesk.adapters.feeds.live_sim import LiveSimFeed
from quantdesk.adapters.feeds.reference_data import builtin_instruments, reference_prices
from quantdesk.adapters.feeds.sim import SimFeed
from quantdesk.adapters.keyfile import load_or_create_secret
from quantdesk.adapters.limits.memory import MemoryRateCounter
from quantdesk.adapters.process_figures import process_figures
from quantdesk.adapters.processes.files import DiskStrategyFiles
from quantdesk.adapters.processes.launcher import ProcessLauncher
from quantdesk.adapters.sandbox.scan_batches import SCAN_BATCH_JOB, JobScannerExecutor
from quantdesk.adapters.scheduling.timed_jobs import ApsJobScheduler
from quantdesk.adapters.system import resource_figures
from quantdesk.core.instruments import Venue
from quantdesk.core.sessions import crypto_rules
from quantdesk.services.accounts import AccountService
from quantdesk.services.breakout import BreakoutService
from quantdesk.services.catalog import InstrumentCatalog
from quantdesk.services.fluxscan import FluxScanService
from quantdesk.services.fluxscan_bars import ScanBarsLoader
from quantdesk.services.fluxscan_scans import ScanService
from quantdesk.services.fluxscan_schedules import ScheduleService
from quantdesk.services.health import HealthService
from quantdesk.services.jobs import JobService
from quantdesk.services.key_vault import KeyVault
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.ml_models import MlModels
from quantdesk.services.ml_portfolio import PortfolioService
from quantdesk.services.ml_strategies import ConfiguredStrategies
from quantdesk.services.pystrategies import PyStrategyConfig, PyStrategyService
from quantdesk.services.secrets import SecretBox
from quantdesk.services.trading import ExchangeKeys, TradingConfig, TradingService
from quantdesk.settings import Settings
from quantdesk.surfaces.breakout import errors as breakout_errors
from quantdesk.surfaces.breakout import routes as breakout_routes
from quantdesk.surfaces.breakout import ws as breakout_ws
from quantdesk.surfaces.fluxscan import errors as fluxscan_errors
from quantdesk.surfaces.fluxscan import market as fluxscan_market
from quantdesk.surfaces.fluxscan import routes as fluxscan_routes
from quantdesk.surfaces.fluxscan import socketio as fluxscan_socketio
from quantdesk.surfaces.mlbackend import backtests as ml_backtests_routes
from quantdesk.surfaces.mlbackend import errors as ml_errors
from quantdesk.surfaces.mlbackend import keys as ml_keys
from quantdesk.surfaces.mlbackend import market as ml_market
from quantdesk.surfaces.mlbackend import models as ml_models_routes
from quantdesk.surfaces.mlbackend import portfolio as ml_portfolio_routes
from quantdesk.surfaces.mlbackend import predictions as ml_predictions_routes
from quantdesk.surfaces.mlbackend import strategies as ml_strategies
from quantdesk.surfaces.mlbackend import system as ml_system
from quantdesk.surfaces.pystrategies import errors as pystrategies_errors
from quantdesk.surfaces.pystrategies import routes as pystrategies_routes
from quantdesk.surfaces.pystrategies import ws as pystrategies_ws
from quantdesk.surfaces.scalper import errors as scalper_errors
from quantdesk.surfaces.scalper import routes as scalper_routes
from quantdesk.surfaces.shared import accounts as accounts_routes
from quantdesk.surfaces.shared import health as health_routes
from quantdesk.surfaces.shared import pages
from quantdesk.surfaces.shared import ws as ws_routes
from quantdesk.surfaces.shared.errors import ErrorRouter, install_handlers
from quantdesk.surfaces.shared.gateway import Gateway, RateLimits
from quantdesk.surfaces.shared.responses import JsonResponse

if TYPE_CHECKING:
    from quantdesk.adapters.feeds.ccxt_live import CcxtLiveFeed

log = logging.getLogger("quantdesk")

OPENAPI_TAGS = [
    {"name": "auth", "description": "Login, API keys, users (all surfaces)"},
    {"name": "system", "description": "Health"},
    {"name": "fluxscan", "description": "Stock scanner (1-fluxscan-scanner-api.md)"},
    {"name": "scalper", "description": "Crypto futures bot (2-crypto-scalper-api.md)"},
    {"name": "pystrategies", "description": "Hosted Python strategies (3-python-strategies-api.md)"},
    {"name": "breakout", "description": "Breakout engine (4-breakout-bot-api.md)"},
    {"name": "mlbackend", "description": "ML backend (5-ml-backend-api.md)"},
]

PUBLIC = {("GET", "/api/health"), ("HEAD", "/api/health"), ("POST", "/api/v1/auth/login"),
          ("GET", "/login"), ("POST", "/login")}


@dataclass
class Runtime:
    """Everything built from settings; owned by one app (or one CLI command)."""

    settings: Settings
    engine: Engine
    accounts: AccountService
    bus: InMemoryEventBus
    counter: object
    health: HealthService
    generated_admin_password: str | None = None
    closers: list = field(default_factory=list)
    market: MarketDataService | None = None
    jobs: JobService | None = None
    trading: TradingService | None = None
    fluxscan: FluxScanParts | None = None
    key_vault: KeyVault | None = None
    ml_strategies: ConfiguredStrategies | None = None
    pystrategies: PyStrategyService | None = None
    breakout: BreakoutService | None = None
    ml_models: MlModels | None = None
    ml_portfolio: PortfolioService | None = None


@dataclass
class FluxScanParts:
    """FluxScan's services and the executor that runs scanner code as batches in the job system."""

    service: FluxScanService
    scans: ScanService
    schedules: ScheduleService
    executor: JobScannerExecutor


def build_runtime(settings: Settings, *, apply_migrations: bool = True) -> Runtime:
    """Build adapters and services (migrations applied, first admin created)."""
    engine = make_engine(settings.database_url)
    if apply_migrations:
        migrate(settings.database_url)
    secret = load_or_create_secret(settings.secret_key_file)
    accounts = AccountService(
        SqlAccountStore(engine), secret, token_ttl_s=settings.access_token_ttl_s, session_ttl_s=settings.session_ttl_s
    )
    admin_pw = settings.admin_password.get_secret_value() if settings.admin_password else None
    generated = accounts.ensure_admin(settings.admin_user, admin_pw)
    if settings.redis_url:
        from quantdesk.adapters.bus.redis import RedisEventBus
        from quantdesk.adapters.limits.redis import RedisRateCounter

        bus: InMemoryEventBus = RedisEventBus(settings.redis_url)
        counter: object = RedisRateCounter(settings.redis_url)
    else:
        bus = InMemoryEventBus()
        counter = MemoryRateCounter()
    checks = {"database": lambda: ping(engine)}
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=1)
        checks["redis"] = client.ping
    health = HealthService(__version__, checks, resource_figures)
    market = build_market(settings, engine)
    jobs = _build_jobs(settings, engine, bus)
    key_vault = KeyVault(SqlKeyVaultStore(engine), SecretBox(secret), live_provider=settings.ccxt_exchange)
    trading = _build_trading(settings, engine, market, bus, jobs, exchange_keys=key_vault)
    breakout_store = SqlBreakoutStore(engine)
    breakout = BreakoutService(trading, bus, states=breakout_store, presets_store=breakout_store.presets(),
                               system=process_figures, offload=True)
    health.engine_state = breakout.health_state
    fluxscan = _build_fluxscan(settings, engine, market, bus, SecretBox(secret), jobs)
    ml_strategies_service = ConfiguredStrategies(SqlConfiguredStrategyStore(engine), market)
    pystrategies = _build_pystrategies(settings, engine, market, bus, SecretBox(secret))
    ml_models = MlModels(SqlMlStore(engine), market, jobs, settings.data_dir)
    return Runtime(settings, engine, accounts, bus, counter, health, generated, jobs=jobs, market=market,
                   trading=trading, fluxscan=fluxscan, key_vault=key_vault, ml_strategies=ml_strategies_service,
                   pystrategies=pystrategies, breakout=breakout, ml_models=ml_models,
                   ml_portfolio=PortfolioService(trading))


def _build_pystrategies(settings: Settings, engine: Engine, market: MarketDataService, bus: InMemoryEventBus,
                        secrets: SecretBox) -> PyStrategyService:
    """Hosted Python strategies: scripts under data_dir/strategies, one OS process each, IST schedules."""
    rules = market.sessions.get(Venue.NSE) or nse_session_rules()
    return PyStrategyService(SqlStrategyStore(engine), DiskStrategyFiles(settings.data_dir / "strategies"),
                             ProcessLauncher(), ApsJobScheduler(), secrets, bus, holidays=rules.holidays,
                             config=PyStrategyConfig(max_script_bytes=settings.max_upload_bytes))


def _openalgo_ping(base_url: str, api_key: str) -> tuple[bool, str]:
    from quantdesk.adapters.feeds.openalgo import OpenAlgoFeed

    feed = OpenAlgoFeed(base_url, api_key, max_attempts=1, timeout_s=5.0)
    try:
        return feed.ping()
    finally:
        feed.close()


def _build_fluxscan(settings: Settings, engine: Engine, market: MarketDataService, bus: InMemoryEventBus,
                    secrets: SecretBox, jobs: JobService) -> FluxScanParts:
    """FluxScan: SQL store, scanner code run as ``scan_batch`` jobs, scans and APScheduler schedules."""
    store = SqlFluxScanStore(engine)
    service = FluxScanService(store, market, probe=_openalgo_ping, secrets=secrets)
    jobs.register(SCAN_BATCH_JOB)
    executor = JobScannerExecutor(jobs, settings.data_dir / "spool" / "scans", per_symbol_timeout_s=5.0,
                                  memory_limit_mb=1024)
    scans = ScanService(store, service, executor, bus, ScanBarsLoader(market), jobs=jobs)
    rules = market.sessions.get(Venue.NSE) or nse_session_rules()
    schedules = ScheduleService(store, service, scans, ApsJobScheduler(), rules)
    return FluxScanParts(service, scans, schedules, executor)


def _build_trading(settings: Settings, engine: Engine, market: MarketDataService, bus: InMemoryEventBus,
                   jobs: JobService, exchange_keys: ExchangeKeys | None = None) -> TradingService:
    """Paper trading for every surface, every command (and bot or strategy change) persisted before it is acknowledged."""
    config = TradingConfig(initial_balance=settings.paper_initial_balance, offload_commands=True)
    accounts = SqlPaperAccounts(engine)
    return TradingService(market, bus, config=config, ledger_stores=accounts.ledger_store, accounts=accounts,
                          trade_query=accounts, jobs=jobs, bot_states=SqlBotStateStore(engine),
                          exchange_keys=exchange_keys)


def _live_feed(settings: Settings, market: MarketDataService) -> LiveSimFeed | CcxtLiveFeed | None:
    """The live feed of the crypto perpetuals (publishes market:/book:/bars: topics): sim, or ccxt.pro streams."""
    if not settings.live_feed_speed:
        return None
    perpetuals = market.list_symbols(kind="perpetual")
    if settings.crypto_provider == "ccxt":
        from quantdesk.adapters.feeds.ccxt_live import CcxtLiveFeed

        return CcxtLiveFeed(settings.ccxt_exchange, perpetuals, base_url=settings.ccxt_base_url,
                            ws_url=settings.ccxt_ws_url)
    return LiveSimFeed(market.providers["sim"], perpetuals, speed=settings.live_feed_speed)


def _build_jobs(settings: Settings, engine: Engine, bus: InMemoryEventBus) -> JobService:
    """The job service on the local executor, or on Ray when QD_RAY_ADDRESS is set."""
    if settings.ray_address:
        from quantdesk.adapters.executors.ray import RayExecutor

        ray_executor = RayExecutor(settings.ray_address)
        # Ray admits by the cluster's resources (read once Ray is up), not this machine's
        return JobService(SqlJobStore(engine), ray_executor, ray_executor.resources, bus)
    return JobService(SqlJobStore(engine), LocalExecutor(), machine_resources, bus)


def build_market(settings: Settings, engine: Engine | None = None) -> MarketDataService:
    """Market data: the instrument catalogue, the sim and file providers, the Parquet cache.

    With ``engine`` (a migrated database), imported instruments are kept in it and re-registered
    here, so they survive a restart; without one they live in memory only.
    """
    catalog = InstrumentCatalog(builtin_instruments())
    sessions = {Venue.CRYPTO: crypto_rules(), Venue.NSE: nse_session_rules(), Venue.BSE: nse_session_rules()}
    providers: dict[str, object] = {
        "sim": SimFeed(catalog.all(), seed=settings.sim_seed, sessions=sessions, reference_prices=reference_prices()),
        "file": FileFeed(),
    }
    if settings.crypto_provider == "ccxt":
        from quantdesk.adapters.feeds.ccxt_feed import CcxtFeed

        providers["ccxt"] = CcxtFeed(settings.ccxt_exchange, base_url=settings.ccxt_base_url)
    if settings.equity_provider == "yahoo":
        from quantdesk.adapters.feeds.yahoo import YahooFeed

        providers["yahoo"] = YahooFeed(settings.yahoo_base_url, sessions=sessions)
    if settings.equity_provider == "openalgo":
        from quantdesk.adapters.feeds.openalgo import OpenAlgoFeed

        key = settings.openalgo_api_key.get_secret_value() if settings.openalgo_api_key else ""
        providers["openalgo"] = OpenAlgoFeed(settings.openalgo_url, key)
    venue_providers = {Venue.CRYPTO: settings.crypto_provider, Venue.NSE: settings.equity_provider,
                       Venue.BSE: settings.equity_provider}
    store = ParquetBarStore(settings.data_dir / "bars")
    registry = SqlInstrumentRegistry(engine) if engine is not None else None
    return MarketDataService(catalog, store, providers, default_provider="sim", sessions=sessions,
                             venue_providers=venue_providers, registry=registry)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the ASGI app serving all five surfaces on one port."""
    rt = runtime or build_runtime(settings)
    if rt.generated_admin_password:
        print(
            f"quantdesk: created admin user '{settings.admin_user}' with password "
            f"{rt.generated_admin_password} (shown once; change it or set QD_ADMIN_PASSWORD)",
            file=sys.stderr,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.bus.start()
        if rt.jobs:
            await rt.jobs.start()
        feed = _live_feed(settings, rt.market) if rt.market else None
        tasks = [asyncio.create_task(feed.run(rt.bus), name="live-feed")] if feed else []
        if rt.trading:
            tasks.append(asyncio.create_task(rt.trading.run_market_data(), name="trading-market-data"))
        if rt.breakout:
            tasks.append(asyncio.create_task(rt.breakout.run(), name="breakout-engine"))
        if rt.fluxscan:
            rt.fluxscan.executor.bind(asyncio.get_running_loop())
            rt.fluxscan.scans.start(asyncio.get_running_loop())
            await asyncio.to_thread(rt.fluxscan.schedules.start)
            await fluxscan_socket.start()
        if rt.ml_models:
            await asyncio.to_thread(rt.ml_models.recover)
        if rt.pystrategies:
            rt.pystrategies.bind(asyncio.get_running_loop())
            await asyncio.to_thread(rt.pystrategies.start)
        try:
            yield
        finally:
            if rt.pystrategies:  # strategies run only while the server runs; a restart does not resume them
                await asyncio.to_thread(rt.pystrategies.close)
            if rt.fluxscan:
                await fluxscan_socket.stop()
                rt.fluxscan.schedules.stop()
                await asyncio.to_thread(rt.fluxscan.scans.close)
                rt.fluxscan.executor.close()
            if feed:
                feed.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if rt.jobs:
                await rt.jobs.stop()
            await rt.bus.close()
            close = getattr(rt.counter, "close", None)
            if close:
                await close()
            rt.engine.dispose()

    app = FastAPI(
        title="quantdesk",
        version=__version__,
        description="One self-hosted trading platform serving five API surfaces over one core.",
        openapi_tags=OPENAPI_TAGS,
        default_response_class=JsonResponse,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.settings = settings
    app.state.accounts = rt.accounts
    app.state.health = rt.health
    app.state.bus = rt.bus
    app.state.market = rt.market
    app.state.jobs = rt.jobs
    app.state.trading = rt.trading
    app.state.key_vault = rt.key_vault
    app.state.ml_strategies = rt.ml_strategies
    app.state.pystrategies = rt.pystrategies
    app.state.breakout = rt.breakout
    app.state.ml_models = rt.ml_models
    app.state.ml_portfolio = rt.ml_portfolio
    if rt.fluxscan:
        app.state.fluxscan = rt.fluxscan.service
        app.state.fluxscan_scans = rt.fluxscan.scans
        app.state.fluxscan_schedules = rt.fluxscan.schedules
        fluxscan_socket = fluxscan_socketio.FluxScanSocket(rt.accounts, rt.fluxscan.scans, rt.bus)
        app.state.fluxscan_socket = fluxscan_socket

    errors = ErrorRouter()
    for module in (scalper_errors, fluxscan_errors, pystrategies_errors, breakout_errors, ml_errors):
        errors.add(module.PREFIXES, module.FORMAT)
    app.state.errors = errors
    install_handlers(app, errors)

    app.include_router(health_routes.router)
    app.include_router(accounts_routes.router)
    app.include_router(pages.router)
    app.include_router(ml_market.router)
    app.include_router(fluxscan_market.router)
    app.include_router(fluxscan_routes.router)
    app.include_router(ml_system.router)
    app.include_router(ml_keys.router)
    app.include_router(ml_strategies.router)
    app.include_router(ml_models_routes.router)
    app.include_router(ml_predictions_routes.router)
    app.include_router(ml_backtests_routes.router)
    app.include_router(ml_portfolio_routes.router)
    app.include_router(scalper_routes.router)
    app.include_router(ws_routes.router)
    app.include_router(pystrategies_routes.router)
    app.include_router(pystrategies_ws.router)
    app.include_router(breakout_routes.router)
    ws_settings = ws_routes.WsSettings()
    ws_settings.heartbeat_s = settings.ws_heartbeat_s
    ws_settings.messages_per_minute = settings.ws_messages_per_minute
    app.state.ws_settings = ws_settings
    app.state.ws_on_connect = [breakout_ws.subscribe_user_stream]

    app.add_middleware(
        Gateway,
        accounts=rt.accounts,
        errors=errors,
        counter=rt.counter,
        limits=RateLimits(settings.rate_limit_read, settings.rate_limit_write, settings.rate_limit_backtest),
        public=PUBLIC,
        passthrough_prefixes=("/socket.io",),
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        run_sync=run_in_threadpool,
    )
    if rt.fluxscan:  # outermost: Socket.IO authenticates in its own connect handler
        app.add_middleware(fluxscan_socketio.SocketIOMount, socket=fluxscan_socket)
    return app
