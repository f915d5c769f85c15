"""Browser flow: /login page, cookie session, CSRF on unsafe methods, redirects for pages."""

from __future__ import annotations

import re


async def _login(api) -> str:
    r = await api.client.post("/login", data={"username": "admin", "password": "admin-pass-123", "next": "/"})
    assert r.status_code == 303
    assert "qd_session" in r.cookies
    page = await api.client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert m, page.text
    return m.group(1)


async def test_page_without_session_redirects_to_login(api):
    r = await api.client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    login = await api.client.get("/login")
    assert login.status_code == 200 and "<form" in login.text


async def test_wrong_password_rerenders_login_with_401(api):
    r = await api.client.post("/login", data={"username": "admin", "password": "bad-password"})
    assert r.status_code == 401
    assert "invalid username or password" in r.text
    assert "qd_session" not in r.cookies


async def test_cookie_session_reads_without_csrf_but_writes_need_it(api):
    csrf = await _login(api)
    assert (await api.client.get("/api/v1/auth/me")).status_code == 200

    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "from-browser"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "CSRF_FAILED"
    assert (await api.client.get("/api/v1/auth/api-keys")).json()["api_keys"] == []  # nothing changed

    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "from-browser"}, headers={"X-CSRFToken": "wrong"})
    assert r.status_code == 403
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "from-browser"}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 201


async def test_header_authenticated_requests_are_exempt_from_csrf(api):
    admin = await api.auth()
    r = await api.client.post("/api/v1/auth/api-keys", json={"name": "script"}, headers=admin)
    assert r.status_code == 201


async def test_login_next_never_redirects_off_site(api):
    r = await api.client.post("/login", data={"username": "admin", "password": "admin-pass-123",
                                              "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_docs_need_a_session_and_group_by_surface(api):
    r = await api.client.get("/docs", headers={"Accept": "text/html"})
    assert r.status_code == 303
    spec = await api.client.get("/openapi.json", headers=await api.auth())
    assert spec.status_code == 200
    tags = {t["name"] for t in spec.json()["tags"]}
    assert {"scalper", "fluxscan", "pystrategies", "breakout", "mlbackend"} <= tags
