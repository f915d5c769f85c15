"""A restart loses nothing: positions, working orders, balances and trade history come back from the database."""

from __future__ import annotations

import httpx

from .conftest import dec, serve


def test_paper_account_survives_a_server_restart(db_settings):
    settings = db_settings

    with serve(settings) as first:
        h = {"Authorization": f"Bearer {first.login()}"}
        with httpx.Client(base_url=first.url, headers=h) as c:
            assert c.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "market",
                                                  "quantity": 0.02}).status_code == 200
            assert c.post("/api/v1/positions/BTCUSDT/close", json={"quantity": 0.005}).status_code == 200
            assert c.post("/api/v1/orders", json={"symbol": "ETHUSDT", "side": "sell", "type": "market",
                                                  "quantity": 0.3}).status_code == 200
            resting = c.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "buy", "type": "limit",
                                                     "quantity": 0.001, "price": 1000}).json()
            assert resting["status"] in ("new", "accepted")
            before = {p: dec(c.get(p)) for p in ("/api/v1/positions", "/api/v1/trades", "/api/v1/balance")}

    with serve(settings) as second:
        h = {"Authorization": f"Bearer {second.login()}"}
        with httpx.Client(base_url=second.url, headers=h) as c:
            after = {p: dec(c.get(p)) for p in ("/api/v1/positions", "/api/v1/trades", "/api/v1/balance")}
            for side in (before, after):  # marks move with the simulated clock; the books must not
                for p in side["/api/v1/positions"]["positions"]:
                    for k in ("current_price", "unrealized_pnl", "unrealized_pnl_pct"):
                        p.pop(k)
                side["/api/v1/positions"].pop("total_unrealized_pnl")
                side["/api/v1/balance"].pop("total_equity_usd")
                side["/api/v1/balance"].pop("margin_level", None)
                side["/api/v1/balance"].pop("available_margin", None)
                for b in side["/api/v1/balance"]["balances"]:
                    b.pop("free", None)
            assert after["/api/v1/positions"] == before["/api/v1/positions"]
            assert after["/api/v1/trades"] == before["/api/v1/trades"]
            assert after["/api/v1/balance"] == before["/api/v1/balance"]
            assert len(after["/api/v1/positions"]["positions"]) == 2

            # the working order came back: it can be cancelled, and new ids do not collide
            r = c.delete(f"/api/v1/orders/{resting['order_id']}")
            assert r.status_code == 200 and r.json()["status"] == "cancelled"
            new = c.post("/api/v1/orders", json={"symbol": "BTCUSDT", "side": "sell", "type": "market",
                                                 "quantity": 0.015}).json()
            assert new["status"] == "filled" and new["order_id"] != resting["order_id"]
            assert [p["symbol"] for p in c.get("/api/v1/positions").json()["positions"]] == ["ETHUSDT"]
