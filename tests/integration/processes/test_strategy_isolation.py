"""Hosted strategies cannot reach server secrets or other users' files: real processes, real uids."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantdesk.adapters.keyfile import load_or_create_secret
from quantdesk.adapters.processes.files import DiskStrategyFiles
from quantdesk.adapters.processes.isolation import UID_BASE
from quantdesk.adapters.processes.launcher import ProcessLauncher
from quantdesk.services.pystrategies_ports import LaunchSpec, ProcessExit, ProcessLimits

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")

PROBE = '''
import os, sys
def probe(label, action):
    try:
        action()
        print(label, "ALLOWED", flush=True)
    except Exception as exc:
        print(label, type(exc).__name__, flush=True)
for label, path in PATHS:
    probe(label, (lambda p: (lambda: os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(1)))(path))
print("UID", os.getuid(), os.getgid(), os.getgroups(), flush=True)
probe("setuid0", lambda: os.setuid(0))
probe("signal-server", lambda: os.kill(os.getppid(), 0))
with open(os.path.join(os.environ["TMPDIR"], "own.txt"), "w") as fh:
    fh.write("mine")
print("WROTE", os.path.exists("own.txt"), os.environ["HOME"] == os.getcwd(), flush=True)
'''


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A data directory every uid can traverse (pytest's tmp_path is 0700): only file modes protect it."""
    path = Path(tempfile.mkdtemp(prefix="qd-isolation-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(launcher: ProcessLauncher, files: DiskStrategyFiles, owner: int, sid: str, code: str) -> tuple[ProcessExit,
                                                                                                        list[str]]:
    files.write_script(owner, sid, code.encode())
    log_path = files.new_log(owner, sid, datetime.now(UTC))
    spec = LaunchSpec(key=sid, script=files.script_path(owner, sid), cwd=files.workdir(owner, sid), env={},
                      log_path=log_path, limits=ProcessLimits(), owner_id=owner)
    done, exits = threading.Event(), []
    launcher.launch(spec, lambda ended: (exits.append(ended), done.set()))
    assert done.wait(30)
    lines = [line.split(" ", 2)[2] for line in log_path.read_text().splitlines() if line[:2] == "20"]
    return exits[0], lines


@root_only
def test_strategy_runs_as_its_owner_uid_and_cannot_read_secrets_or_other_users_files(open_dir):
    key = open_dir / "var" / "secret.key"
    load_or_create_secret(key)
    files = DiskStrategyFiles(open_dir / "data" / "strategies")
    launcher = ProcessLauncher()
    assert files.isolate and launcher.isolate
    other_end, _ = _run(launcher, files, 2, "bob", "open('note.txt', 'w').write('bob')\nprint('bob ran')\n")
    assert other_end.exit_code == 0
    bob_log = files.log_files(2, "bob")[0].name
    targets = [("key", key), ("bob-script", files.script_path(2, "bob")),
               ("bob-work", files.workdir(2, "bob")), ("bob-note", files.workdir(2, "bob") / "note.txt"),
               ("bob-logs", files.root / "2" / "bob" / "logs"),
               ("bob-log", files.root / "2" / "bob" / "logs" / bob_log),
               ("bob-home", files.root / "2"), ("strategies-root", files.root)]
    code = f"PATHS = {[(label, str(path)) for label, path in targets]!r}\n" + PROBE
    ended, out = _run(launcher, files, 1, "alice", code)
    assert ended.exit_code == 0, out
    for label, _ in targets:
        assert f"{label} PermissionError" in out, out
    uid = UID_BASE + 1
    assert f"UID {uid} {uid} []" in out
    assert "setuid0 PermissionError" in out and "signal-server PermissionError" in out
    assert "WROTE True True" in out
    work = files.workdir(1, "alice")
    assert (work / "own.txt").stat().st_uid == uid


@root_only
def test_layout_modes_and_owners_when_root(open_dir):
    files = DiskStrategyFiles(open_dir / "strategies")
    ended, out = _run(ProcessLauncher(), files, 3, "s1", "print('hello')\n")
    assert ended.exit_code == 0 and out == ["hello"]
    gid = UID_BASE + 3

    def mode(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert mode(files.root) == (0o711, 0, 0)
    assert mode(files.root / "3") == (0o710, 0, gid)
    assert mode(files.script_path(3, "s1")) == (0o640, 0, gid)
    assert mode(files.root / "3" / "s1") == (0o710, 0, gid)
    assert mode(files.root / "3" / "s1" / "work") == (0o700, gid, gid)
    assert mode(files.root / "3" / "s1" / "logs") == (0o700, 0, 0)
    log = files.root / "3" / "s1" / "logs" / files.log_files(3, "s1")[0].name
    assert mode(log) == (0o600, 0, 0)
    assert ProcessLauncher().isolation(3) == {"uid": gid, "gid": gid, "dropped_privileges": True,
                                              "no_new_privileges": True, "private_files": True}


@root_only
def test_unsearchable_directories_on_the_way_are_covered_not_opened(tmp_path):
    # pytest's tmp_path is 0700 (and the interpreter may live under /root): the strategy still runs,
    # but what else those directories hold is out of its sight
    secret = tmp_path / "server-only.txt"
    secret.write_text("x")
    files = DiskStrategyFiles(tmp_path / "strategies")
    code = f"PATHS = [('sibling', {str(secret)!r}), ('root-home', '/root')]\n" + PROBE
    ended, out = _run(ProcessLauncher(), files, 4, "s1", code)
    assert ended.exit_code == 0, out
    assert "sibling FileNotFoundError" in out and "root-home PermissionError" in out
    assert secret.read_text() == "x"  # the server's view is untouched


def test_without_root_the_uid_stays_but_files_are_private(open_dir):
    files = DiskStrategyFiles(open_dir / "strategies", isolate=False)
    launcher = ProcessLauncher(isolate=False)
    ended, out = _run(launcher, files, 5, "s1", "import os\nprint('UID', os.getuid())\n")
    assert ended.exit_code == 0 and out == [f"UID {os.getuid()}"]
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o711
    assert stat.S_IMODE((files.root / "5").stat().st_mode) == 0o700
    assert stat.S_IMODE(files.script_path(5, "s1").stat().st_mode) == 0o600
    assert stat.S_IMODE((files.root / "5" / "s1" / "work").stat().st_mode) == 0o700
    log = files.root / "5" / "s1" / "logs" / files.log_files(5, "s1")[0].name
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert launcher.isolation(5) == {"uid": os.getuid(), "gid": os.getgid(), "dropped_privileges": False,
                                     "no_new_privileges": False, "private_files": True}
