"""Local executor: jobs run in worker processes isolated from the server.

Workers are fresh interpreters (``python -m quantdesk.adapters.executors.local FD``: no
inherited locks, sockets or event loops, and none of the server's modules until a job imports
them), kept for reuse while idle, and talk to the server over one socket each: the server sends
``run``/``cancel``/``stop``, the worker answers ``progress`` and ``done``. One reader thread
multiplexes every pipe and hands events to the service's sink. Cancelling asks the job to stop
(its next ``ctx.progress`` raises) and kills the worker if it has not stopped after a short
grace period, so a job busy in a long computation still stops within a second.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing import connection as mp_connection
from typing import Any

from quantdesk.adapters.executors.runner import WorkerContext, run_job
from quantdesk.services.job_ports import EventSink, ExecutorEvent, JobRun

log = logging.getLogger(__name__)


def _worker_main(conn: Any) -> None:
    """Worker process loop: run one job at a time until told to stop or the server goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the server, which stops us
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        if message[0] != "run":
            continue  # a late cancel for a job that already ended
        _, job_id, target, params = message

        def emit(pct: float, description: str | None, detail: dict | None, job_id: str = job_id) -> None:
            try:
                conn.send(("progress", job_id, pct, description, detail))
            except OSError:  # the server is gone: nobody wants the result
                os._exit(1)

        def poll_cancel(job_id: str = job_id) -> bool:
            while conn.poll():
                msg = conn.recv()
                if msg[0] == "stop":
                    os._exit(0)
                if msg[0] == "cancel" and msg[1] == job_id:
                    return True
            return False

        kind, result, error = run_job(WorkerContext(job_id, emit, poll_cancel), target, params)
        try:
            conn.send(("done", job_id, kind, result, error))
        except OSError:
            return


class _Process:
    """A worker interpreter, with the slice of ``multiprocessing.Process`` the executor uses."""

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid

    def kill(self) -> None:
        try:
            self._popen.kill()
        except ProcessLookupError:
            pass

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()


class _Worker:
    def __init__(self, process: _Process, conn: Any):
        self.process = process
        self.conn = conn
        self.job_id: str | None = None
        self.done = threading.Event()
        self.killed = False
        self.retiring = False


class LocalExecutor:
    """Run jobs in a pool of spawned worker processes that grows on demand.

    ``max_idle_workers`` idle processes are kept for reuse (default: the CPU count); the job
    service's admission decides how many run at once.
    """

    name = "local"

    def __init__(self, *, max_idle_workers: int | None = None, cancel_grace_s: float = 0.3):
        self._max_idle = max_idle_workers if max_idle_workers is not None else (os.cpu_count() or 1)
        self._grace = cancel_grace_s
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._by_job: dict[str, _Worker] = {}
        self._sink: EventSink | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake_r: Any = None
        self._wake_w: Any = None

    # -- Executor port ------------------------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        self._sink = sink
        self._closing = False
        self._wake_r, self._wake_w = mp_connection.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._read_loop, name="local-executor-reader", daemon=True)
        self._thread.start()

    def submit(self, run: JobRun) -> None:
        with self._lock:
            if self._closing or self._thread is None:
                raise RuntimeError("the local executor is not running")
            worker = self._idle.pop() if self._idle else self._spawn()
            worker.job_id = run.job_id
            worker.done.clear()
            self._by_job[run.job_id] = worker
            worker.conn.send(("run", run.job_id, run.target, run.params))

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            worker = self._by_job.get(job_id)
            if worker is None:
                return False
            try:
                worker.conn.send(("cancel", job_id))
            except OSError:
                pass
        if worker.done.wait(self._grace):
            return True
        with self._lock:
            if worker.job_id != job_id:  # it finished on its own meanwhile
                return True
            worker.killed = True
            self._by_job.pop(job_id, None)
        worker.process.kill()
        worker.process.join(2)
        return True

    def close(self) -> None:
        with self._lock:
            self._closing = True
            workers = list(self._workers)
            for worker in workers:
                if worker.job_id is not None:
                    worker.killed = True
                    worker.process.kill()
                else:
                    worker.retiring = True
                    try:
                        worker.conn.send(("stop",))
                    except OSError:
                        pass
            self._wake()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for worker in workers:
            worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1)
            worker.conn.close()
        with self._lock:
            self._workers.clear()
            self._idle.clear()
            self._by_job.clear()
        for end in (self._wake_r, self._wake_w):
            if end is not None:
                end.close()

    # -- figures for the bench and tests --------------------------------------------------------

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent_end, child_end = socket.socketpair()
        with child_end:
            fd = child_end.fileno()
            popen = subprocess.Popen([sys.executable, "-m", __name__, str(fd)], pass_fds=(fd,), close_fds=True,
                                     stdin=subprocess.DEVNULL)
        worker = _Worker(_Process(popen), mp_connection.Connection(parent_end.detach()))
        self._workers.append(worker)
        self._wake()
        return worker

    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"w")
        except (OSError, AttributeError):
            pass

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing and not any(not w.retiring and not w.killed for w in self._workers):
                    return
                conns = {w.conn: w for w in self._workers}
            if self._closing and not conns:
                return
            ready = mp_connection.wait([*conns, self._wake_r], timeout=1.0)
            for conn in ready:
                if conn is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                    continue
                worker = conns[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self._on_exit(worker)
                    continue
                try:
                    self._on_message(worker, message)
                except Exception:  # one bad message must not stop the reader
                    log.exception("local executor could not handle %r", message[:2])

    def _emit(self, event: ExecutorEvent) -> None:
        if self._sink is not None:
            self._sink(event)

    def _on_message(self, worker: _Worker, message: tuple) -> None:
        if message[0] == "progress":
            _, job_id, pct, description, detail = message
            if worker.job_id == job_id and not worker.killed:
                self._emit(ExecutorEvent(job_id, "progress", progress=pct, description=description, detail=detail))
            return
        if message[0] != "done":
            return
        _, job_id, kind, result, error = message
        with self._lock:
            if worker.killed or worker.job_id != job_id:
                return
            worker.job_id = None
            self._by_job.pop(job_id, None)
            if self._closing or len(self._idle) >= self._max_idle:
                worker.retiring = True
                try:
                    worker.conn.send(("stop",))
                except OSError:
                    pass
            else:
                self._idle.append(worker)
        worker.done.set()
        self._emit(ExecutorEvent(job_id, kind, result=result, error=error))

    def _on_exit(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            job_id, worker.job_id = worker.job_id, None
            if job_id is not None:
                self._by_job.pop(job_id, None)
            unexpected = job_id is not None and not worker.killed
        worker.process.join(1)
        worker.conn.close()
        worker.done.set()
        if unexpected:
            code = worker.process.exitcode
            self._emit(ExecutorEvent(job_id, "failed", error=f"worker process exited unexpectedly (exit code {code})"))


if __name__ == "__main__":
    _worker_main(mp_connection.Connection(int(sys.argv[1])))
