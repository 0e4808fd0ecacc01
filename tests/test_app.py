"""Every page runs headless (Streamlit AppTest) without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from featurelens.similarity import unpack_hover

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.stem for p in (ROOT / "pages").glob("[!_]*.py"))


@pytest.fixture(autouse=True)
def _navigation_app(monkeypatch):
    """AppTest resets Streamlit's legacy ``pages/``-folder flag before every run, so each run
    would start as a legacy page and hand over to app.py with a rerun (see
    ``pages._ui.shell.ensure_app_shell``), which drops button clicks. A server flips the flag
    once; do the same here so every run goes through app.py's ``st.navigation``."""
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def _run(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    if page != "home":
        at.switch_page(f"pages/{page}.py")
        at.run()
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_exception(page):
    at = _run(page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"page {page} shows no title"


def test_home_lists_scenarios():
    at = _run("home")
    text = " ".join(m.value for m in at.markdown)
    assert "FeatureLens" in at.title[0].value
    assert "Model & layers" in " ".join(str(l.proto) for l in at.get("page_link"))
    assert "features" in text


def test_model_layers_shows_predictions_and_layers():
    at = _run("model_layers")
    frame = at.dataframe[0].value
    assert list(frame["label"])[:2] == ["stem · 112×112×32", "stage 1 · 112×112×16"]
    assert at.number_input(key="ml_channel").value >= 0
    at.selectbox(key="ml_gallery").set_value("coffee").run()
    assert not at.exception
    at.selectbox(key="ml_layer").set_value("stage2").run()
    assert not at.exception
    assert "stage 2 · 56×56×24" in " ".join(s.value for s in at.subheader)


@pytest.mark.parametrize("page", PAGES)
def test_one_layer_control_per_page_the_sidebar_picks_only_the_model(page):
    """The rule, stated under the sidebar's model picker: each page picks its own layers."""
    at = _run(page)
    sidebar = [w.label for kind in ("selectbox", "multiselect", "radio", "select_slider") for w in at.sidebar.get(kind)]
    assert "Model" in sidebar and not [label for label in sidebar if "layer" in label.lower()], sidebar
    assert "each page picks its own layers" in " ".join(c.value for c in at.sidebar.caption)


def test_model_layers_bad_upload_gives_a_clear_error():
    at = _run("model_layers")
    at.radio(key="ml_source").set_value("Upload").run()
    assert not at.exception
    assert any("upload" in i.value.lower() for i in at.info)
    at.file_uploader(key="ml_upload").set_value(("notes.jpg", b"these are notes, not a photo", "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error).replace("\\", "")   # Markdown-escaped: the name as typed
    assert "'notes.jpg' is not an image" in errors and "PNG or JPEG" in errors


def test_unavailable_model_says_which_models_work_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", "http://127.0.0.1:9/none")
    at = _run("model_layers")
    at.sidebar.selectbox(key="fl_model").set_value("resnet50.tv_in1k").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "resnet50.tv_in1k" in errors and "efficientnet_lite0.in1k" in errors


def test_feature_caches_page_builds_a_cache_with_progress(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    at = _run("feature_caches")
    assert any("No caches" in i.value for i in at.info)
    at.multiselect(key="fc_layers").set_value(["stage7"])
    at.text_input(key="fc_name").set_value("gallery")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    _wait_for_build(at)
    assert any("ready" in s.value for s in at.success)
    assert (tmp_path / "caches" / "gallery.zarr" / "zarr.json").is_file()
    assert "gallery" in " ".join(e.label for e in at.expander)


def _wait_for_build(at: AppTest, timeout_s: float = 240) -> None:
    """The page builds in a background thread: rerun until it reports success or failure."""
    import time

    deadline = time.monotonic() + timeout_s
    while not (at.success or at.error) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_feature_caches_page_installs_from_the_catalog_in_the_environment(monkeypatch, tmp_path, lite0):
    from featurelens.caches import add_to_catalog, build_cache, pack_cache
    from featurelens.images import bundled_gallery

    build_cache(tmp_path / "src.zarr", bundled_gallery()[:2], lite0, ["stage7"], dataset_name="two")
    add_to_catalog(tmp_path / "site" / "catalog.json",
                   pack_cache(tmp_path / "src.zarr", tmp_path / "site" / "lab.zip", description="two photos"))
    (tmp_path / "bad.json").write_text('[{"name": "lab"}]')
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURELENS_CACHE_CATALOG", str(tmp_path / "bad.json"))
    at = _run("feature_caches")
    assert not at.exception and "missing required field 'url'" in " ".join(e.value for e in at.error)

    monkeypatch.setenv("FEATURELENS_CACHE_CATALOG", str(tmp_path / "site" / "catalog.json"))
    at = _run("feature_caches")
    listed = at.dataframe[0].value
    assert list(listed["name"]) == ["lab"] and list(listed["description"]) == ["two photos"]
    assert list(listed["images"]) == [2] and list(listed["layers"]) == ["stage7"]
    at.selectbox(key="fc_catalog_name").set_value("lab")
    at.button(key="fc_install").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("lab" in s.value and "installed" in s.value for s in at.success)
    assert (tmp_path / "home" / "caches" / "lab.zarr" / "zarr.json").is_file()
    assert "lab" in " ".join(e.label for e in at.expander)


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def view_header(at: AppTest, key: str) -> dict:
    """What the page sent to its similarity-views element ``key`` (pages/_ui/similarity_view.py):
    the state part of the payload, with ``assets`` describing the photos and feature grids."""
    element = next(e for e in at.get("bidi_component") if e.key == key)
    return unpack_hover(element.proto.bytes)[0]


def test_layer_hierarchy_preset_moves_the_reference_in_every_layer():
    at = _run("layer_hierarchy")
    eye = next(b for b in at.button if b.label == "Late layer: the cat's eye")
    eye.click().run()
    assert not at.exception
    assert at.session_state["lh_ref"] == (0.37, 0.35)
    header = view_header(at, "lh_views")
    assert header["mode"] == "layers" and header["ref"] == {"image": 0, "xy": [0.37, 0.35]}
    assert [v["label"] for v in header["views"]] == ["stage 2 · 56×56×24", "stage 3 · 28×28×40",
                                                      "stage 5 · 14×14×112", "stage 7 · 7×7×320"]
    grids = [header["assets"]["grids"][v["grid"]]["grid"] for v in header["views"]]
    assert grids == [[56, 56, 24], [28, 28, 40], [14, 14, 112], [7, 7, 320]]


def test_layer_hierarchy_restores_a_shared_link():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/layer_hierarchy.py")
    at.query_params.update({"images": "coffee", "layers": "stage2,stage3,stage7", "ref": "0.5000,0.1700",
                            "scale": "fixed", "cmap": "viridis", "opacity": "0.80", "channel": "5"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="lh_gallery").value == "coffee"
    assert at.multiselect(key="lh_layers").value == ["stage2", "stage3", "stage7"]
    assert at.radio(key="lh_scale").value == "fixed" and at.selectbox(key="lh_cmap").value == "viridis"
    assert at.slider(key="lh_opacity").value == pytest.approx(0.8)
    header = view_header(at, "lh_views")
    assert header["ref"]["xy"] == [0.5, 0.17] and header["scale"] == "fixed" and header["opacity"] == pytest.approx(0.8)
    assert header["lut"][:3] == [68, 1, 84]  # viridis
    assert header["channel"] == {"layer": "stage7", "index": 5, "all": False}
    assert "Channel view" in _captions(at)


def test_a_channel_can_be_shown_in_every_layer_that_has_it():
    """Issue 9: channel view across all layers it exists in (stage 2 has 24 channels, 3 has 40)."""
    at = _run("layer_hierarchy")
    at.number_input(key="lh_channel").set_value(30).run()
    at.toggle(key="lh_channel_all").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert view_header(at, "lh_views")["channel"] == {"layer": "stage7", "index": 30, "all": True}
    assert any("**Channel view**: stage3, stage5, stage7 show channel 30." in c.value for c in at.caption)


def test_compare_images_modes_render():
    at = _run("compare_images")
    header = view_header(at, "cmp_views_all")
    assert header["mode"] == "images" and len(header["views"]) == len(at.multiselect(key="cmp_images").value)
    assert {header["assets"]["grids"][v["grid"]]["layer"] for v in header["views"]} == {at.selectbox(key="cmp_layer").value}
    for mode in ("pair", "parts"):
        at.radio(key="cmp_mode").set_value(mode).run()
        assert not at.exception, (mode, [e.value for e in at.exception])
        if mode == "pair":
            assert view_header(at, "cmp_views_pair")["mode"] == "pair"
    assert "relative error" in _captions(at)
    at.radio(key="cmp_part").set_value(1).run()
    assert not at.exception


@pytest.mark.parametrize("page", ["layer_hierarchy", "compare_images", "model_layers"])
def test_a_chosen_presets_note_is_on_the_page_not_only_in_a_tooltip(page):
    from featurelens.scenarios import load_scenarios

    preset = load_scenarios(ROOT / "scenarios")[page].presets[-1]
    at = _run(page)
    assert not any(preset.note in m.value for m in at.markdown)
    [b for b in at.button if b.label == preset.name][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(preset.note in m.value and preset.name in m.value for m in at.markdown)


def _vector_chart_app(root: str, pinned: bool, highlight) -> None:
    """A page with only the feature-vector chart of the cat's eye (stage 7), for AppTest.from_function."""
    import sys

    sys.path.insert(0, root)
    import featurelens as fl
    from featurelens.images import get_gallery_image
    from featurelens.models import analyse_image
    from featurelens.similarity import compare_vectors
    from pages._ui.charts import vector_chart

    model = fl.load_model("efficientnet_lite0", device="cpu")
    feats_hwc = analyse_image(model, get_gallery_image("chelsea").load()).feats_hwc["stage7"]
    vectors = compare_vectors(feats_hwc, (0.37, 0.35), (0.30, 0.15) if pinned else None)
    vector_chart(vectors, "channel of stage7", key="bars", highlight=highlight)


def _chart(at: AppTest) -> tuple[dict, list]:
    import json

    chart = at.get("vega_lite_chart")[0].proto
    return json.loads(chart.spec), chart


@pytest.mark.parametrize("pinned", [False, True])
def test_feature_vector_chart_shows_the_top_channels_side_by_side_and_the_chosen_one(pinned):
    """Readable at 320 channels: the 32 largest |activations| at the reference, largest first;
    the pin's bar beside the reference's; the chosen channel kept and outlined; all 320 on request."""
    at = AppTest.from_function(_vector_chart_app, args=(str(ROOT), pinned, 5), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec, _ = _chart(at)
    order = spec["encoding"]["x"]["sort"]
    assert len(order) == 33 and len(set(order)) == 33 and 5 in order  # ordering: test_views.py
    assert ("xOffset" in spec["encoding"]) == pinned  # grouped, never stacked on top of each other
    assert spec["encoding"]["y"]["stack"] is None
    assert spec["encoding"]["strokeWidth"]["condition"]["test"] == "datum.channel === 5"
    assert spec["params"][0] == {"name": "pick", "select": {"type": "point", "fields": ["channel"], "on": "click"}}
    assert "top 32 of 320 and channel 5" in spec["encoding"]["x"]["title"]

    at.toggle(key="bars_all").set_value(True).run()
    spec, _ = _chart(at)
    assert len(spec["encoding"]["x"]["sort"]) == 320 and "all 320" in spec["encoding"]["x"]["title"]
