"""The per-installation secret key, kept in a file outside the database."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from quantdesk.core.errors import ConfigError


def load_or_create_secret(path: Path) -> bytes:
    """Read the 32-byte key at ``path`` or create it (mode 0600) on first start."""
    path = Path(path)
    if path.exists():
        data = path.read_bytes().strip()
        if len(data) < 32:
            raise ConfigError(f"invalid setting QD_SECRET_KEY_FILE: {path} holds fewer than 32 bytes")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data
