"""ML backend models and predictions over HTTP: train as a task, list, predict (at once, in the background, SSE)."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pytest

from kit.app import wait_status
from quantdesk.services import ml_jobs

# small and quick: 1h bars of the sim market, a few trees
TRAIN = {"symbol": "BTC_USDT", "timeframe": "1h", "n_steps_ahead": 4, "days_history": 20, "n_estimators": 20}
NAME = "BTC_USDT_1h_4steps_multi_ohlc"


async def _train(api, headers, **over) -> dict:
    r = await api.client.post("/api/models/train", json={**TRAIN, **over}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _wait_prediction(api, headers, pid: str, timeout_s: float = 60.0) -> dict:
    return await wait_status(api, headers, f"/api/predictions/{pid}", ("completed", "failed"), timeout_s)


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/models/"), ("GET", f"/api/models/{NAME}"), ("POST", "/api/models/train"),
    ("GET", "/api/predictions/?symbol=BTC_USDT&timeframe=1h"), ("POST", "/api/predictions/generate?symbol=BTC_USDT&timeframe=1h"),
    ("GET", "/api/predictions/list"), ("GET", "/api/predictions/abc"),
    ("GET", "/api/predictions/stream?symbol=BTC_USDT&timeframe=1h"),
])
async def test_models_and_predictions_without_credentials_are_401(api, method, path):
    r = await api.client.request(method, path, json=TRAIN if method == "POST" else None)
    assert r.status_code == 401
    assert "detail" in r.json()


async def test_train_runs_as_a_task_and_the_model_is_listed_with_metrics(api):
    user = await api.make_user("alice")
    body = await _train(api, user)
    assert body["status"] == "completed" and body["name"] == NAME
    assert body["symbol"] == "BTC_USDT" and body["timeframe"] == "1h" and body["n_steps_ahead"] == 4
    assert body["type"] == "multi_ohlc" and body["model_size_kb"] > 0
    perf = body["performance"]
    for key in ("train_r2", "val_r2", "train_mae", "val_mae", "train_rmse", "val_rmse", "val_direction_accuracy",
                "val_direction_precision", "val_direction_recall", "val_direction_f1"):
        assert isinstance(perf[key], float), key
    assert 0 <= perf["val_direction_accuracy"] <= 1
    importance = body["feature_importance"]
    assert {r["feature"] for r in importance} >= {"rsi_14", "macd", "atr_14", "volume_z_20", "ret_1"}
    assert sum(r["importance"] for r in importance) == pytest.approx(1.0, abs=1e-3)
    # the task is in the one queue, completed, and the caller's
    task = (await api.client.get(f"/api/system/tasks/{body['task_id']}", headers=user)).json()
    assert task["status"] == "completed" and task["task_type"] == "ml_train"

    listed = (await api.client.get("/api/models/", headers=user)).json()
    assert [m["name"] for m in listed] == [NAME]
    assert listed[0]["performance"] == perf
    one = (await api.client.get(f"/api/models/{NAME}", headers=user)).json()
    assert one["name"] == NAME and one["training"]["seed"] == 42


async def test_models_and_predictions_are_private(api):
    alice = await api.make_user("alice")
    bob = await api.make_user("bob")
    await _train(api, alice)
    pred = (await api.client.get("/api/predictions/?symbol=BTC_USDT&timeframe=1h&auto_train=false",
                                 headers=alice)).json()
    assert (await api.client.get("/api/models/", headers=bob)).json() == []
    r = await api.client.get(f"/api/models/{NAME}", headers=bob)
    assert r.status_code == 404 and NAME in r.json()["detail"]
    assert (await api.client.get(f"/api/predictions/{pred['id']}", headers=bob)).status_code == 404
    assert (await api.client.get("/api/predictions/list", headers=bob)).json() == []
    # bob has no model and may not train one implicitly
    r = await api.client.get("/api/predictions/?symbol=BTC_USDT&timeframe=1h&auto_train=false", headers=bob)
    assert r.status_code == 404 and "BTC_USDT" in r.json()["detail"]


@pytest.mark.parametrize("over, field", [
    ({"symbol": "NOPE_USDT"}, "NOPE_USDT"),
    ({"timeframe": "7x"}, "timeframe"),
    ({"n_steps_ahead": 0}, "n_steps_ahead"),
    ({"days_history": 2}, "days_history"),
])
async def test_train_bad_input_is_400_naming_the_field(api, over, field):
    user = await api.make_user("alice")
    r = await api.client.post("/api/models/train", json={**TRAIN, **over}, headers=user)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]


async def test_prediction_bad_input_is_4xx(api):
    user = await api.make_user("alice")
    r = await api.client.get("/api/predictions/?symbol=NOPE_USDT&timeframe=1h", headers=user)
    assert r.status_code == 400 and "NOPE_USDT" in r.json()["detail"]
    r = await api.client.post("/api/predictions/generate?symbol=BTC_USDT&timeframe=9q", headers=user)
    assert r.status_code == 400 and "timeframe" in r.json()["detail"]
    r = await api.client.post("/api/predictions/generate?symbol=BTC_USDT", headers=user)
    assert r.status_code == 422
    assert (await api.client.get("/api/predictions/nope", headers=user)).status_code == 404


async def test_predict_now_and_in_background_are_stored_and_listed(api):
    user = await api.make_user("alice")
    await _train(api, user)
    r = await api.client.get("/api/predictions/?symbol=BTC/USDT&timeframe=1h&auto_train=false", headers=user)
    assert r.status_code == 200, r.text
    now = r.json()
    assert now["model_name"] == NAME and now["model_trained"] is False and now["model_age_days"] == 0
    assert len(now["predictions"]) == 4 and now["current_price"] > 0
    first = now["predictions"][0]
    assert first["step"] == 1 and first["minutes_ahead"] == 60
    assert first["predicted_return"] == pytest.approx(first["predicted_close"] / now["current_price"] - 1)
    for p in now["predictions"]:
        assert p["predicted_low"] <= min(p["predicted_open"], p["predicted_close"])
        assert p["predicted_high"] >= max(p["predicted_open"], p["predicted_close"])
        assert 0.5 <= p["confidence"] <= 1 and 0 <= p["probability_up"] <= 1
        assert p["direction"] == ("up" if p["predicted_return"] > 0 else "down")
    assert 0 <= now["smoothness_score"] <= 1

    r = await api.client.post("/api/predictions/generate?symbol=BTC_USDT&timeframe=1h&auto_train=false",
                              headers=user)
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["status"] in ("running", "queued") and started["task_id"]
    done = await _wait_prediction(api, user, started["prediction_id"])
    assert done["status"] == "completed", done
    assert done["model_name"] == NAME and len(done["predictions"]) == 4
    # the same model on the same bars predicts the same path
    assert [p["predicted_close"] for p in done["predictions"]] == [p["predicted_close"] for p in now["predictions"]]

    listed = (await api.client.get("/api/predictions/list", headers=user)).json()
    assert {p["id"] for p in listed} == {now["id"], started["prediction_id"]}
    assert all(p["status"] == "completed" and p["symbol"] == "BTC_USDT" for p in listed)
    assert (await api.client.get("/api/predictions/list?timeframe=4h", headers=user)).json() == []


async def test_generate_without_a_model_trains_one_first(api):
    user = await api.make_user("alice")
    r = await api.client.post("/api/predictions/generate?symbol=ETH_USDT&timeframe=4h", headers=user)
    assert r.status_code == 200, r.text
    done = await _wait_prediction(api, user, r.json()["prediction_id"], timeout_s=120)
    assert done["status"] == "completed", done
    assert done["model_trained"] is True and done["model_name"] == "ETH_USDT_4h_24steps_multi_ohlc"
    assert [m["name"] for m in (await api.client.get("/api/models/", headers=user)).json()] == [done["model_name"]]


async def test_saved_model_is_lightgbm_text_and_reloads_to_the_same_predictions(api):
    user = await api.make_user("alice")
    await _train(api, user)
    pred = (await api.client.get("/api/predictions/?symbol=BTC_USDT&timeframe=1h&auto_train=false",
                                 headers=user)).json()
    files = list((api.app.state.settings.data_dir / "models").glob(f"*/{NAME}.txt"))
    assert len(files) == 1
    text = files[0].read_text()
    assert text.startswith("tree\nversion=v")  # LightGBM's own text format, not a pickle
    booster = lgb.Booster(model_file=str(files[0]))
    model = api.app.state.ml_models
    record = (await model.models(_principal(api, files[0])))[0]
    market = api.app.state.market
    frame = market.history("BTC_USDT", "1h", limit=ml_jobs_predict_bars())
    frame = frame[frame.index <= pred["bars_end"]]
    again = ml_jobs.predict_path(booster, frame, 4, record.details, 3600)
    assert [p["predicted_close"] for p in again["predictions"]] == [p["predicted_close"] for p in pred["predictions"]]
    assert again["current_price"] == pred["current_price"]


def ml_jobs_predict_bars() -> int:
    from quantdesk.services.ml_models import PREDICT_BARS

    return PREDICT_BARS


def _principal(api, path):
    from quantdesk.services.accounts import Principal, Role

    return Principal(int(path.parent.name), "alice", Role.USER, "bearer", "test")


async def test_training_is_deterministic_for_a_fixed_seed(api):
    user = await api.make_user("alice")
    first = await _train(api, user, seed=7)
    path = next((api.app.state.settings.data_dir / "models").glob(f"*/{NAME}.txt"))
    text = path.read_text()
    second = await _train(api, user, seed=7)
    assert path.read_text() == text
    assert second["performance"] == first["performance"]
    assert second["feature_importance"] == first["feature_importance"]
    third = await _train(api, user, seed=8)
    assert third["performance"] != first["performance"] or path.read_text() != text


def test_features_are_causal():
    # a feature at bar t must not change when later bars change
    rng = np.random.default_rng(1)
    import pandas as pd

    n = 120
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                          "volume": rng.uniform(1, 2, n)},
                         index=pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"))
    full = ml_jobs.features(frame)
    cut = ml_jobs.features(frame.iloc[:80])
    pd.testing.assert_frame_equal(full.iloc[:80], cut)


async def test_prediction_stream_yields_steps_then_complete(api):
    user = await api.make_user("alice")
    await _train(api, user)
    events = []
    async with api.client.stream("GET", "/api/predictions/stream?symbol=BTC_USDT&timeframe=1h&auto_train=false",
                                 headers=user) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    steps = [d["step"] for n, d in events if n == "status"]
    assert steps == ["check", "fetch", "predict"]
    assert events[-1][0] == "complete" and events[-1][1]["model_name"] == NAME
