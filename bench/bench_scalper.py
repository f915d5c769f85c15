"""Benchmark: the Crypto Scalper surface under load from a second process on loopback.

Starts quantdesk in a server subprocess (temp SQLite DB, rate limits off, simulated live feed)
and measures, from this process:

1. order round trip: HTTP ``POST /api/v1/orders`` (paper market order) → its ``filled`` order
   event on ``/ws``, over ``--orders`` sequential orders (alternating buy/sell, 0.001 BTC);
2. ``GET /api/v1/positions`` at ``--rps`` requests/s for ``--seconds`` s, open loop (latency
   counted from each request's scheduled time, so queueing shows);
3. ``--clients`` concurrent ``/ws`` clients subscribed to ``market:BTCUSDT`` for ``--fanout-seconds``
   s on a second server whose feed runs ``--fanout-speed`` x real time (messages per client per s).

Targets: round trip p99 < 20 ms; positions p99 < 25 ms at 500 requests/s.

    .venv/bin/python bench/bench_scalper.py [--orders 1000] [--rps 500] [--seconds 30] [--clients 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import websockets

PASSWORD = "bench-admin-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(feed_speed: float):
    """quantdesk in a subprocess on a temp DB with rate limits off; yields its base URL."""
    tmp = Path(tempfile.mkdtemp(prefix="qd-bench-"))
    port = free_port()
    env = dict(os.environ, QD_DATABASE_URL=f"sqlite:///{tmp}/qd.db", QD_DATA_DIR=str(tmp / "data"),
               QD_SECRET_KEY_FILE=str(tmp / "secret.key"), QD_ADMIN_PASSWORD=PASSWORD, QD_RATE_LIMIT_READ="0",
               QD_RATE_LIMIT_WRITE="0", QD_RATE_LIMIT_BACKTEST="0", QD_LOG_LEVEL="WARNING",
               QD_WS_MESSAGES_PER_MINUTE="100000", QD_LIVE_FEED_SPEED=str(feed_speed))
    code = ("import uvicorn; from quantdesk.app import create_app; from quantdesk.settings import load_settings; "
            f"uvicorn.run(create_app(load_settings()), host='127.0.0.1', port={port}, log_level='warning', "
            "access_log=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def token(url: str) -> str:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    r.raise_for_status()
    return r.json()["access_token"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def line(name: str, ms: list[float]) -> str:
    return (f"{name}: n={len(ms)} p50={pct(ms, 50):.2f} ms p90={pct(ms, 90):.2f} ms p99={pct(ms, 99):.2f} ms "
            f"max={max(ms):.2f} ms mean={statistics.fmean(ms):.2f} ms")


async def auth_ws(url: str, jwt: str, channels: list[str]):
    ws = await websockets.connect(url.replace("http://", "ws://") + "/ws", max_queue=None)
    await ws.send(json.dumps({"type": "auth", "token": jwt}))
    while json.loads(await ws.recv()).get("type") != "auth":
        pass
    await ws.send(json.dumps({"type": "subscribe", "channels": channels}))
    while json.loads(await ws.recv()).get("type") != "subscribed":
        pass
    return ws


async def round_trips(url: str, jwt: str, n: int) -> None:
    arrived: dict[str, float] = {}
    waiters: dict[str, asyncio.Future] = {}
    ws = await auth_ws(url, jwt, ["orders"])

    async def reader() -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "order" and msg["data"]["status"] == "filled":
                oid = msg["data"]["order_id"]
                arrived[oid] = time.perf_counter()
                fut = waiters.pop(oid, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    task = asyncio.create_task(reader())
    rtt, http_ms = [], []
    headers = {"Authorization": f"Bearer {jwt}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
        for i in range(n + 20):  # 20 warm-up orders
            t0 = time.perf_counter()
            r = await http.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy" if i % 2 == 0 else "sell",
                                                        "type": "market", "quantity": 0.001})
            t1 = time.perf_counter()
            r.raise_for_status()
            oid = r.json()["order_id"]
            if oid not in arrived:
                fut = asyncio.get_running_loop().create_future()
                waiters[oid] = fut
                await asyncio.wait_for(fut, 10)
            if i >= 20:
                rtt.append((arrived[oid] - t0) * 1000)
                http_ms.append((t1 - t0) * 1000)
    task.cancel()
    await ws.close()
    print(line("order round trip (POST /orders -> filled event on /ws)", rtt), "| target p99 < 20 ms")
    print(line("  POST /orders HTTP reply alone", http_ms))


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol to cost the client ~nothing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (header := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def positions_load(url: str, jwt: str, rps: int, seconds: float, connections: int = 32) -> None:
    headers = {"Authorization": f"Bearer {jwt}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
        await http.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "market",
                                                "quantity": 0.001})
    raw = f"GET /api/v1/positions HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {jwt}\r\n\r\n".encode()
    pool: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(connections):
        conn = await RawConnection.open(url)
        for _ in range(5):  # warm up
            await conn.request(raw)
        pool.put_nowait(conn)
    total = int(rps * seconds)
    latencies: list[float] = []
    service: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rps
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.get()
        sent = time.perf_counter()
        try:
            status, body = await conn.request(raw)
            ok = status == 200 and b'"positions":[{' in body
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            ok = False
            conn = await RawConnection.open(url)
        done = time.perf_counter()
        pool.put_nowait(conn)
        errors += not ok
        latencies.append((done - scheduled) * 1000)
        service.append((done - sent) * 1000)

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    print(line(f"GET /positions at {rps}/s for {seconds:.0f} s (open loop, from scheduled time)", latencies),
          f"| achieved {total / elapsed:.0f}/s, errors={errors} | target p99 < 25 ms")
    print(line("  same, from send time", service))


def wrk_capacity(url: str, jwt: str, seconds: int = 10) -> None:
    """Closed-loop capacity of GET /positions with wrk, when it is installed (a cross-check)."""
    if shutil.which("wrk") is None:
        return
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {jwt}",
                          f"{url}/api/v1/positions"], capture_output=True, text=True).stdout
    summary = [x.strip() for x in out.splitlines() if x.strip().startswith(("50%", "99%", "Requests/sec"))]
    print(f"  wrk closed loop, 16 connections, {seconds} s: " + "; ".join(summary))


async def fanout(url: str, jwt: str, clients: int, seconds: float) -> None:
    sockets = [await auth_ws(url, jwt, ["market:BTCUSDT"]) for _ in range(clients)]
    counts = [0] * clients

    async def read(i: int, ws) -> None:
        async for raw in ws:
            if json.loads(raw).get("type") == "market":
                counts[i] += 1

    tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    rates = [c / seconds for c in counts]
    print(f"/ws fan-out: {clients} clients on market:BTCUSDT for {seconds:.0f} s: messages/client/s "
          f"mean={statistics.fmean(rates):.2f} min={min(rates):.2f} max={max(rates):.2f} "
          f"(total {sum(counts)} messages, {sum(counts) / seconds:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rps", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--fanout-seconds", type=float, default=20)
    parser.add_argument("--fanout-speed", type=float, default=20,
                        help="live feed speed of the fan-out server (BTCUSDT ticks 12 per simulated minute)")
    args = parser.parse_args()
    print(f"quantdesk Scalper bench on {os.cpu_count()} cores (client and server share them)")
    with server(feed_speed=1) as url:
        jwt = token(url)
        asyncio.run(round_trips(url, jwt, args.orders))
        asyncio.run(positions_load(url, jwt, args.rps, args.seconds))
        wrk_capacity(url, jwt)
    with server(feed_speed=args.fanout_speed) as url:
        jwt = token(url)
        expected = 12 * args.fanout_speed / 60
        print(f"(fan-out feed at {args.fanout_speed:g}x real time publishes {expected:.1f} BTCUSDT ticks/s)")
        asyncio.run(fanout(url, jwt, args.clients, args.fanout_seconds))


if __name__ == "__main__":
    main()
