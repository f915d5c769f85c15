"""The exchange-key vault: each user's exchange API credentials, sealed at rest, shown only as hints.

The key and the secret are sealed with :class:`~quantdesk.services.secrets.SecretBox` (Fernet under
the per-installation key, kept outside the database) before they reach the store; only their
hints (first 4 + ``...`` + last 4 characters) are kept in plain text. Nothing here puts a key or a
secret in a reply, a log line, an exception message or a repr. A delete is soft: the credential
stops being listed or used but its (sealed) row stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from quantdesk.core.clock import Clock
from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.engine.clocks import WallClock
from quantdesk.services.secrets import SecretBox

# provider id → display name; the exchanges and brokers a credential may be stored for
PROVIDERS: Mapping[str, str] = {
    "alpaca": "Alpaca",
    "binance": "Binance",
    "bybit": "Bybit",
    "coinbase": "Coinbase",
    "kraken": "Kraken",
    "kucoin": "KuCoin",
    "okx": "OKX",
}
# testnet (exchange sandboxes), paper (Alpaca's paper endpoint), mainnet/live (real money)
ENVIRONMENTS: tuple[str, ...] = ("testnet", "paper", "mainnet", "live")
MIN_SECRET_LENGTH = 16  # a shorter value would be all but revealed by its 8-character hint
MAX_SECRET_LENGTH = 512
MAX_LABEL_LENGTH = 100


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A vault row as the store keeps it: sealed key and secret, plain hints."""

    id: str
    user_id: int
    provider_id: str
    environment: str
    label: str | None
    api_key_sealed: str = field(repr=False)
    api_secret_sealed: str = field(repr=False)
    api_key_hint: str
    api_secret_hint: str
    active: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyView:
    """A stored credential as its owner sees it: hints only."""

    id: str
    provider_id: str
    provider_name: str
    environment: str
    label: str | None
    api_key_hint: str
    api_secret_hint: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ExchangeCredentials:
    """A user's opened credential, for a broker adapter; ``api_key`` and ``api_secret`` stay out of reprs."""

    key_id: str
    provider_id: str
    environment: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


class KeyVaultStore(Protocol):
    """Keeps vault rows; every lookup is by owner, so one user never reaches another's row."""

    def add(self, key: StoredKey) -> None:
        """Insert a new row."""
        ...

    def get(self, user_id: int, key_id: str) -> StoredKey | None:
        """The user's active row ``key_id``, or None (missing, another user's, or deleted)."""
        ...

    def list_active(self, user_id: int, provider_id: str | None = None) -> list[StoredKey]:
        """The user's active rows (of one provider when given), oldest first."""
        ...

    def replace(self, key: StoredKey) -> bool:
        """Overwrite the active row with ``key.id`` owned by ``key.user_id``; False if there is none."""
        ...

    def deactivate(self, user_id: int, key_id: str, at: datetime) -> bool:
        """Soft-delete the user's active row; False if there is none."""
        ...

    def has_active(self, user_id: int, provider_id: str) -> bool:
        """Whether the user has an active row for ``provider_id``."""
        ...


def hint(value: str) -> str:
    """First 4 + ``...`` + last 4 characters (values are at least MIN_SECRET_LENGTH long)."""
    return f"{value[:4]}...{value[-4:]}"


def _provider(value: str) -> str:
    provider = str(value).strip().lower()
    if provider not in PROVIDERS:
        raise InvalidInputError(f"provider_id {value!r} is not supported; use one of {', '.join(PROVIDERS)}",
                                field="provider_id")
    return provider


def _environment(value: str) -> str:
    environment = str(value).strip().lower()
    if environment not in ENVIRONMENTS:
        raise InvalidInputError(f"environment {value!r} is not supported; use one of {', '.join(ENVIRONMENTS)}",
                                field="environment")
    return environment


def _secret(value: str, name: str) -> str:
    # never echo the value (nor its length) in the message: it is a credential
    secret = str(value).strip()
    if not secret:
        raise InvalidInputError(f"{name} must not be empty", field=name)
    if not (MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH):
        raise InvalidInputError(f"{name} must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters long",
                                field=name)
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in secret):
        raise InvalidInputError(f"{name} must be printable ASCII without spaces", field=name)
    return secret


def _label(value: str | None) -> str | None:
    if value is None:
        return None
    label = str(value).strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInputError(f"label is {len(label)} characters long; at most {MAX_LABEL_LENGTH} are allowed",
                                field="label")
    if any(not c.isprintable() for c in label):
        raise InvalidInputError("label must not contain control characters", field="label")
    return label or None


