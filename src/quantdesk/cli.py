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


def main() -> None:  # pragma: no cover
    sys.exit(app())
if __name__ == "__main__":  # python -m quantdesk.cli
    main()
