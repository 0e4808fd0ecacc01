"""Hosted mode in Chromium: the Feature caches page offers no server path and shows none, and a
visitor's browser asks nothing of any other host (the demo box may be offline).
(Memory under huge uploads: tests/test_hosting.py and benchmarks/bench_memory.py.)"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_helpers import main_area, open_page, screenshot, streamlit_server
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def hosted_server(tmp_path_factory):
    env = {"FEATURELENS_MODE": "hosted", "FEATURELENS_HOME": str(tmp_path_factory.mktemp("hosted-home"))}
    with streamlit_server(env=env) as base_url:
        yield base_url


def test_hosted_feature_caches_page_offers_no_server_path(browser, hosted_server):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    open_page(page, f"{hosted_server}/feature_caches")
    main = main_area(page)
    expect(main.get_by_text("Your images (upload)")).to_be_visible()
    assert main.get_by_text("Image folder on this machine").count() == 0
    text = main.inner_text()
    assert "/tmp" not in text and "/root" not in text and str(Path.home()) not in text
    screenshot(page, "feature_caches_hosted_1280x720")
    context.close()


def test_a_visitor_s_browser_requests_nothing_from_other_hosts(browser, app_url):
    """Home, a similarity-view page and a search page load everything (scripts, fonts, favicon,
    images, the views' component) from the app's own server."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    try:
        page = context.new_page()
        for path in ("", "layer_hierarchy", "domain_shift"):
            open_page(page, f"{app_url}/{path}", timeout_ms=240_000)
            expect(page.locator('link[rel="shortcut icon"], link[rel="icon"]').first).to_be_attached()
        own = urlsplit(app_url).netloc
        outside = sorted({url for url in requested if urlsplit(url).scheme in ("http", "https", "ws", "wss")
                          and urlsplit(url).netloc != own})
        assert outside == [], outside
        assert any("/media/" in url for url in requested), "the favicon and photos come from the server's media"
    finally:
        context.close()
