"""Hosted mode in Chromium: the Feature caches page offers no server path and shows none.
(Memory under huge uploads: tests/test_hosting.py and benchmarks/bench_memory.py.)"""

from __future__ import annotations

from pathlib import Path

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
