"""Per-credential rate limits with X-RateLimit-* headers and the documented 429 body."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kit.app import api_for, make_settings


@pytest.fixture(params=["memory", "redis"])
async def limited_api(request, tmp_path: Path):
    extra = {}
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        extra["redis_url"] = url
    settings = make_settings(tmp_path, rate_limit_read=5, rate_limit_write=2, rate_limit_backtest=1, **extra)
    async for a in api_for(settings):
        yield a


async def test_reads_are_limited_per_credential_with_headers(limited_api):
    api = limited_api
    admin = await api.auth()
    seen = []
    for _ in range(5):
        r = await api.client.get("/api/v1/auth/me", headers=admin)
        assert r.status_code == 200
        seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert r.headers["x-ratelimit-limit"] == "5" and int(r.headers["x-ratelimit-reset"]) > 0
    assert seen == [4, 3, 2, 1, 0]
    r = await api.client.get("/api/v1/auth/me", headers=admin)
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "RATE_LIMITED" and err["retry_after"] >= 1
    assert r.headers["x-ratelimit-remaining"] == "0"

    # another credential (an API key of the same user) has its own budget ... but creating it is a write
    key = (await api.client.post("/api/v1/auth/api-keys", json={"name": "k"}, headers=admin)).json()["api_key"]
    r = await api.client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "4"


async def test_writes_have_their_own_smaller_budget(limited_api):
    api = limited_api
    admin = await api.auth()
    codes = [(await api.client.post("/api/v1/auth/api-keys", json={"name": f"k{i}"}, headers=admin)).status_code
             for i in range(3)]
    assert codes == [201, 201, 429]
    # the refused write left nothing behind
    keys = (await api.client.get("/api/v1/auth/api-keys", headers=admin)).json()["api_keys"]
    assert [k["name"] for k in keys] == ["k0", "k1"]


async def test_429_uses_each_surfaces_format(limited_api):
    api = limited_api
    admin = await api.auth()
    for _ in range(5):
        await api.client.get("/python/anything", headers=admin)
    r = await api.client.get("/python/anything", headers=admin)
    assert r.status_code == 429
    assert r.json()["success"] is False and r.json()["error_code"] == "RATE_LIMITED"


async def test_redis_counts_are_shared_between_workers(tmp_path: Path, redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings = make_settings(tmp_path, rate_limit_read=3, redis_url=redis_url)
    # two apps = two server workers sharing one database and one Redis
    async for one in api_for(settings):
        async for two in api_for(settings):
            headers = await one.auth()
            statuses = []
            for client in (one.client, two.client, one.client, two.client):
                statuses.append((await client.get("/api/v1/auth/me", headers=headers)).status_code)
            assert statuses == [200, 200, 200, 429]


def test_rate_limit_zero_turns_a_category_off(tmp_path: Path, live_server):
    # the live server fixture runs with every limit at 0: no headers, no 429 after many reads
    token = httpx.post(f"{live_server}/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-123"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    with httpx.Client(base_url=live_server, headers=headers) as client:
        for _ in range(150):
            r = client.get("/api/v1/auth/me")
            assert r.status_code == 200
        assert "x-ratelimit-limit" not in r.headers
