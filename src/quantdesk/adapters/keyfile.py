"""The per-installation secret key, kept in a file outside the database."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from quantdesk.core.errors import ConfigError

log = logging.getLogger(__name__)


def load_or_create_secret(path: Path) -> bytes:
    """Read the 32-byte key at ``path`` or create it (mode 0600) on first start.

    An existing key readable by group or others is made 0600 (hosted strategies run as other
    uids and must never read it); a read-only mount that refuses is only logged.
    """
    path = Path(path)
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            try:
                os.chmod(path, mode & 0o700)
            except OSError as exc:
                log.warning("secret key file %s is mode %o and could not be made 0600: %s", path, mode, exc)
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
