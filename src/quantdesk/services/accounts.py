"""Users, passwords, bearer tokens, browser sessions and API keys: one scheme for every surface."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from quantdesk.core.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)

API_KEY_PREFIX = "qd_"
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    created_at: datetime
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and how: ``via`` is bearer, api_key or session; ``credential`` keys rate limits."""

    user_id: int
    username: str
    role: Role
    via: str
    credential: str
    csrf: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class AccountStore(Protocol):
    """Persistence port for accounts (implemented in adapters/db)."""

    def add_user(self, username: str, password_hash: str, role: Role, created_at: datetime) -> User: ...
    def user_by_name(self, username: str) -> tuple[User, str] | None: ...
    def user_by_id(self, user_id: int) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def delete_user(self, user_id: int) -> bool: ...
    def count_admins(self) -> int: ...
    def add_api_key(self, user_id: int, name: str, prefix: str, key_hash: str, created_at: datetime) -> ApiKey: ...
    def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, User] | None: ...
    def list_api_keys(self, user_id: int) -> list[ApiKey]: ...
    def revoke_api_key(self, user_id: int, key_id: int, at: datetime) -> bool: ...


def _hash_key(raw: str) -> str:
    # API keys carry 256 bits of entropy, so a fast hash is safe and keeps auth O(1)
    return hashlib.sha256(raw.encode()).hexdigest()


