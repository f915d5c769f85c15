"""The Python SDK against a real server: the reference's usage example, 429 retries, sync wrapper, /ws helper."""

from __future__ import annotations

import asyncio
import textwrap
from decimal import Decimal

import httpx
import pytest

import quantdesk.app
from crypto_scalper import RateLimited, SyncTradingClient, TradingClient
from kit.app import make_settings
from quantdesk.adapters.feeds.reference_data import reference_prices
from quantdesk.adapters.limits.memory import MemoryRateCounter
from quantdesk.app import build_market, build_runtime
from quantdesk.core.instruments import InstrumentKind
from surfaces.scalper.conftest import serve

# 2-crypto-scalper-api.md, "Python SDK" → "Usage", verbatim (run inside an async function)
USAGE = '''
from crypto_scalper import TradingClient

# Initialize client
client = TradingClient(
    api_url="http://localhost:8000",
    api_key="your_api_key"
)

# Get balance
balance = await client.get_balance()
print(f"Available: ${balance.available_margin}")

# Get positions
positions = await client.get_positions()
for pos in positions:
    print(f"{pos.symbol}: {pos.unrealized_pnl}")

# Place order
order = await client.place_order(
    symbol="BTCUSDT",
    side="buy",
    quantity=0.1,
    order_type="market",
    stop_loss=49000,
    take_profit=55000
)
print(f"Order filled at {order.avg_fill_price}")

# Close position
result = await client.close_position("BTCUSDT")
print(f"P&L: ${result.realized_pnl}")

# Get P&L summary
pnl = await client.get_pnl(period="daily")
print(f"Daily P&L: ${pnl.total_pnl}")

# Bot control
await client.start_bot(paper_trading=True)
await client.stop_bot()
'''

CONTEXT_MANAGER = '''
async with TradingClient(api_url="http://localhost:8000", api_key="key") as client:
    balance = await client.get_balance()
    # ... operations
'''


async def run_example(code: str, url: str, api_key: str) -> dict:
    code = code.replace("http://localhost:8000", url).replace('"your_api_key"', repr(api_key))
    code = code.replace('api_key="key"', f"api_key={api_key!r}")
    namespace: dict = {"TradingClient": TradingClient}
    exec(compile("async def example():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n",
                 "<usage>", "exec"), namespace)
    return await namespace["example"]()


@pytest.fixture(scope="module")
def btc_near_52k(tmp_path_factory):
    """A server whose simulated BTC trades near 52,000, where the example's stop loss and take profit make sense."""
    tmp = tmp_path_factory.mktemp("sdk")
    settings = make_settings(tmp, live_feed_speed=0)
    market = build_market(settings)
    perp = market.catalog.resolve("BTCUSDT", kind=InstrumentKind.PERPETUAL)
    now_price = float(market.history(perp, "1m", limit=1)["close"].iloc[-1])
    prices = reference_prices()
    prices["BTCUSDT"] = prices["BTCUSDT"] * 52_000 / now_price  # the sim scales with its reference level
    patch = pytest.MonkeyPatch()
    patch.setattr(quantdesk.app, "reference_prices", lambda: dict(prices))
    try:
        with serve(make_settings(tmp / "server", live_feed_speed=0)) as server:
            yield server
    finally:
        patch.undo()


async def test_reference_usage_example_runs_unchanged(btc_near_52k, capsys):
    server = btc_near_52k
    _, headers = server.new_user()
    key = server.api_key(headers)
    scope = await run_example(USAGE, server.url, key)
    await scope["client"].close()
    out = capsys.readouterr().out
    assert "Available: $10000" in out and "Order filled at " in out and "P&L: $" in out and "Daily P&L: $" in out
    order, result, pnl = scope["order"], scope["result"], scope["pnl"]
    assert order.status == "filled" and order.filled_quantity == Decimal("0.1")
    assert Decimal(49_000) < order.avg_fill_price < Decimal(55_000)
    assert result.status == "filled" and result.quantity == Decimal("0.1")
    assert pnl.period == "daily" and pnl.realized_pnl == result.realized_pnl and pnl.trades == 1
    async with TradingClient(api_url=server.url, api_key=key) as client:
        [trade] = await client.get_trades()
        assert trade.pnl == result.realized_pnl and trade.symbol == "BTCUSDT"
        assert (await client.get_bot_status()).status == "stopped"
    scope = await run_example(CONTEXT_MANAGER, server.url, key)
    assert scope["balance"].total_equity_usd == 10_000 + result.realized_pnl


async def test_subscribe_helper_receives_an_order_event(btc_near_52k):
    server = btc_near_52k
    _, headers = server.new_user()
    async with TradingClient(api_url=server.url, api_key=server.api_key(headers)) as client:
        stream = client.subscribe("orders")
        first = asyncio.ensure_future(anext(stream))
        placed = []
        for _ in range(40):  # the subscription is live once the server acknowledged it; place until it is
            placed.append((await client.place_order("ETHUSDT", "buy", Decimal("0.01"))).order_id)
            done, _ = await asyncio.wait([first], timeout=0.25)
            if done:
                break
        message = await asyncio.wait_for(first, 5)
        await stream.aclose()
        assert message["type"] == "order" and message["data"]["order_id"] in placed
        assert message["data"]["status"] == "filled" and message["data"]["filled_quantity"] == Decimal("0.01")
        assert isinstance(message["data"]["avg_fill_price"], int | Decimal)  # exact: never a float


def test_sync_client_wraps_every_call(btc_near_52k):
    server = btc_near_52k
    _, headers = server.new_user()
    with SyncTradingClient(api_url=server.url, api_key=server.api_key(headers)) as client:
        assert client.get_account().account_type == "futures"
        order = client.place_order("BTCUSDT", "sell", 0.002, "market")
        [position] = client.get_positions(symbol="BTCUSDT")
        assert position.side == "short" and position.quantity == Decimal("0.002")
        assert position.entry_price == order.avg_fill_price
        assert client.set_leverage("BTCUSDT", 20)["max_leverage"] == 125
        closed = client.close_all_positions()
        assert closed["closed_positions"] == 1
        assert client.get_pnl(period="all").realized_pnl == Decimal(str(closed["total_realized_pnl"]))
        names = {s.name for s in client.get_strategies()}
        assert "momentum" in names
        assert client.update_strategy("momentum", parameters={"rsi_period": 10}).parameters["rsi_period"] == 10


class _Recorder(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.statuses.append(response.status_code)
        return response


async def test_client_retries_429_after_retry_after(tmp_path):
    settings = make_settings(tmp_path, live_feed_speed=0, rate_limit_read=2)
    runtime = build_runtime(settings)
    runtime.counter = MemoryRateCounter(window_s=2)  # two-second windows keep retry_after short
    with serve(settings, runtime) as server:
        _, headers = server.new_user()
        key = server.api_key(headers)
        recorder = _Recorder()
        async with TradingClient(api_url=server.url, api_key=key, transport=recorder, max_retries=5) as client:
            balances = [await client.get_balance() for _ in range(5)]
        assert all(b.total_equity_usd == 10_000 for b in balances)
        assert 429 in recorder.statuses and recorder.statuses.count(200) == 5
        async with TradingClient(api_url=server.url, api_key=key, max_retries=0) as client:
            with pytest.raises(RateLimited) as caught:
                for _ in range(5):
                    await client.get_balance()
        assert caught.value.code == "RATE_LIMITED" and 0 < caught.value.retry_after <= 2
