"""The ``quantdesk`` command line."""

from __future__ import annotations

import logging
import sys

import typer

from quantdesk.core.errors import QuantdeskError
from quantdesk.settings import Settings, load_settings

app = typer.Typer(help="quantdesk: self-hosted algorithmic trading platform.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
data_app = typer.Typer(help="Market data: import your own bars.", no_args_is_help=True)
app.add_typer(data_app, name="data")
jobs_app = typer.Typer(help="Background jobs: list them, follow one.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _settings() -> Settings:
    try:
        return load_settings()
    except QuantdeskError as err:
        typer.echo(f"quantdesk: {err.message}", err=True)
        raise typer.Exit(2) from None


def _fail(err: QuantdeskError) -> None:
    typer.echo(f"quantdesk: {err.message}", err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option(None, help="bind address (default QD_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default QD_PORT or 8000)"),
    workers: int = typer.Option(1, help="uvicorn worker processes (set QD_REDIS_URL to share state)"),
) -> None:
    """Apply migrations and serve every surface on one port."""
    import uvicorn

    from quantdesk.app import build_runtime, create_app

    settings = _settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runtime = build_runtime(settings)
        application = create_app(settings, runtime)
    except QuantdeskError as err:
        _fail(err)
    typer.echo(f"quantdesk serving on http://{host or settings.host}:{port or settings.port}", err=True)
    uvicorn.run(application, host=host or settings.host, port=port or settings.port, log_level=settings.log_level.lower(),
                workers=1 if workers <= 1 else workers)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest."""
    from quantdesk.adapters.db.engine import migrate as run

    settings = _settings()
    try:
        run(settings.database_url)
    except Exception as exc:  # one clear line, not a traceback
        typer.echo(f"quantdesk: migration failed on {settings.database_url}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("database is up to date")


@user_app.command("create")
def user_create(
    username: str,
    role: str = typer.Option("user", help="admin or user"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a user."""
    from quantdesk.app import build_runtime

    rt = build_runtime(_settings())
    try:
        user = rt.accounts.create_user(username, password, role)
    except QuantdeskError as err:
        _fail(err)
    typer.echo(f"created user {user.username} (id {user.id}, role {user.role.value})")


@apikey_app.command("create")
def apikey_create(
    username: str = typer.Option(..., "--user", help="owner of the key"),
    name: str = typer.Option("cli", help="label for the key"),
) -> None:
    """Create an API key for a user and print it (shown only once)."""
    from quantdesk.app import build_runtime

    rt = build_runtime(_settings())
    try:
        key, raw = rt.accounts.create_api_key_for(username, name)
    except QuantdeskError as err:
        _fail(err)
    typer.echo(raw)
    typer.echo(f"key id {key.id} '{key.name}' for {username}; store it now, it is not shown again", err=True)


@data_app.command("import")
def data_import(
    files: list[str] = typer.Argument(..., help="CSV or Parquet files with timestamp, open, high, low, close, volume"),
    symbol: str = typer.Option(None, help="symbol for the bars (default: each file's name)"),
    timeframe: str = typer.Option("1d", help="bar length: 1m 5m 15m 1h 4h 1d (or D)"),
    exchange: str = typer.Option(None, help="NSE, BSE or CRYPTO (default: guessed from the symbol)"),
) -> None:
    """Validate and import bar files into the cache, with a report of rejected rows."""
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from quantdesk.adapters.db.engine import make_engine
    from quantdesk.adapters.db.engine import migrate as run_migrations
    from quantdesk.app import build_market

    console = Console(stderr=True)
    settings = _settings()
    run_migrations(settings.database_url)
    engine = make_engine(settings.database_url)
    market = build_market(settings, engine)  # the database keeps imported symbols for the server
    failed = False
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("importing", total=len(files))
        for name in files:
            path = Path(name)
            sym = symbol or path.stem.upper()
            progress.update(task, description=f"importing {path.name} as {sym}")
            try:
                report = market.import_bars(path, sym, timeframe, exchange=exchange)
            except QuantdeskError as err:
                progress.console.print(f"[red]{path.name}: {err.message}")
                failed = True
            else:
                summary = report.as_dict()
                progress.console.print(f"{path.name}: {summary['accepted']} bars accepted, "
                                       f"{len(summary['rejected'])} rejected")
                for row in summary["rejected"][:20]:
                    progress.console.print(f"  row {row['row']} ({row['timestamp']}): {row['reason']}")
            progress.advance(task)
    engine.dispose()
    if failed:
        raise typer.Exit(1)


def _param_value(text: str) -> object:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command()
def backtest(
    strategy: str = typer.Argument(..., help="registered strategy name (sma_cross, momentum, breakout, ...)"),
    symbol: str = typer.Option("BTCUSDT", help="instrument to load from the bar store"),
    timeframe: str = typer.Option("1h", help="bar length for --symbol data"),
    start: str = typer.Option(None, help="ISO start (default: 500 bars before --end)"),
    end: str = typer.Option(None, help="ISO end (default: now)"),
    exchange: str = typer.Option(None, help="NSE, BSE or CRYPTO"),
    data: str = typer.Option(None, "--data", help="CSV/Parquet OHLCV file instead of the bar store"),
    param: list[str] = typer.Option([], "--param", help="strategy parameter NAME=VALUE (repeatable)"),
    cash: str = typer.Option("10000", help="initial balance"),
    commission: str = typer.Option("0.001", help="commission as a fraction of notional per side"),
    leverage: int = typer.Option(1, help="leverage"),
    mode: str = typer.Option("auto", help="event, fast or auto"),
    as_json: bool = typer.Option(False, "--json", help="print the machine-readable result"),
    plot: str = typer.Option(None, "--plot", help="write equity and drawdown to this PNG"),
) -> None:
    """Backtest a strategy over stored or simulated bars, or over your own file."""
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from quantdesk.adapters.feeds.file import FileFeed
    from quantdesk.app import build_market
    from quantdesk.services.backtests import BacktestConfig, plot_backtest, run_backtest

    console = Console(stderr=True)
    params: dict[str, object] = {}
    for item in param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            typer.echo(f"quantdesk: --param {item!r} must look like NAME=VALUE", err=True)
            raise typer.Exit(2)
        params[name.strip()] = _param_value(value.strip())
    try:
        with console.status("loading bars..."):
            if data:
                bars, report = FileFeed().load(Path(data))
                if report.rejected:
                    console.print(f"[yellow]{len(report.rejected)} rows of {data} rejected (first: "
                                  f"{report.rejected[0].reason})")
                label = Path(data).stem.upper()
            else:
                bars = build_market(_settings()).history(symbol, timeframe, start, end, exchange=exchange)
                label = symbol.upper()
        config = BacktestConfig(strategy=strategy, params=params, symbol=label, initial_balance=cash,
                                commission=commission, leverage=leverage, mode=mode)
        with Progress(TextColumn(f"{strategy} over {len(bars):,} bars"), BarColumn(), TaskProgressColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("run", total=len(bars))
            result = run_backtest(config, bars, progress=lambda done, total: bar.update(task, completed=done))
    except QuantdeskError as err:
        _fail(err)
    if plot:
        plot_backtest(result, plot)
        console.print(f"plot written to {plot}")
    if as_json:
        out = result.to_dict()
        out.pop("equity_curve", None)
        typer.echo(json.dumps(out, default=str, indent=2))
        return
    table = Table(title=f"{strategy} on {label}: {len(bars):,} bars, {len(result.trades)} trades")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:,.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@jobs_app.command("list")
def jobs_list(
    status: str = typer.Option(None, help="queued, running, completed, failed or cancelled"),
    limit: int = typer.Option(20, min=1, help="newest first"),
) -> None:
    """List jobs, newest first."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from quantdesk.app import build_runtime
    from quantdesk.services.job_ports import JobStatus

    try:
        statuses = frozenset({JobStatus(status)}) if status else None
    except ValueError:
        typer.echo(f"quantdesk: unknown status {status!r}; use one of {', '.join(s.value for s in JobStatus)}", err=True)
        raise typer.Exit(2) from None
    rt = build_runtime(_settings())
    found = asyncio.run(rt.jobs.list_jobs(None, statuses=statuses, limit=limit))
    table = Table(title=f"{len(found)} job(s)")
    for column in ("id", "type", "owner", "status", "progress", "description", "created"):
        table.add_column(column)
    for job in found:
        detail = job.error or job.reason or job.description
        table.add_row(job.id, job.type, str(job.owner_id or "-"), job.status.value, f"{job.progress:.0f}%",
                      detail, job.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    Console().print(table)


@jobs_app.command("follow")
def jobs_follow(job_id: str, interval: float = typer.Option(0.25, min=0.05, help="seconds between polls")) -> None:
    """Show a job's progress bar until it finishes (exit code 1 if it failed or was cancelled)."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from quantdesk.app import build_runtime
    from quantdesk.services.job_ports import JobStatus

    rt = build_runtime(_settings())

    async def follow():
        with Progress(TextColumn("{task.fields[status]:>9}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
            bar = progress.add_task("", total=100, status="")
            while True:
                view = await rt.jobs.get(None, job_id)
                job = view.job
                text = job.reason or job.description if job.status is JobStatus.QUEUED else job.description
                if view.position:
                    text = f"#{view.position} in queue: {text}"
                progress.update(bar, completed=job.progress, description=text, status=job.status.value)
                if job.is_terminal:
                    return job
                await asyncio.sleep(interval)

    try:
        job = asyncio.run(follow())
    except QuantdeskError as err:
        _fail(err)
    console = Console()
    if job.status is JobStatus.COMPLETED:
        console.print_json(data=job.result or {})
        return
    console.print(f"{job.type} {job.status.value}: {job.error or job.description}")
    raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    sys.exit(app())
if __name__ == "__main__":  # python -m quantdesk.cli
    main()