class AccountService:
    """Create and authenticate users and credentials.

    ``secret`` signs JWTs (HS256) and session cookies; ``now`` is the clock (UTC-aware).
    """

    def __init__(
        self,
        store: AccountStore,
        secret: bytes,
        *,
        token_ttl_s: int = 900,
        session_ttl_s: int = 12 * 3600,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._store = store
        self._secret = secret
        self.token_ttl_s = token_ttl_s
        self.session_ttl_s = session_ttl_s
        self._now = now
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))

    # -- users -------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: Role | str = Role.USER) -> User:
        """Create a user; raise InvalidInputError for a bad name/password/role, ConflictError if taken."""
        username = (username or "").strip()
        if not (1 <= len(username) <= 64) or not set(username) <= USERNAME_CHARS:
            raise InvalidInputError(
                "username must be 1-64 characters of letters, digits, _ . - @", field="username"
            )
        if not isinstance(password, str) or len(password) < 8:
            raise InvalidInputError("password must be at least 8 characters", field="password")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInputError(f"role {role!r} is not one of admin, user", field="role") from None
        if self._store.user_by_name(username) is not None:
            raise ConflictError(f"username {username!r} is already taken", code="USER_EXISTS")
        return self._store.add_user(username, self._hasher.hash(password), role, self._now())

    def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin if there is none; return the generated password when one was made."""
        if self._store.count_admins() > 0:
            return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(12)
        existing = self._store.user_by_name(username)
        if existing is not None:
            return None
        self.create_user(username, password, Role.ADMIN)
        return generated

    def list_users(self) -> list[User]:
        return self._store.list_users()

    def delete_user(self, actor: Principal, user_id: int) -> None:
        if actor.user_id == user_id:
            raise ConflictError("you cannot delete your own account", code="CANNOT_DELETE_SELF")
        if not self._store.delete_user(user_id):
            raise NotFoundError("user", user_id)

    def authenticate_password(self, username: str, password: str) -> User:
        """Check a username and password; one error for unknown user and wrong password alike."""
        found = self._store.user_by_name((username or "").strip())
        if found is None:
            # spend the same time as a real check, so names cannot be probed by timing
            try:
                self._hasher.verify(self._dummy_hash, password or "")
            except (VerificationError, InvalidHashError):
                pass
            raise AuthenticationError("invalid username or password")
        user, password_hash = found
        try:
            self._hasher.verify(password_hash, password or "")
        except (VerificationError, InvalidHashError):
            raise AuthenticationError("invalid username or password") from None
        if not user.is_active:
            raise AuthenticationError("account is disabled")
        return user

    # -- tokens ------------------------------------------------------------------------------
    def issue_token(self, user: User) -> tuple[str, int]:
        """Return a bearer JWT and its lifetime in seconds."""
        now = self._now()
        claims = {
            "sub": str(user.id),
            "name": user.username,
            "role": user.role.value,
            "typ": "access",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.token_ttl_s)).timestamp()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), self.token_ttl_s

    def issue_session(self, user: User) -> tuple[str, str]:
        """Return (session cookie value, CSRF token) for a browser login."""
        now = self._now()
        csrf = secrets.token_urlsafe(24)
        claims = {
            "sub": str(user.id),
            "typ": "session",
            "csrf": csrf,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.session_ttl_s)).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), csrf

    def _decode(self, token: str, typ: str) -> dict:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"], "verify_iat": False},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token has expired; log in again") from None
        except jwt.PyJWTError:
            raise AuthenticationError("invalid token") from None
        if claims.get("typ") != typ or int(claims["exp"]) <= int(self._now().timestamp()):
            raise AuthenticationError("invalid token" if claims.get("typ") != typ else "token has expired")
        return claims

    def _active_user(self, user_id: int) -> User:
        user = self._store.user_by_id(user_id)
        if user is None or not user.is_active:
            raise AuthenticationError("the account behind this credential no longer exists")
        return user

    def principal_from_token(self, token: str) -> Principal:
        claims = self._decode(token, "access")
        user = self._active_user(int(claims["sub"]))
        return Principal(user.id, user.username, user.role, "bearer", f"user:{user.id}")

    def principal_from_session(self, cookie: str) -> Principal:
        claims = self._decode(cookie, "session")
        user = self._active_user(int(claims["sub"]))
        return Principal(user.id, user.username, user.role, "session", f"user:{user.id}", csrf=claims.get("csrf"))

    def principal_from_api_key(self, raw: str) -> Principal:
        found = self._store.api_key_by_hash(_hash_key(raw or ""))
        if found is None:
            raise AuthenticationError("invalid API key")
        key, user = found
        if key.revoked_at is not None:
            raise AuthenticationError("API key has been revoked")
        if not user.is_active:
            raise AuthenticationError("account is disabled")
        return Principal(user.id, user.username, user.role, "api_key", f"key:{key.id}")

    def principal_from_any(self, credential: str) -> Principal:
        """Accept a JWT or an API key (push channels take either in one field)."""
        if credential.startswith(API_KEY_PREFIX):
            return self.principal_from_api_key(credential)
        return self.principal_from_token(credential)

    @staticmethod
    def csrf_matches(principal: Principal, sent: str | None) -> bool:
        return bool(principal.csrf and sent and hmac.compare_digest(principal.csrf, sent))

    # -- API keys ----------------------------------------------------------------------------
    def create_api_key(self, principal: Principal, name: str) -> tuple[ApiKey, str]:
        """Create a key for the caller; the raw key is returned only here."""
        name = (name or "").strip() if isinstance(name, str) else ""
        if not (1 <= len(name) <= 128):
            raise InvalidInputError("name is required (1-128 characters)", field="name")
        raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = self._store.add_api_key(principal.user_id, name, raw[:10], _hash_key(raw), self._now())
        return key, raw

    def create_api_key_for(self, username: str, name: str) -> tuple[ApiKey, str]:
        found = self._store.user_by_name(username)
        if found is None:
            raise NotFoundError("user", username)
        user = found[0]
        return self.create_api_key(Principal(user.id, user.username, user.role, "cli", "cli"), name)

    def list_api_keys(self, principal: Principal) -> list[ApiKey]:
        return self._store.list_api_keys(principal.user_id)

    def revoke_api_key(self, principal: Principal, key_id: int) -> None:
        if not self._store.revoke_api_key(principal.user_id, key_id, self._now()):
            raise NotFoundError("api key", key_id)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ForbiddenError("this action needs the admin role")
