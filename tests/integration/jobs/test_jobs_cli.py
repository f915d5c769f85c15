"""``quantdesk jobs list`` and ``quantdesk jobs follow`` read the jobs a server ran."""

from __future__ import annotations

import asyncio
import json

from jobs_kit import started_service
from typer.testing import CliRunner

from quantdesk.adapters.db.engine import migrate
from quantdesk.cli import app


async def _run_two_jobs(url: str):
    async with started_service(url) as (h, _):
        ok = await h.service.submit(None, "demo_backtest", {"n_bars": 1000})
        bad = await h.service.submit(None, "sleep", {"steps": 2, "step_s": 0, "fail_at": 1})
        await h.service.wait(ok.job.id, 30)
        await h.service.wait(bad.job.id, 30)
    return ok, bad


def test_jobs_list_and_follow_show_finished_jobs(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/qd.db"
    for key, value in {"QD_DATABASE_URL": url, "QD_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
                       "QD_DATA_DIR": str(tmp_path / "data"), "QD_ADMIN_PASSWORD": "admin-pass-123"}.items():
        monkeypatch.setenv(key, value)
    migrate(url)
    ok, bad = asyncio.run(_run_two_jobs(url))
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert ok.job.id in listed.output and "completed" in listed.output and "failed" in listed.output

    followed = runner.invoke(app, ["jobs", "follow", ok.job.id])
    assert followed.exit_code == 0, followed.output
    result = json.loads(followed.output[followed.output.index("{"):])
    assert result["bars"] == 1000

    failed = runner.invoke(app, ["jobs", "follow", bad.job.id])
    assert failed.exit_code == 1 and "failed at step 1" in failed.output
    missing = runner.invoke(app, ["jobs", "follow", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output
