"""The region-search pages headless (AppTest): the offline cache is built on first use and the
preset's region is searched. What each preset claims is checked in test_lesson_claims.py."""

from __future__ import annotations

import re

from pathlib import Path

import pytest

from featurelens.caches import ensure_recipe_cache, recipe_cache_path
from featurelens.models import load_model
from featurelens.scenarios import load_recipes
from tests.conftest import ROOT, local_cluster
from tests.test_app import _navigation_app, _run  # noqa: F401  (the fixture is autouse)

RECIPES = load_recipes(ROOT / "cache_recipes")


@pytest.fixture(scope="module")
def domain_cache():
    return ensure_recipe_cache(RECIPES["domain_shift"], load_model("efficientnet_lite0", device="cpu"))


def test_domain_shift_page_searches_the_preset_and_plots_every_domain():
    at = _run("domain_shift")
    assert not at.exception, [e.value for e in at.exception]
    assert any("Top 10 of" in h.value for h in at.markdown), [h.value for h in at.markdown]
    captions = [image.proto.imgs[0].caption for image in at.main if type(image).__name__ == "Image"]
    assert captions[0].startswith("The searched region on stage7's 7×7 grid"), captions[0]
    hits = [c for c in captions[1:] if c.startswith("#")]
    assert len(hits) == 10 and sum("chelsea" in c for c in hits) >= 8, hits
    medians = [c.value for c in at.caption if c.value.startswith("Median best score")]
    groups = re.findall(r"(?:: | · )([a-z ]+) (\d\.\d\d)", medians[0])
    assert [g for g, _ in groups][0] == "photo" and "other photos" in dict(groups), medians   # the preset's note
    assert [float(v) for _, v in groups] == sorted((float(v) for _, v in groups), reverse=True)
    at.selectbox(key="ds_preset").set_value("The cat's eye, in a sketch").run()
    assert not at.exception and at.selectbox(key="ds_domain").value == "sketch"
    at.radio(key="ds_unique").set_value("class / source photo").run()
    assert not at.exception
    at.selectbox(key="ds_label").set_value("coffee").run()   # another image: no region drawn yet
    assert "nothing drawn" in " ".join(i.value for i in at.info)


def test_model_comparison_page_shows_both_sides_and_their_overlap():
    at = _run("model_comparison")
    assert not at.exception, [e.value for e in at.exception]
    headings = [h.value for h in at.markdown]
    assert any(h.startswith("**A: Lite0, trained") for h in headings), headings
    assert any(h.startswith("**B: Lite0, random weights") for h in headings), headings
    overlap = next(h for h in headings if h.startswith("**Top-k overlap"))
    assert re.match(r"\*\*Top-k overlap: \d+ of 10\*\*", overlap), overlap


@pytest.fixture(scope="module")
def pacs_home(tmp_path_factory, domain_cache, shared_data_module):
    """A FeatureLens home with the generated cache (linked) and a small real PACS cache:
    3 images per domain × class, 84 images, built the way `cache build --images pacs/` does."""
    from featurelens.caches import build_cache, image_metadata
    from featurelens.images import folder_images

    home = tmp_path_factory.mktemp("home")
    caches = home / "caches"
    caches.mkdir()
    source = recipe_cache_path(RECIPES["domain_shift"], domain_cache.model_name)
    (caches / source.name).symlink_to(source.resolve())
    root = shared_data_module / "pacs"
    picked = {}
    for image in folder_images(root):
        key = Path(image.path).parent
        if len(picked.setdefault(key, [])) < 3:
            picked[key].append(image)
    images = [i for group in picked.values() for i in group]
    build_cache(caches / "pacs.zarr", images, "efficientnet_lite0", ["stage7"], dataset_name="pacs",
                metadata=image_metadata(images, root=root))
    return home


@pytest.fixture(scope="module")
def shared_data_module():
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data fixtures are not present")
    return SHARED_DATA


def test_domain_shift_page_searches_a_real_pacs_cache(pacs_home, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("FEATURELENS_HOME", str(pacs_home))
    st.cache_resource.clear()
    try:
        at = _run("domain_shift")
        assert "pacs" in at.selectbox(key="ds_dataset").options
        at.selectbox(key="ds_dataset").set_value("pacs").run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.selectbox(key="ds_label").value == "dog" and at.selectbox(key="ds_domain").value == "photo"
        assert at.selectbox(key="ds_image").value.startswith("photo/dog/")
        assert "nothing drawn" in " ".join(i.value for i in at.info)   # no preset on real data: draw first
        assert set(at.selectbox(key="ds_domain").options) == {"art_painting", "cartoon", "photo", "sketch"}
    finally:
        st.cache_resource.clear()


def test_domain_shift_page_searches_on_a_dask_cluster_and_says_so(domain_cache, monkeypatch):
    import streamlit as st

    pytest.importorskip("distributed")
    with local_cluster(n_workers=1, processes=False) as cluster:
        monkeypatch.setenv("FEATURELENS_DASK_SCHEDULER", cluster.scheduler_address)
        st.cache_resource.clear()
        try:
            at = _run("domain_shift")
            assert not at.exception, [e.value for e in at.exception]
            captions = " ".join(c.value for c in at.caption)
            assert f"Searched on the Dask cluster at `{cluster.scheduler_address}`" in captions, captions
            assert any("Top 10 of 419" in h.value for h in at.markdown)
        finally:
            st.cache_resource.clear()


def test_domain_shift_page_with_an_unreachable_cluster_warns_and_searches_here(domain_cache, monkeypatch):
    import streamlit as st

    pytest.importorskip("distributed")
    monkeypatch.setenv("FEATURELENS_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    st.cache_resource.clear()
    try:
        at = _run("domain_shift")
        assert not at.exception, [e.value for e in at.exception]
        assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in at.warning[0].value
        assert "searching on this server instead" in at.warning[0].value
        assert "FEATURELENS_DASK_SCHEDULER" in at.warning[0].value
        assert any("Top 10 of 419" in h.value for h in at.markdown)
    finally:
        st.cache_resource.clear()