def _key_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class KeyVault:
    """Store, list, change and delete a user's exchange credentials; open them for server code only."""

    def __init__(self, store: KeyVaultStore, secrets: SecretBox, *, live_provider: str = "binance",
                 clock: Clock | None = None):
        self._store = store
        self._secrets = secrets
        self._live_provider = live_provider.strip().lower()
        self._clock: Clock = clock or WallClock()

    def list_keys(self, user_id: int) -> list[KeyView]:
        """The user's active credentials, oldest first, as hints."""
        return [_view(k) for k in self._store.list_active(user_id)]

    def store_key(self, user_id: int, *, provider_id: str, environment: str, api_key: str, api_secret: str,
                  label: str | None = None) -> KeyView:
        """Seal and keep a new credential; InvalidInputError names the first bad field."""
        provider, env = _provider(provider_id), _environment(environment)
        key, secret = _secret(api_key, "api_key"), _secret(api_secret, "api_secret")
        now = self._clock.now()
        row = StoredKey(
            id=str(uuid.uuid4()), user_id=user_id, provider_id=provider, environment=env, label=_label(label),
            api_key_sealed=self._secrets.seal(key), api_secret_sealed=self._secrets.seal(secret),
            api_key_hint=hint(key), api_secret_hint=hint(secret), active=True, created_at=now, updated_at=now,
        )
        self._store.add(row)
        return _view(row)

    def update_key(self, user_id: int, key_id: str, *, api_key: str | None = None, api_secret: str | None = None,
                   label: str | None = None, environment: str | None = None) -> KeyView:
        """Change what is given (None keeps the stored value); NotFoundError unless it is the user's active key."""
        current = self._own(user_id, key_id)
        changes: dict[str, object] = {}
        if environment is not None:
            changes["environment"] = _environment(environment)
        if api_key is not None:
            key = _secret(api_key, "api_key")
            changes.update(api_key_sealed=self._secrets.seal(key), api_key_hint=hint(key))
        if api_secret is not None:
            secret = _secret(api_secret, "api_secret")
            changes.update(api_secret_sealed=self._secrets.seal(secret), api_secret_hint=hint(secret))
        if label is not None:
            changes["label"] = _label(label)
        updated = replace(current, **changes, updated_at=self._clock.now())
        if not self._store.replace(updated):
            raise _not_found(key_id)
        return _view(updated)

    def delete_key(self, user_id: int, key_id: str) -> None:
        """Soft-delete the user's key: no longer listed or opened; NotFoundError if not theirs or already deleted."""
        canonical = _key_id(key_id)
        if canonical is None or not self._store.deactivate(user_id, canonical, self._clock.now()):
            raise _not_found(key_id)

    def has_keys(self, user_id: int) -> bool:
        """Whether the user has an active credential for the exchange live trading uses (trading's ExchangeKeys)."""
        return self._store.has_active(user_id, self._live_provider)

    def open_credentials(self, user_id: int, provider_id: str, *, environment: str | None = None) -> ExchangeCredentials:
        """Decrypt the user's newest active credential for a provider (and environment), for a broker adapter.

        Server code only: never hand the result to a reply or a log. NotFoundError when none is stored.
        """
        provider = _provider(provider_id)
        env = _environment(environment) if environment is not None else None
        rows = [k for k in self._store.list_active(user_id, provider) if env is None or k.environment == env]
        if not rows:
            where = f"{PROVIDERS[provider]}" + (f" ({env})" if env else "")
            raise NotFoundError("API key", message=f"no API key stored for {where}")
        row = max(rows, key=lambda k: (k.updated_at, k.created_at))
        return ExchangeCredentials(row.id, row.provider_id, row.environment,
                                   self._secrets.open(row.api_key_sealed), self._secrets.open(row.api_secret_sealed))

    def _own(self, user_id: int, key_id: str) -> StoredKey:
        canonical = _key_id(key_id)
        row = self._store.get(user_id, canonical) if canonical is not None else None
        if row is None:
            raise _not_found(key_id)
        return row


def _not_found(key_id: str) -> NotFoundError:
    return NotFoundError("API key", key_id, message="API key not found")


def _view(row: StoredKey) -> KeyView:
    return KeyView(row.id, row.provider_id, PROVIDERS.get(row.provider_id, row.provider_id), row.environment,
                   row.label, row.api_key_hint, row.api_secret_hint, row.created_at, row.updated_at)
