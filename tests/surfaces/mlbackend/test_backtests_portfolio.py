"""ML backend backtests (a registered strategy or a model's signals, on the one engine) and the portfolio."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kit.app import wait_status

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = END - timedelta(days=20)
RUN = {"strategy": "sma_cross", "symbol": "BTC_USDT", "start_date": START.isoformat(), "end_date": END.isoformat(),
       "initial_capital": 10_000.0, "params": {"fast": 5, "slow": 20}, "timeframe": "1h"}


async def _wait_backtest(api, headers, bid: str, timeout_s: float = 60.0) -> dict:
    return await wait_status(api, headers, f"/api/backtests/{bid}", ("success", "failed"), timeout_s)


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/backtests/"), ("GET", "/api/backtests/x"), ("POST", "/api/backtests/run"),
    ("GET", "/api/backtests/stream"), ("GET", "/portfolio"), ("GET", "/portfolio/history"),
])
async def test_backtests_and_portfolio_without_credentials_are_401(api, method, path):
    r = await api.client.request(method, path, json=RUN if method == "POST" else None)
    assert r.status_code == 401
    assert "detail" in r.json()


async def test_registered_strategy_backtest_runs_on_the_one_engine(api):
    user = await api.make_user("alice")
    r = await api.client.post("/api/backtests/run", json=RUN, headers=user)
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["status"] in ("running", "queued") and started["task_id"]
    done = await _wait_backtest(api, user, started["backtest_id"])
    assert done["status"] == "success", done
    perf, trading = done["performance"], done["trading"]
    assert set(perf) >= {"total_return", "sharpe_ratio", "max_drawdown", "win_rate", "sortino_ratio", "calmar_ratio"}
    assert set(trading) >= {"total_trades", "winning_trades", "losing_trades", "avg_win", "avg_loss",
                            "avg_trade_duration", "profit_factor"}
    assert trading["total_trades"] == len(done["trades"]) > 0
    assert perf["max_drawdown"] <= 0
    assert done["final_equity"] == pytest.approx(10_000 * (1 + perf["total_return"]))
    # the same engine the CLI and the Scalper backtests use, on the same bars, gives the same figures
    from quantdesk.engine.backtest import BacktestConfig, run_backtest

    frame = api.app.state.market.history("BTC_USDT", "1h", START, END)
    direct = run_backtest(BacktestConfig(strategy="sma_cross", params={"fast": 5, "slow": 20}, symbol="BTCUSDT",
                                         currency="USDT", lot_size=done_lot(api)), frame)
    assert done["final_equity"] == float(direct.final_equity)
    assert done["trading"]["total_trades"] == direct.metrics["total_trades"]

    listed = (await api.client.get("/api/backtests/", headers=user)).json()
    assert [b["id"] for b in listed] == [started["backtest_id"]]
    assert listed[0]["performance"]["total_return"] == perf["total_return"]
    other = await api.make_user("bob")
    assert (await api.client.get(f"/api/backtests/{started['backtest_id']}", headers=other)).status_code == 404
    assert (await api.client.get("/api/backtests/", headers=other)).json() == []


def done_lot(api):
    return api.app.state.market.resolve("BTC_USDT").lot_size


async def test_model_signals_backtest(api):
    user = await api.make_user("alice")
    r = await api.client.post("/api/models/train", headers=user, json={
        "symbol": "BTC_USDT", "timeframe": "1h", "n_steps_ahead": 4, "days_history": 20, "n_estimators": 20})
    assert r.status_code == 200, r.text
    body = {**RUN, "strategy": "MLPredictive", "start_date": (END - timedelta(days=5)).isoformat(),
            "params": {"model_path": r.json()["name"], "position_size": 0.5, "stop_loss_pct": 0.02}}
    r = await api.client.post("/api/backtests/run", json=body, headers=user)
    assert r.status_code == 200, r.text
    done = await _wait_backtest(api, user, r.json()["backtest_id"])
    assert done["status"] == "success", done
    assert done["strategy"] == "MLPredictive" and done["bars"] == 5 * 24
    assert done["params"]["position_size"] == "0.5"


@pytest.mark.parametrize("over, field", [
    ({"strategy": "nope"}, "strategy"),
    ({"symbol": "NOPE_USDT"}, "NOPE_USDT"),
    ({"timeframe": "9q"}, "timeframe"),
    ({"params": {"fast": 30, "slow": 20}}, "fast"),
    ({"start_date": END.isoformat(), "end_date": START.isoformat()}, "start_date"),
    ({"strategy": "MLPredictive", "params": {"model_path": "missing"}}, "missing"),
    ({"strategy": "MLPredictive", "params": {}}, "model_path"),
])
async def test_backtest_bad_input_is_400_naming_the_field(api, over, field):
    user = await api.make_user("alice")
    r = await api.client.post("/api/backtests/run", json={**RUN, **over}, headers=user)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]


async def test_backtest_stream_yields_progress_then_complete(api):
    user = await api.make_user("alice")
    q = {**RUN, "params": json.dumps(RUN["params"])}
    events = []
    async with api.client.stream("GET", "/api/backtests/stream", params=q, headers=user) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert events[0][0] == "status" and events[0][1]["backtest_id"]
    assert events[-1][0] == "complete"
    assert events[-1][1]["metrics"]["total_trades"] > 0
    r = await api.client.get("/api/backtests/stream", params={**q, "strategy": "nope"}, headers=user)
    assert r.status_code == 400 and "strategy" in r.json()["detail"]


async def test_portfolio_reflects_a_scalper_paper_order(api):
    user = await api.make_user("alice")
    empty = (await api.client.get("/portfolio", headers=user)).json()
    assert empty["positions"] == [] and empty["total_value"] == empty["cash"] == 10_000
    assert empty["total_pnl"] == 0
    r = await api.client.post("/api/v1/orders", headers=user,
                              json={"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": 0.01})
    assert r.status_code in (200, 201), r.text
    body = (await api.client.get("/portfolio", headers=user)).json()
    [pos] = body["positions"]
    assert pos["symbol"] == "BTC_USDT" and pos["side"] == "long" and pos["quantity"] == 0.01
    scalper = (await api.client.get("/api/v1/positions", headers=user)).json()["positions"][0]
    assert pos["entry_price"] == pytest.approx(float(scalper["entry_price"]))
    assert pos["pnl"] == pytest.approx(pos["quantity"] * (pos["current_price"] - pos["entry_price"]), abs=1e-6)
    balance = (await api.client.get("/api/v1/balance", headers=user)).json()
    assert body["total_value"] == pytest.approx(balance["total_equity_usd"], rel=1e-3)
    history = (await api.client.get("/portfolio/history?days=3", headers=user)).json()
    assert len(history) == 3 and history[0]["value"] == 10_000
    assert history[-1]["value"] == pytest.approx(body["total_value"], rel=1e-6)
    # close it: the realized P&L shows in the history of today and the totals
    r = await api.client.post("/api/v1/positions/BTCUSDT/close", headers=user)
    assert r.status_code == 200, r.text
    after = (await api.client.get("/portfolio", headers=user)).json()
    assert after["positions"] == []
    assert after["total_pnl"] == pytest.approx(after["total_value"] - 10_000)
    other = (await api.client.get("/portfolio", headers=await api.make_user("bob"))).json()
    assert other["positions"] == [] and other["total_value"] == 10_000
    r = await api.client.get("/portfolio/history?days=0", headers=user)
    assert r.status_code == 422


async def test_predictions_and_backtests_left_unfinished_by_a_crash_are_failed_at_start(tmp_path):
    from datetime import UTC, datetime

    from kit.app import api_for, make_settings
    from quantdesk.adapters.db.engine import make_engine, migrate
    from quantdesk.adapters.db.ml_models import SqlMlStore
    from quantdesk.services.ml_models import BacktestRecord, PredictionRecord

    settings = make_settings(tmp_path, live_feed_speed=0)
    async for api in api_for(settings):  # creates the admin (user 1)
        await api.auth()
    migrate(settings.database_url)
    store = SqlMlStore(make_engine(settings.database_url))
    now = datetime.now(UTC)
    store.add_prediction(PredictionRecord("p-left", 1, "BTC_USDT", "1h", "running", now))
    store.add_backtest(BacktestRecord("b-left", 1, "sma_cross", "BTC_USDT", "1h", now, now, {}, "queued", now))
    async for api in api_for(settings):
        h = await api.auth()
        prediction = (await api.client.get("/api/predictions/p-left", headers=h)).json()
        backtest = (await api.client.get("/api/backtests/b-left", headers=h)).json()
    assert prediction["status"] == "failed" and "server restarted" in str(prediction)
    assert backtest["status"] == "failed" and "server restarted" in str(backtest)
