"""Who a hosted strategy runs as: an unprivileged uid/gid derived from its owner, when the server is root.

A server running as root (euid 0) starts each strategy under ``uid = gid = UID_BASE + owner_id``
(no /etc/passwd entry is needed), with supplementary groups cleared: user code then cannot read
root's 0600 files (the secret key, the SQLite database, other users' scripts and logs) nor
signal other processes. A server running as another user cannot change uids: strategies run as
that user and only the file modes protect its files.
"""

from __future__ import annotations

import os
from typing import Any

UID_BASE = 200_000


def privileged() -> bool:
    """Whether this process can run strategies under other uids (it is root)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def strategy_ids(owner_id: int | None) -> tuple[int, int]:
    """(uid, gid) of a strategy of ``owner_id`` (``UID_BASE`` itself for a process without an owner)."""
    n = UID_BASE + max(0, int(owner_id or 0))
    return n, n


def isolation_report(owner_id: int | None, isolate: bool) -> dict[str, Any]:
    """What protects the strategies of ``owner_id``: their uid/gid and whether privileges are dropped."""
    if isolate:
        uid, gid = strategy_ids(owner_id)
        return {"uid": uid, "gid": gid, "dropped_privileges": True, "no_new_privileges": True,
                "private_files": True}
    return {"uid": os.getuid(), "gid": os.getgid(), "dropped_privileges": False, "no_new_privileges": False,
            "private_files": True}
