"""The region-search pages headless (AppTest): the offline cache is built on first use, the
preset's region is searched, and every preset's claim holds on the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from featurelens.caches import ensure_recipe_cache, recipe_cache_path
from featurelens.models import load_model
from featurelens.scenarios import load_recipes, load_scenario
from featurelens.search import box_mask, query_from_features, search_features, top_overlap
from tests.conftest import ROOT, local_cluster
from tests.test_app import _navigation_app, _run  # noqa: F401  (the fixture is autouse)

RECIPES = load_recipes(ROOT / "cache_recipes")


def _preset_search(cache, preset, layer: str, top_k: int = 10):
    feats = np.asarray(cache.features(layer)[:], np.float32)
    index = cache.image_ids.index(f"{preset.image}-full-{preset.extra.get('domain', 'photo')}")
    mask_hw = box_mask(preset.extra["box"], feats.shape[1:3])
    query = query_from_features(feats[index], mask_hw, model=cache.model_name, layer=layer, image_index=index)
    return search_features(feats, query, image_ids=cache.image_ids, metadata=cache.metadata, top_k=top_k)


@pytest.fixture(scope="module")
def domain_cache():
    return ensure_recipe_cache(RECIPES["domain_shift"], load_model("efficientnet_lite0", device="cpu"))


DOMAIN_PRESETS = load_scenario(ROOT / "scenarios" / "domain_shift.toml").presets


def _same_photo_means(result, photo: str):
    table = result.scores_table()
    table = table[table["valid"] & (table["source_photo"] == photo)]
    return table.groupby("domain")["score"].mean().sort_values(ascending=False)


@pytest.mark.parametrize("preset", DOMAIN_PRESETS, ids=lambda p: p.name)
def test_domain_shift_preset_finds_its_photo_and_its_domain_scores_highest(domain_cache, preset):
    """Lesson: almost every top match is the query's own photo; its own domain scores highest,
    other photos far lower; for a photo query grayscale is next to the photo, sketch and JPEG low."""
    result = _preset_search(domain_cache, preset, preset.layer)
    same_photo = sum(hit.metadata["source_photo"] == preset.image for hit in result.top)
    assert same_photo >= 8, f"only {same_photo} of the top 10 come from {preset.image}"
    means = _same_photo_means(result, preset.image)
    assert means.index[0] == preset.extra["domain"], means.round(3).to_dict()
    table = result.scores_table()
    others = table[table["valid"] & (table["source_photo"] != preset.image)]["score"].median()
    assert others < means.min() - 0.3, (others, means.min())
    if preset.extra["domain"] == "photo":
        assert means.index[1] == "grayscale", means.round(3).to_dict()
        assert {"sketch", "jpeg"} <= set(means.index[-3:]), means.round(3).to_dict()


def test_sketch_query_ranks_sketches_first_at_stage7_not_at_stage5(domain_cache):
    """Lesson: with the sketch query, stage 7's first results are sketches; stage 5's are mixed."""
    preset = next(p for p in DOMAIN_PRESETS if p.extra["domain"] == "sketch")
    first = {layer: [h.metadata["domain"] for h in _preset_search(domain_cache, preset, layer, 3).top]
             for layer in ("stage5", "stage7")}
    assert first["stage7"] == ["sketch"] * 3, first
    assert first["stage5"] != ["sketch"] * 3, first


MODEL_PRESETS = load_scenario(ROOT / "scenarios" / "model_comparison.toml").presets
MODELS = ("efficientnet_lite0", "efficientnet_lite2", "efficientnet_lite0_random")


@pytest.fixture(scope="module")
def comparison_caches():
    return {name: ensure_recipe_cache(RECIPES["model_comparison"], load_model(name, device="cpu")) for name in MODELS}


@pytest.mark.parametrize("preset", MODEL_PRESETS, ids=lambda p: p.name)
def test_model_comparison_claims_hold_for_every_preset(comparison_caches, preset):
    """Lesson: trained models find nearly all 7 other images of the photo (crops and sketches);
    random weights only two or three; Lite0 and Lite2 share most of their top 10, Lite0 and
    its random twin only two or three."""
    top = {name: _preset_search(cache, preset, "stage7").top for name, cache in comparison_caches.items()}
    own = {name: [h.metadata for h in hits if h.metadata["source_photo"] == preset.image] for name, hits in top.items()}
    assert len(own["efficientnet_lite0"]) >= 6 and len(own["efficientnet_lite2"]) >= 6, own
    assert any(m["domain"] == "sketch" for m in own["efficientnet_lite0"])
    assert 2 <= len(own["efficientnet_lite0_random"]) <= 3, own["efficientnet_lite0_random"]
    ids = {name: [h.id for h in hits] for name, hits in top.items()}
    trained = top_overlap(ids["efficientnet_lite0"], ids["efficientnet_lite2"])[1]
    random = top_overlap(ids["efficientnet_lite0"], ids["efficientnet_lite0_random"])[1]
    assert trained >= 0.6 and 0.2 <= random <= 0.3, (trained, random)


def test_domain_shift_page_searches_the_preset_and_plots_every_domain():
    at = _run("domain_shift")
    assert not at.exception, [e.value for e in at.exception]
    assert any("Top 10 of" in h.value for h in at.subheader), [h.value for h in at.subheader]
    captions = [image.proto.imgs[0].caption for image in at.main if type(image).__name__ == "Image"]
    assert captions[0].startswith("The searched region on stage7's 7×7 grid"), captions[0]
    hits = [c for c in captions[1:] if c.startswith("#")]
    assert len(hits) == 10 and sum("chelsea" in c for c in hits) >= 8, hits
    at.selectbox(key="ds_preset").set_value("The cat's eye, in a sketch").run()
    assert not at.exception and at.selectbox(key="ds_domain").value == "sketch"
    at.radio(key="ds_unique").set_value("class / source photo").run()
    assert not at.exception
    at.selectbox(key="ds_label").set_value("coffee").run()   # another image: no region drawn yet
    assert "nothing drawn" in " ".join(i.value for i in at.info)


def test_model_comparison_page_shows_both_sides_and_their_overlap():
    at = _run("model_comparison")
    assert not at.exception, [e.value for e in at.exception]
    subheaders = [h.value for h in at.subheader]
    assert any(h.startswith("A: Lite0, trained") for h in subheaders), subheaders
    assert any(h.startswith("B: Lite0, random weights") for h in subheaders), subheaders
    assert at.metric[0].label == "Top-k overlap"


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
            assert any("Top 10 of 419" in h.value for h in at.subheader)
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
        assert any("Top 10 of 419" in h.value for h in at.subheader)
    finally:
        st.cache_resource.clear()
