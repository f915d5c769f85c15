"""DiskStrategyFiles: scripts, work directories and log files of hosted strategies.

Layout under ``<data_dir>/strategies`` (mode 0711: traversable, not listable)::

    <user_id>/                              0700 (root: root:<user gid> 0710)
    <user_id>/<strategy_id>.py              the script, written atomically: 0600 (root: root:<user gid> 0640)
    <user_id>/<strategy_id>/                0700 (root: root:<user gid> 0710)
    <user_id>/<strategy_id>/work/           the process's cwd, HOME and TMPDIR (0700; owned by the user's
                                            uid when the launcher drops privileges)
    <user_id>/<strategy_id>/logs/<YYYYmmdd_HHMMSS>_IST.log   one file per run (logs 0700, files 0600)

When the server is root (``isolate``), a strategy runs as the uid/gid derived from its owner
(:mod:`.isolation`): the group bits let it reach its own script and work directory and nothing
else, while every file stays the server's, so it cannot replace its script or its logs with
links for the server to follow. Other users' files are out of its reach (0700/0600, another group).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from quantdesk.adapters.processes.isolation import privileged, strategy_ids
from quantdesk.core.errors import NotFoundError
from quantdesk.services.pystrategies_ports import IST, LogFile

TAIL_WINDOW_BYTES = 8 * 1024 * 1024


class DiskStrategyFiles:
    """The StrategyFiles port on a local directory."""

    def __init__(self, root: Path, *, isolate: bool | None = None):
        self.root = Path(root)
        self.isolate = privileged() if isolate is None else isolate

    def _dir(self, owner_id: int, strategy_id: str) -> Path:
        return self.root / str(int(owner_id)) / Path(strategy_id).name

    def _group(self, owner_id: int) -> int | None:
        """The group that may reach the owner's scripts and work dirs (None: only the server's uid)."""
        return strategy_ids(owner_id)[1] if self.isolate else None

    def _private_dir(self, path: Path, gid: int | None) -> None:
        """Create ``path`` as the server's: 0700, or 0710 with group ``gid`` (search only, no listing)."""
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if gid is not None:
            os.chown(path, 0, gid, follow_symlinks=False)
        os.chmod(path, 0o700 if gid is None else 0o710)

    def _owner_dirs(self, owner_id: int, strategy_id: str | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(self.root, 0o711)
        gid = self._group(owner_id)
        self._private_dir(self.root / str(int(owner_id)), gid)
        if strategy_id is not None:
            self._private_dir(self._dir(owner_id, strategy_id), gid)

    def _script_mode(self, fd: int, owner_id: int) -> None:
        gid = self._group(owner_id)
        if gid is not None:
            os.fchown(fd, 0, gid)
        os.fchmod(fd, 0o600 if gid is None else 0o640)

    def _logs(self, owner_id: int, strategy_id: str) -> Path:
        return self._dir(owner_id, strategy_id) / "logs"

    def script_path(self, owner_id: int, strategy_id: str) -> Path:
        return self.root / str(int(owner_id)) / f"{Path(strategy_id).name}.py"

    def write_script(self, owner_id: int, strategy_id: str, content: bytes) -> Path:
        path = self.script_path(owner_id, strategy_id)
        self._owner_dirs(owner_id)
        tmp = path.with_suffix(".py.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self._script_mode(fd, owner_id)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    def read_script(self, owner_id: int, strategy_id: str) -> bytes:
        try:
            return self.script_path(owner_id, strategy_id).read_bytes()
        except FileNotFoundError:
            raise NotFoundError("strategy script", strategy_id, code="STRATEGY_NOT_FOUND") from None

    def workdir(self, owner_id: int, strategy_id: str) -> Path:
        """The run's cwd (0700); also (re)applies the modes that let the strategy's uid read its script."""
        self._owner_dirs(owner_id, strategy_id)
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(self.script_path(owner_id, strategy_id), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                self._script_mode(fd, owner_id)
            finally:
                os.close(fd)
        path = self._dir(owner_id, strategy_id) / "work"
        path.mkdir(exist_ok=True, mode=0o700)
        return path

    def new_log(self, owner_id: int, strategy_id: str, started_at: datetime) -> Path:
        self._owner_dirs(owner_id, strategy_id)
        logs = self._logs(owner_id, strategy_id)
        self._private_dir(logs, None)
        stem = started_at.astimezone(IST).strftime("%Y%m%d_%H%M%S") + "_IST"
        path, n = logs / f"{stem}.log", 1
        while path.exists():
            n += 1
            path = logs / f"{stem}_{n}.log"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        os.chmod(path, 0o600)
        return path

    def log_files(self, owner_id: int, strategy_id: str) -> list[LogFile]:
        logs = self._logs(owner_id, strategy_id)
        out = []
        for path in logs.glob("*.log") if logs.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                out.append(LogFile(path.name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        # newest first: names start with the IST start time; mtime breaks ties of same-second runs
        return sorted(out, key=lambda f: (f.name.split(".")[0][:15], f.modified_at), reverse=True)

    def read_log(self, owner_id: int, strategy_id: str, name: str | None, lines: int) -> tuple[str | None, str]:
        files = self.log_files(owner_id, strategy_id)
        if not files:
            return None, ""
        chosen = files[0].name if name is None else Path(name).name
        path = self._logs(owner_id, strategy_id) / chosen
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - TAIL_WINDOW_BYTES))
                if size > TAIL_WINDOW_BYTES:
                    handle.readline()  # drop the partial first line
                tail = deque(handle, maxlen=lines)
        except FileNotFoundError:
            return chosen, ""
        return chosen, b"".join(tail).decode("utf-8", errors="replace")

    def clear_logs(self, owner_id: int, strategy_id: str, active: Path | None) -> tuple[int, int]:
        count = total = 0
        for item in self.log_files(owner_id, strategy_id):
            path = self._logs(owner_id, strategy_id) / item.name
            try:
                total += path.stat().st_size
                if active is not None and path == active:
                    os.truncate(path, 0)  # the running process's log stays (appends continue at 0)
                else:
                    path.unlink()
                count += 1
            except FileNotFoundError:
                continue
        return count, total

    def remove(self, owner_id: int, strategy_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.script_path(owner_id, strategy_id).unlink()
        shutil.rmtree(self._dir(owner_id, strategy_id), ignore_errors=True)
