"""Presets (list, get, partial PUT with validation), the scanner's ranking, system metrics."""

from __future__ import annotations


async def test_presets_list_get_and_partial_update(bapi):
    api = bapi
    headers = await api.auth()
    listed = (await api.client.get("/api/presets/", headers=headers)).json()
    assert [p["name"] for p in listed] == ["breakout_v1", "breakout_conservative", "breakout_scalp"]
    assert listed[0] == {"name": "breakout_v1", "description": "Liquid markets momentum breakout strategy",
                         "risk_per_trade": 0.006, "max_positions": 3, "strategy_type": "momentum"}
    assert (await api.client.get("/api/presets", headers=headers)).json() == listed
    got = (await api.client.get("/api/presets/breakout_v1", headers=headers)).json()
    assert got["name"] == "breakout_v1"
    assert got["config"]["risk"]["risk_per_trade"] == 0.006 and got["config"]["risk"]["max_concurrent_positions"] == 3
    assert got["config"]["scanner_config"]["score_weights"]["vol_surge"] == 0.35

    r = await api.client.put("/api/presets/breakout_v1", headers=headers,
                             json={"description": "Updated strategy description",
                                   "risk": {"risk_per_trade": 0.007, "max_concurrent_positions": 3}})
    assert r.status_code == 200 and r.json()["success"] is True and r.json()["message"] == "Preset updated successfully"
    after = (await api.client.get("/api/presets/breakout_v1", headers=headers)).json()["config"]
    assert after["description"] == "Updated strategy description" and after["risk"]["risk_per_trade"] == 0.007
    # only what was sent changed
    assert after["risk"]["daily_loss_limit_r"] == got["config"]["risk"]["daily_loss_limit_r"]
    assert after["scanner_config"] == got["config"]["scanner_config"]
    r = await api.client.put("/api/presets/breakout_v1", headers=headers, json={"risk": {"max_consecutive_losses": 5}})
    assert r.status_code == 200
    after = (await api.client.get("/api/presets/breakout_v1", headers=headers)).json()["config"]
    assert after["risk"]["risk_per_trade"] == 0.007 and after["risk"]["max_consecutive_losses"] == 5
    status = (await api.client.get("/api/engine/status", headers=headers)).json()
    assert status["slots"] == 3


