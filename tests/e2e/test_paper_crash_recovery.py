"""kill -9 a paper-trading process mid-stream; the restarted process has exactly what was acknowledged.

The daemon (paper_daemon.py) prints an acknowledgement line only after a step's batch is
committed. An uninterrupted reference run of the same deterministic script gives the state
after every step. A second run is killed with SIGKILL right after it is told to do step k, so
the kill lands before, inside or after that step's commit: the recovered state must equal the
acknowledged state after step k-1, or the state after step k if its commit made it but its
acknowledgement did not — never anything else. The recovered process then runs the rest of
the script and must end exactly where the reference ended, with fresh ids.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

DAEMON = Path(__file__).with_name("paper_daemon.py")
NUMBER = re.compile(r"^-?\d+(\.\d+)?(E[-+]?\d+)?$")
STEPS = 22  # len(paper_daemon.SCRIPT)


def exact(obj):
    """Decimal text → Decimal everywhere, so 0.300 and 0.3 compare equal and nothing is rounded."""
    if isinstance(obj, str) and NUMBER.match(obj):
        return Decimal(obj)
    if isinstance(obj, list):
        return [exact(x) for x in obj]
    if isinstance(obj, dict):
        return {k: exact(v) for k, v in obj.items()}
    return obj


def without_equity(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "equity"}  # marks are not in the ledger


class Daemon:
    def __init__(self, url: str, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(DAEMON), "--db", url, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def send(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"daemon exited with {self.proc.wait()}"
        return json.loads(line)

    def kill(self) -> list[dict]:
        """SIGKILL now; return the acknowledgements it managed to write before dying."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        rest = [json.loads(line) for line in self.proc.stdout.read().splitlines() if line.strip()]
        self.proc.stdin.close()
        self.proc.stdout.close()
        return rest

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        self.proc.stdout.close()


def new_account(url: str) -> str:
    out = subprocess.run([sys.executable, str(DAEMON), "--db", url, "init"], capture_output=True, text=True,
                         check=True, timeout=120)
    return str(json.loads(out.stdout)["account"])


def reference_run(url: str) -> tuple[list[dict], dict]:
    d = Daemon(url, "--account", new_account(url), "run")
    states = []
    for i in range(STEPS):
        d.send()
        ack = d.read()
        assert ack["step"] == i
        states.append(exact(ack["state"]))
    d.send()
    extra = exact(d.read())
    d.close()
    return states, extra


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[dict], dict]:
    return reference_run(f"sqlite:///{tmp_path_factory.mktemp('ref')}/ref.db")


def crash_and_recover(url: str, reference: tuple[list[dict], dict], kill_at: int) -> None:
    states, extra = reference
    account = new_account(url)
    d = Daemon(url, "--account", account, "run")
    acked = []
    for _ in range(kill_at):
        d.send()
        acked.append(d.read())
    d.send()  # step kill_at starts ...
    acked += d.kill()  # ... and the process dies somewhere in it
    assert [a["step"] for a in acked] == list(range(len(acked)))
    assert [exact(a["state"]) for a in acked] == states[:len(acked)]  # the run was the reference run
    last = len(acked) - 1

    r = Daemon(url, "--account", account, "recover")
    recovered = without_equity(exact(r.read()["recovered"]))
    acknowledged = without_equity(states[last]) if last >= 0 else None
    committed_unacked = without_equity(states[last + 1])
    assert recovered in (acknowledged, committed_unacked), "recovered state is neither acknowledged nor next"
    resume = last + 1 if recovered == acknowledged else last + 2
    r.send(f"resume {resume}")
    marks = exact(r.read()["marks"])
    assert marks == (states[resume - 1] if resume else marks)  # equity too, once the prices are back
    for i in range(resume, STEPS):
        r.send()
        ack = r.read()
        assert ack["step"] == i and exact(ack["state"]) == states[i]
    r.send()
    got = exact(r.read())
    r.close()
    # the recovered engine continues: a new order gets a fresh id and fills like in the reference
    assert got == extra
    order_id = got["order"][0]
    seen = {o[0] for s in states for o in s["orders"]}
    assert order_id not in seen and got["order"][1] == "filled"


@pytest.mark.parametrize("kill_at", [4, 9, 14, 19])
def test_kill_9_mid_stream_recovers_exactly_what_was_acknowledged_sqlite(tmp_path, reference, kill_at):
    crash_and_recover(f"sqlite:///{tmp_path}/paper.db", reference, kill_at)


@pytest.mark.postgres
@pytest.mark.parametrize("kill_at", [7, 16])
def test_kill_9_mid_stream_recovers_exactly_what_was_acknowledged_postgres(postgres_url, reference, kill_at):
    crash_and_recover(postgres_url, reference, kill_at)
