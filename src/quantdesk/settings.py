"""Typed settings (environment prefix ``QD_``, optional ``.env``). Built once by app.py / cli.py."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from quantdesk.core.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QD_", env_file=".env", extra="ignore")

    database_url: str = Field("sqlite:///./var/quantdesk.db", description="SQLAlchemy URL")
    redis_url: str | None = Field(None, description="redis://host:port/db; enables shared rate limits and bus")
    data_dir: Path = Field(Path("./var/data"), description="Parquet cache and user files")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    admin_user: str = Field("admin", min_length=1)
    admin_password: SecretStr | None = None
    secret_key_file: Path = Field(Path("./var/secret.key"), description="per-installation key, outside the DB")
    access_token_ttl_s: int = Field(900, ge=30)
    session_ttl_s: int = Field(12 * 3600, ge=60)
    rate_limit_read: int = Field(100, ge=0, description="requests/minute; 0 turns the limit off")
    rate_limit_write: int = Field(30, ge=0)
    rate_limit_backtest: int = Field(5, ge=0)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="JSON/form bodies")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="multipart uploads")
    sim_seed: int = Field(7, description="seed of the deterministic simulated market")
    live_feed_speed: float = Field(1.0, ge=0, description="simulated live crypto feed, x real time; 0 turns any live feed off")
    paper_initial_balance: Decimal = Field(Decimal(10_000), gt=0, description="USDT in a new paper account")
    crypto_provider: Literal["sim", "ccxt"] = Field("sim", description="bars for crypto pairs")
    equity_provider: Literal["sim", "yahoo", "openalgo"] = Field("sim", description="bars for NSE/BSE stocks")
    ccxt_exchange: str = Field("binance", description="ccxt exchange id for crypto bars")
    ccxt_base_url: str | None = Field(None, description="override the exchange's REST URL (testnets, proxies)")
    ccxt_ws_url: str | None = Field(
        None, description="relay for the exchange's WebSockets (live feed), each under /<original host><path>"
    )
    yahoo_base_url: str = "https://query1.finance.yahoo.com"
    openalgo_url: str | None = Field(None, description="OpenAlgo server, e.g. http://127.0.0.1:5000")
    openalgo_api_key: SecretStr | None = None
    ws_heartbeat_s: float = Field(30.0, gt=0, le=30, description="Breakout HEARTBEAT interval on /ws")
    ws_messages_per_minute: int = Field(100, ge=1)
    log_level: str = "INFO"
    ray_address: str | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v

    @model_validator(mode="after")
    def _openalgo_needs_url(self) -> Settings:
        if self.equity_provider == "openalgo" and not self.openalgo_url:
            raise PydanticCustomError("openalgo", "QD_EQUITY_PROVIDER=openalgo needs QD_OPENALGO_URL")
        return self

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return v.upper()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raise ConfigError with one line naming the bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err.get("loc"):  # a rule across several settings: the message names them
            raise ConfigError(f"invalid settings: {err['msg']}") from None
        name = "QD_" + str(err["loc"][0]).upper()
        shown = "***" if "password" in name.lower() or "key" in name.lower() else repr(err.get("input"))
        raise ConfigError(f"invalid setting {name}: {err['msg']} (got {shown})") from None
