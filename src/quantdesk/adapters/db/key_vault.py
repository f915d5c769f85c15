"""SqlKeyVaultStore: the key vault's store on SQLAlchemy Core (``exchange_api_keys``), SQLite or PostgreSQL.

Rows hold the key and secret only as SecretBox tokens; every query filters on the owner and on
``active``, so a deleted row (soft delete) is never listed, changed or opened again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from quantdesk.adapters.db.key_vault_tables import exchange_api_keys as t
from quantdesk.services.key_vault import StoredKey


class SqlKeyVaultStore:
    """Each user's exchange credentials in ``exchange_api_keys``."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def add(self, key: StoredKey) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(t).values(**_values(key)))

    def get(self, user_id: int, key_id: str) -> StoredKey | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == key_id, t.c.user_id == user_id, t.c.active.is_(True))).first()
        return _key(row) if row is not None else None

    def list_active(self, user_id: int, provider_id: str | None = None) -> list[StoredKey]:
        query = select(t).where(t.c.user_id == user_id, t.c.active.is_(True))
        if provider_id is not None:
            query = query.where(t.c.provider_id == provider_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.created_at, t.c.id)).all()
        return [_key(r) for r in rows]

    def replace(self, key: StoredKey) -> bool:
        values = _values(key)
        for fixed in ("id", "user_id", "created_at"):
            values.pop(fixed)
        with self._engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.id == key.id, t.c.user_id == key.user_id, t.c.active.is_(True))
                                  .values(**values))
        return result.rowcount == 1

    def deactivate(self, user_id: int, key_id: str, at: datetime) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.id == key_id, t.c.user_id == user_id, t.c.active.is_(True))
                                  .values(active=False, deleted_at=at, updated_at=at))
        return result.rowcount == 1

    def has_active(self, user_id: int, provider_id: str) -> bool:
        with self._engine.connect() as conn:
            found = conn.execute(select(t.c.id).where(t.c.user_id == user_id, t.c.provider_id == provider_id,
                                                      t.c.active.is_(True)).limit(1)).first()
        return found is not None


def _values(key: StoredKey) -> dict:
    return {
        "id": key.id, "user_id": key.user_id, "provider_id": key.provider_id, "environment": key.environment,
        "label": key.label, "api_key_encrypted": key.api_key_sealed, "api_secret_encrypted": key.api_secret_sealed,
        "api_key_hint": key.api_key_hint, "api_secret_hint": key.api_secret_hint, "active": key.active,
        "created_at": key.created_at, "updated_at": key.updated_at, "deleted_at": key.deleted_at,
    }


def _key(row) -> StoredKey:
    return StoredKey(
        id=row.id, user_id=row.user_id, provider_id=row.provider_id, environment=row.environment, label=row.label,
        api_key_sealed=row.api_key_encrypted, api_secret_sealed=row.api_secret_encrypted,
        api_key_hint=row.api_key_hint, api_secret_hint=row.api_secret_hint, active=row.active,
        created_at=row.created_at, updated_at=row.updated_at, deleted_at=row.deleted_at,
    )
