"""The sign-in page as a person meets it, in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(tmp_path: Path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        yield page
        browser.close()


def test_sign_in_reach_dashboard_and_sign_out(live_server, page, tmp_path):
    page.goto(f"{live_server}/docs")
    assert page.url.startswith(f"{live_server}/login?next=")  # a page without a session redirects

    page.fill("#username", "admin")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "invalid username or password"

    page.fill("#password", "admin-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/docs")  # back where the user was going
    page.goto(f"{live_server}/")
    assert "admin (admin)" in page.inner_text("header")
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert token and len(token) > 20
    page.screenshot(path=os.environ.get("QD_SCREENSHOT_DIR", str(tmp_path)) + "/dashboard.png")

    # the page's own fetch with its CSRF token can write; the same request without it cannot
    created = page.evaluate("""async () => {
        const csrf = document.querySelector('meta[name=csrf-token]').content;
        const ok = await fetch('/api/v1/auth/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json',
                               'X-CSRFToken': csrf}, body: JSON.stringify({name: 'from-page'})});
        const bad = await fetch('/api/v1/auth/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                body: JSON.stringify({name: 'forged'})});
        return [ok.status, bad.status];
    }""")
    assert created == [201, 403]

    page.click("text=Sign out")
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/")
    assert "/login" in page.url