async def test_preset_updates_are_validated_naming_the_field(bapi):
    api = bapi
    headers = await api.auth()
    before = (await api.client.get("/api/presets/breakout_v1", headers=headers)).json()
    for body, field in [({"risk": {"risk_per_trade": 0.5}}, "risk.risk_per_trade"),
                        ({"risk": {"risk_per_trade": "lots"}}, "risk.risk_per_trade"),
                        ({"risk": {"max_concurrent_positions": 2.5}}, "risk.max_concurrent_positions"),
                        ({"risk": {"leverage": 5}}, "risk.leverage"),
                        ({"bogus": {}}, "bogus"),
                        ({"signal_config": {"allow_short": "yes"}}, "signal_config.allow_short"),
                        ({"scanner_config": {"timeframe": "7m"}}, "scanner_config.timeframe"),
                        ({"scanner_config": {"score_weights": {"astrology": 1}}}, "scanner_config.score_weights.astrology"),
                        ({"scanner_config": {"min_atr_pct": 20, "max_atr_pct": 10}}, "scanner_config.min_atr_pct"),
                        ({"strategy_type": "vibes"}, "strategy_type"),
                        ({}, "body")]:
        r = await api.client.put("/api/presets/breakout_v1", headers=headers, json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["detail"] or field.rsplit(".", 1)[-1] in r.json()["detail"], (field, r.json())
        assert r.json()["errors"] == {field: r.json()["detail"]}
    assert (await api.client.get("/api/presets/breakout_v1", headers=headers)).json() == before
    r = await api.client.get("/api/presets/nope", headers=headers)
    assert r.status_code == 404 and "nope" in r.json()["detail"] and r.json()["status_code"] == 404
    assert (await api.client.put("/api/presets/nope", headers=headers, json={"description": "x"})).status_code == 404


async def test_scanner_ranks_candidates_by_score_deterministically(bapi):
    api = bapi
    headers = await api.auth()
    body = {"preset": "breakout_v1", "limit": 5}
    first = await api.client.post("/api/scanner/scan", headers=headers, json=body)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["totalScanned"] == 12 and len(result["candidates"]) == 5
    scores = [c["score"] for c in result["candidates"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    top = result["candidates"][0]
    assert set(top) == {"symbol", "score", "filters", "metrics", "levels"} and "/" in top["symbol"]
    assert set(top["filters"]) == {"liquidity", "volatility", "volume_surge"}
    assert top["levels"]["high"] >= top["levels"]["low"] and "vol_surge_1h" in top["metrics"]
    # passedFilters counts every scanned symbol, candidates are the best ``limit`` of them
    assert result["passedFilters"] >= sum(all(c["filters"].values()) for c in result["candidates"])
    again = (await api.client.post("/api/scanner/scan", headers=headers, json=body)).json()
    assert again == result
    status = (await api.client.get("/api/scanner/status", headers=headers)).json()
    assert status["status"] == "idle" and status["last_scan"].endswith("Z")
    assert status["candidates_found"] == result["passedFilters"] and status["scan_duration_ms"] >= 0

    some = (await api.client.post("/api/scanner/scan", headers=headers,
                                  json={"symbols": ["ETH_USDT", "BTC/USDT"], "limit": 10})).json()
    assert some["totalScanned"] == 2 and {c["symbol"] for c in some["candidates"]} == {"BTC/USDT", "ETH/USDT"}
    r = await api.client.post("/api/scanner/scan", headers=headers, json={"symbols": ["NOPE/USDT"]})
    assert r.status_code == 400 and "NOPE/USDT" in r.json()["detail"]
    r = await api.client.post("/api/scanner/scan", headers=headers, json={"limit": 0})
    assert r.status_code == 400 and "limit" in r.json()["detail"]


async def test_system_metrics_and_empty_performance(bapi):
    api = bapi
    headers = await api.auth()
    perf = (await api.client.get("/api/metrics/performance", headers=headers)).json()
    assert {"cpu_percent", "memory_percent", "memory_used_mb", "disk_usage_percent", "active_threads", "open_files",
            "network_connections"} <= set(perf)
    assert isinstance(perf["timestamp"], float) and perf["active_threads"] >= 1
    health = (await api.client.get("/api/metrics/health", headers=headers)).json()
    assert health["status"] in ("healthy", "warning") and isinstance(health["timestamp"], int)
    assert set(health["performance"]) == {"cpu_percent", "memory_percent"} and health["metrics_count"] >= 0
    summary = (await api.client.get("/api/metrics/summary", headers=headers)).json()
    assert set(summary) == {"performance", "engine", "trading"}
    assert set(summary["engine"]) == {"cycle_time", "positions"} and set(summary["trading"]) == {"events", "pnl"}
    assert summary["engine"]["cycle_time"] == {"count": 0, "mean": 0.0, "min": 0.0, "max": 0.0}
    metrics = (await api.client.get("/api/performance/metrics", headers=headers)).json()
    assert metrics["totalTrades"] == 0 and metrics["winRate"] == 0 and metrics["maxDrawdownR"] == 0
    equity = (await api.client.get("/api/performance/equity", headers=headers)).json()
    assert equity == [{"timestamp": equity[0]["timestamp"], "value": 10000, "cumulativeR": 0.0}]
    engine = (await api.client.get("/api/engine/metrics", headers=headers)).json()
    assert engine == {"uptime": 0, "cycleCount": 0, "avgLatencyMs": 0.0, "totalSignals": 0, "totalTrades": 0,
                      "dailyPnlR": 0.0, "maxDrawdownR": 0.0}
