"""SQLAlchemy implementation of the AccountStore port."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, func, insert, select, update

from quantdesk.adapters.db.tables import api_keys, users
from quantdesk.services.accounts import ApiKey, Role, User


def _user(row) -> User:
    return User(row.id, row.username, Role(row.role), row.created_at, bool(row.is_active))


def _key(row) -> ApiKey:
    return ApiKey(row.id, row.user_id, row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at)


class SqlAccountStore:
    def __init__(self, engine: Engine):
        self._engine = engine

    def add_user(self, username: str, password_hash: str, role: Role, created_at: datetime) -> User:
        with self._engine.begin() as conn:
            res = conn.execute(
                insert(users).values(
                    username=username, password_hash=password_hash, role=role.value,
                    is_active=True, created_at=created_at,
                )
            )
            return User(res.inserted_primary_key[0], username, role, created_at, True)

    def user_by_name(self, username: str) -> tuple[User, str] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return (_user(row), row.password_hash) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.id))]

    def delete_user(self, user_id: int) -> bool:
        with self._engine.begin() as conn:
            conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
            return conn.execute(delete(users).where(users.c.id == user_id)).rowcount > 0

    def count_admins(self) -> int:
        with self._engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(users).where(users.c.role == "admin")).scalar_one()

    def add_api_key(self, user_id: int, name: str, prefix: str, key_hash: str, created_at: datetime) -> ApiKey:
        with self._engine.begin() as conn:
            res = conn.execute(
                insert(api_keys).values(
                    user_id=user_id, name=name, prefix=prefix, key_hash=key_hash, created_at=created_at
                )
            )
            return ApiKey(res.inserted_primary_key[0], user_id, name, prefix, created_at)

    def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, User] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
            if row is None:
                return None
            urow = conn.execute(select(users).where(users.c.id == row.user_id)).first()
        return (_key(row), _user(urow)) if urow else None

    def list_api_keys(self, user_id: int) -> list[ApiKey]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(api_keys).where(api_keys.c.user_id == user_id).order_by(api_keys.c.id)
            )
            return [_key(r) for r in rows]

    def revoke_api_key(self, user_id: int, key_id: int, at: datetime) -> bool:
        with self._engine.begin() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            return res.rowcount > 0
