"""A real uvicorn server and the real CLI, as a new user meets them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

QD = [sys.executable, "-m", "quantdesk.cli"]


def run_cli(args, tmp_path: Path, env_extra=None, input_text=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QD_")}
    env.update({"QD_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "QD_SECRET_KEY_FILE": str(tmp_path / "k"),
                "QD_DATA_DIR": str(tmp_path / "data"), "QD_ADMIN_PASSWORD": "admin-pass-123"})
    env.update(env_extra or {})
    return subprocess.run([*QD, *args], cwd=tmp_path, env=env, capture_output=True, text=True, input=input_text,
                          timeout=120)


def test_live_server_login_and_api_key_round_trip(live_server):
    with httpx.Client(base_url=live_server) as c:
        assert c.get("/api/health").json()["status"] == "healthy"
        assert c.get("/api/v1/account").status_code == 401
        token = c.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-123"}).json()
        key = c.post("/api/v1/auth/api-keys", json={"name": "live"},
                     headers={"Authorization": f"Bearer {token['access_token']}"}).json()
        assert c.get("/api/v1/auth/me", headers={"X-API-Key": key["api_key"]}).status_code == 200


def test_cli_help_for_every_command(tmp_path):
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["user", "create", "--help"],
                 ["apikey", "create", "--help"]):
        r = run_cli(args, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "Usage" in r.stdout


def test_cli_migrate_user_and_apikey(tmp_path):
    assert run_cli(["migrate"], tmp_path).returncode == 0
    r = run_cli(["user", "create", "erin", "--role", "user", "--password", "erin-pass-1"], tmp_path)
    assert r.returncode == 0 and "created user erin" in r.stdout
    r = run_cli(["apikey", "create", "--user", "erin", "--name", "bot"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip().startswith("qd_")
    r = run_cli(["apikey", "create", "--user", "nobody"], tmp_path)
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_bad_setting_stops_with_one_line_naming_it(tmp_path):
    r = run_cli(["migrate"], tmp_path, {"QD_PORT": "eighty"})
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and "QD_PORT" in lines[0] and "Traceback" not in r.stderr
    r = run_cli(["migrate"], tmp_path, {"QD_DATABASE_URL": "mysql://x"})
    assert r.returncode == 2 and "QD_DATABASE_URL" in r.stderr


def test_first_start_without_password_generates_and_prints_it_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QD_")}
    env.update({"QD_DATABASE_URL": f"sqlite:///{tmp_path}/g.db", "QD_SECRET_KEY_FILE": str(tmp_path / "k")})
    code = ("from quantdesk.app import build_runtime, create_app; from quantdesk.settings import load_settings;"
            "s = load_settings(); create_app(s, build_runtime(s))")
    first = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    second = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "created admin user 'admin' with password" in first.stderr
    assert "password" not in second.stderr


def test_cli_backtest_json_matches_backtesting_py_on_goog(tmp_path):
    import json

    from backtesting.test import GOOG

    csv = tmp_path / "goog.csv"
    GOOG.to_csv(csv)
    r = run_cli(["backtest", "sma_cross", "--data", str(csv), "--param", "fast=10", "--param", "slow=20",
                 "--cash", "10000", "--commission", "0.002", "--json", "--plot", str(tmp_path / "eq.png")], tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["trades"]) == 46
    assert round(out["final_equity"], 2) == 63341.19  # backtesting.py 0.6.6's figure on the same run
    for t in out["trades"]:
        assert {"entry_time", "exit_time", "entry_price", "exit_price", "size", "pnl"} <= set(t)
    assert (tmp_path / "eq.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_backtest_bad_param_is_one_clear_line(tmp_path):
    r = run_cli(["backtest", "sma_cross", "--symbol", "BTCUSDT", "--param", "fast=-3"], tmp_path)
    assert r.returncode == 1 and "fast" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(["backtest", "no_such_strategy"], tmp_path)
    assert r.returncode == 1 and "no_such_strategy" in r.stderr


def test_cli_data_import_reports_rejected_rows(tmp_path):
    f = tmp_path / "acme.csv"
    f.write_text("timestamp,open,high,low,close,volume\n2024-01-01,100,110,95,105,1000\n"
                 "2024-01-02,105,104,100,103,1000\n")
    r = run_cli(["data", "import", str(f), "--exchange", "NSE"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 bars accepted, 1 rejected" in r.stderr and "high below" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = run_cli(["data", "import", str(bad)], tmp_path)
    assert r.returncode == 1 and "lacks required column" in r.stderr
