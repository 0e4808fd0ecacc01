"""Links never crash: every hand-edited or hostile link value on the overlay pages gives no
exception, exactly one warning naming the value, and an address bar that holds only valid
values — the ones the page shows. Widgets never raise Streamlit min/max errors when session
state holds an out-of-range value."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from featurelens.images import bundled_gallery
from featurelens.models import get_spec
from featurelens.similarity import ViewState, from_query
from featurelens.similarity.viewstate import Bounds

from test_app import ROOT, _navigation_app, _run, view_header  # noqa: F401  (the fixture applies to this module too)

SPEC = get_spec("efficientnet_lite0")
CHANNELS = {layer.name: layer.channels for layer in SPEC.layers}
ORDER = list(CHANNELS)
GALLERY = {g.id for g in bundled_gallery()}
# What each page shows, as the pages build their Bounds: a link the page wrote must read back cleanly.
BOUNDS = {
    "layer_hierarchy": Bounds(images=GALLERY, channels=CHANNELS, max_images=1, max_layers=5,
                              hidden=("mode", "parts", "part")),
    "compare_images": Bounds(images=GALLERY, channels=CHANNELS, min_images=2, max_images=8, max_layers=1,
                             parts=(2, 10), modes=("all", "pair", "parts"), hidden=("pin", "channel")),
    "model_layers": Bounds(images=GALLERY, channels=CHANNELS, max_images=1, max_layers=1,
                           hidden=("ref", "ref_image", "pin", "metric", "scale", "cmap", "base", "upsample", "mode",
                                   "parts", "part")),
}
LONG = "x" * 10_000

# (params, text the one warning must contain) — on both overlay pages.
BOTH = [
    ({"channel": "99999"}, "channel='99999'"),
    ({"channel": "-1"}, "channel='-1'"),
    ({"channel": "１２"}, "channel='１２'"),
    ({"layers": "stage2,stage2,stage2"}, "repeated layer stage2"),
    ({"mode": "parts", "parts": "50"}, "parts='50'"),
    ({"mode": "parts", "parts": "1"}, "parts='1'"),
    ({"images": "chelsea,chelsea"}, "repeated image chelsea"),
    ({"ref": "2,2"}, "ref='2,2'"),
    ({"ref_image": "9"}, "ref_image='9'"),
    ({"pin": "7:0.1,0.1"}, "pin='7:0.1,0.1'"),
    ({"opacity": "5"}, "opacity='5'"),
    ({"opacity": "nan"}, "opacity='nan'"),
    ({"metric": "evil"}, "metric='evil'"),
    ({"part": "99"}, "part='99'"),
    ({"ref": "<script>alert(1)</script>"}, "ref='<script>alert(1)</script>'"),
    ({"cmap": "[click](http://evil.example) ![x](http://evil.example/x.png) $x^2$"}, "cmap='[click](http://evil"),
    ({"layers": "ステージ💥"}, "layers='ステージ💥'"),
    ({"base": "\x00\n\t"}, r"base='\x00\n\t'"),
    ({"images": LONG}, f"images='{'x' * 40}…'"),
    ({"layers": "stage3," * 2000}, "repeated layer stage3"),
    ({"metric": ["dot", "angular"]}, "metric appears 2 times in the link: ignored 'dot', used the last ('angular')"),
    ({"upsample": ["nearest", "evil"]}, "upsample='evil'"),
    ({"nosuch": "1", "utm_source": "newsletter"}, "unknown parameter nosuch"),
    ({"model": "nosuch.in1k"}, "model='nosuch.in1k' from the link: unknown model; used efficientnet_lite0.in1k"),
    ({"model": ["efficientnet_lite0.in1k", "vgg16.tv_in1k"]}, "model appears 2 times in the link"),
]
ONLY = {
    "layer_hierarchy": [
        ({"layers": "stem,stage1", "channel": "31"}, "channel='31' from the link: layer stage1 has channels 0..15"),
        ({"layers": "stem,stage1", "channel": "stage7:3"}, "channel='stage7:3'"),
        ({"channel": ["stage7:3", "stage7:4"]}, "ignored 'stage7:3', used the last ('stage7:4')"),
    ],
    "compare_images": [
        ({"mode": "parts", "part": "99"}, "part='99'"),
        ({"mode": "parts", "parts": "3", "part": "3"}, "part='3'"),
        ({"mode": "evil"}, "mode='evil'"),
        ({"images": "chelsea,coffee,chelsea,nosuch"}, "images='chelsea,coffee,chelsea,nosuch'"),
        ({"layers": "stage2,stage5"}, "stage5; this page shows at most 1"),
    ],
}
# Model & layers shows one image, one layer, a channel and an opacity; the rest of a view is hidden there.
MODEL_LAYERS = [
    ({"channel": "99999"}, "channel='99999'"),
    ({"channel": "stage3:5"}, "channel='stage3:5' from the link: its layer 'stage3' is not in the view"),
    ({"layers": "stage3", "channel": "stage3:40"}, "layer stage3 has channels 0..39"),
    ({"layers": "stem,stage7"}, "stage7; this page shows at most 1"),
    ({"layers": "nosuch"}, "layers='nosuch'"),
    ({"images": "nosuch"}, "images='nosuch'"),
    ({"images": "chelsea,coffee"}, "coffee; this page shows at most 1"),
    ({"opacity": "5"}, "opacity='5'"),
    ({"opacity": ["0.30", "0.40"]}, "opacity appears 2 times in the link"),
    ({"ref": "0.5,0.5"}, "ref='0.5,0.5' from the link: this page does not show it"),
    ({"metric": "dot", "mode": "parts"}, "metric='dot', mode='parts' from the link: this page does not show them"),
    ({"layers": "<script>alert(1)</script>"}, "layers='<script>alert(1)</script>'"),
    ({"nosuch": "1", "utm_source": "newsletter"}, "unknown parameter nosuch"),
    ({"model": "nosuch.in1k"}, "model='nosuch.in1k'"),
]
CASES = [pytest.param(page, params, named, id=f"{page}-{n}")
         for page in BOUNDS
         for n, (params, named) in enumerate(MODEL_LAYERS if page == "model_layers" else BOTH + ONLY[page])]


def _open(page: str, params: dict) -> AppTest:
    """The app opened on ``page`` from a link with ``params`` (a list value repeats the parameter);
    as in a browser, the session's first run is the linked page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    if page != "home":
        at.switch_page(f"pages/{page}.py")
    at.query_params.update(params)
    at.run()
    return at


def _warnings(at: AppTest) -> list[str]:
    """The warnings' text with the page's Markdown escapes removed."""
    return [re.sub(r"\\(.)", r"\1", w.value, flags=re.DOTALL) for w in at.warning]


def _xy(xy) -> str:
    return f"{xy[0]:.4f},{xy[1]:.4f}"


def _assert_settings_shown(at: AppTest, prefix: str, query: dict) -> None:
    shown = {"metric": at.selectbox(key=f"{prefix}_metric").value, "scale": at.radio(key=f"{prefix}_scale").value,
             "cmap": at.selectbox(key=f"{prefix}_cmap").value,
             "opacity": f"{at.slider(key=f'{prefix}_opacity').value:.2f}",
             "base": at.radio(key=f"{prefix}_base").value, "upsample": at.radio(key=f"{prefix}_upsample").value}
    assert {key: query[key] for key in shown} == shown


def _assert_link_is_the_view(at: AppTest, page: str) -> None:
    """The address bar reads back without a warning and names exactly what the page shows."""
    query = dict(at.query_params)
    assert all(isinstance(v, str) for v in query.values()), query  # no repeated parameter
    assert from_query(query, ViewState(), BOUNDS[page])[1] == []
    assert "model" not in query  # the default model is left out of links
    if page == "model_layers":
        assert query["images"] == at.selectbox(key="ml_gallery").value
        assert query["layers"] == at.selectbox(key="ml_layer").value
        assert query["channel"] == f"{query['layers']}:{at.number_input(key='ml_channel').value}"
        assert query["opacity"] == f"{at.slider(key='ml_opacity').value:.2f}"
        assert set(query) == {"images", "layers", "channel", "opacity"}, query
    elif page == "layer_hierarchy":
        assert query["images"] == at.selectbox(key="lh_gallery").value
        assert query["layers"].split(",") == sorted(at.multiselect(key="lh_layers").value, key=ORDER.index)
        assert query["ref"] == _xy(at.session_state["lh_ref"]) and query["ref_image"] == "0"
        assert "pin" not in query
        _assert_settings_shown(at, "lh", query)
        channel = at.number_input(key="lh_channel").value
        shown = None if channel is None else f"{at.selectbox(key='lh_chart_layer').value}:{channel}"
        assert query.get("channel") == shown
    else:
        assert query["images"].split(",") == at.multiselect(key="cmp_images").value
        assert query["layers"] == at.selectbox(key="cmp_layer").value
        assert query["mode"] == at.radio(key="cmp_mode").value
        ref_image, ref = at.session_state["cmp_ref"]
        assert query["ref"] == _xy(ref) and int(query["ref_image"]) < len(query["images"].split(","))
        if query["mode"] == "parts":
            assert query["parts"] == str(at.slider(key="cmp_k").value)
            part = at.radio(key="cmp_part").value
            assert query.get("part") == (None if part is None else str(part))
        else:
            assert "parts" not in query and "part" not in query
            _assert_settings_shown(at, "cmp", query)


@pytest.mark.parametrize("page, params, named", CASES)
def test_a_bad_link_value_gives_one_warning_and_a_clean_address_bar(page, params, named):
    at = _open(page, params)
    assert not at.exception, [e.value for e in at.exception]
    warnings = _warnings(at)
    assert len(warnings) == 1 and named in warnings[0], warnings
    _assert_link_is_the_view(at, page)


def _notices_and_buttons(node, found: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The main column's warnings and buttons in page order: (kind, warning text or button key)."""
    kind = type(node).__name__
    if kind in ("Warning", "Button"):
        found.append((kind, node.value if kind == "Warning" else node.key))
    for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else []):
        _notices_and_buttons(child, found)
    return found


def test_a_link_s_notices_stand_together_above_one_dismiss_button():
    at = _open("layer_hierarchy", {"images": "/etc/passwd,chelsea", "layers": "stage99", "metric": "__import__"})
    assert not at.exception
    order = _notices_and_buttons(at.main, [])
    notices = [i for i, (kind, text) in enumerate(order) if kind == "Warning" and text.startswith("Shared link")]
    dismiss = [i for i, (kind, key) in enumerate(order) if key == "fl_link_notices_ok"]
    assert len(notices) == 3 and dismiss == [notices[-1] + 1], order[:6]
    assert "choose one of cosine, angular, neg_euclidean, dot" in _warnings(at)[2]
    assert not [w for w in _warnings(at) if "featurelens." in w], "no Python names in what a visitor reads"


def test_link_warnings_show_markdown_as_text():
    at = _open("layer_hierarchy", {"cmap": "[click](http://evil.example) ![x](http://evil.example/x.png)"})
    body = at.warning[0].value
    assert "\\[click\\]\\(http\\:" in body and "\\!\\[x\\]" in body


def test_a_channel_link_the_page_wrote_reopens_on_its_layer():
    """The issue's link: channel 31 typed for the stem layer's feature vector."""
    at = _open("layer_hierarchy", {"images": "chelsea", "layers": "stem,stage1,stage7", "channel": "stem:31"})
    assert not at.exception and not at.warning
    assert at.selectbox(key="lh_chart_layer").value == "stem" and at.number_input(key="lh_channel").value == 31
    assert at.query_params["channel"] == "stem:31"
    assert view_header(at, "lh_views")["channel"] == {"layer": "stem", "index": 31, "all": False}
    assert any("**Channel view**: stem · 112×112×32 shows channel 31." in c.value for c in at.caption)


def test_an_old_bare_channel_link_is_read_for_the_deepest_layer_and_rewritten():
    at = _open("layer_hierarchy", {"images": "chelsea", "layers": "stage2,stage7", "channel": "5"})
    assert not at.exception and not at.warning
    assert at.number_input(key="lh_channel").value == 5 and at.query_params["channel"] == "stage7:5"
    _assert_link_is_the_view(at, "layer_hierarchy")


def test_a_channel_of_another_layer_turns_the_channel_view_off():
    at = _open("layer_hierarchy", {"images": "chelsea", "layers": "stage2,stage7", "channel": "stage7:300"})
    at.selectbox(key="lh_chart_layer").set_value("stage2").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="lh_channel").value is None and "channel" not in at.query_params
    _assert_link_is_the_view(at, "layer_hierarchy")


@pytest.mark.parametrize("value", [99999, -1, None, 3.5])
def test_model_layers_channel_picker_survives_any_session_value(value):
    """A value left in the session (another page, another model) reaches the picker unchecked."""
    at = _run("home")
    at.session_state["ml_channel"] = value
    at.switch_page("pages/model_layers.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert 0 <= at.number_input(key="ml_channel").value < 320


def test_model_layers_channel_of_a_deep_layer_resets_on_a_shallow_one():
    at = _run("model_layers")
    at.selectbox(key="ml_layer").set_value("stage7").run()
    at.number_input(key="ml_channel").set_value(300).run()
    at.selectbox(key="ml_layer").set_value("stem").run()
    assert not at.exception, [e.value for e in at.exception]
    assert 0 <= at.number_input(key="ml_channel").value < 32


def _strongest_channel(at: AppTest) -> int:
    """The first tile's channel, as the page sent it to the channel views."""
    return view_header(at, "ml_tiles")["views"][0]["channel"]


def test_model_layers_chosen_channel_does_not_stick_when_the_image_changes():
    at = _run("model_layers")
    at.number_input(key="ml_channel").set_value(123).run()
    assert at.query_params["channel"] == "stage7:123"
    at.selectbox(key="ml_gallery").set_value("coffee").run()
    assert not at.exception, [e.value for e in at.exception]
    channel = at.number_input(key="ml_channel").value
    assert channel != 123 and channel == _strongest_channel(at)
    assert at.query_params["channel"] == f"stage7:{channel}" and at.query_params["images"] == "coffee"
    at.number_input(key="ml_channel").set_value(7).run()  # on the same image a typed channel stays
    at.slider(key="ml_opacity").set_value(0.4).run()
    assert at.number_input(key="ml_channel").value == 7


def test_model_layers_link_restores_image_layer_channel_and_opacity():
    query = {"images": "coffee", "layers": "stage3", "channel": "stage3:7", "opacity": "0.40"}
    at = _open("model_layers", query)
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.selectbox(key="ml_gallery").value == "coffee" and at.selectbox(key="ml_layer").value == "stage3"
    assert at.number_input(key="ml_channel").value == 7 and at.slider(key="ml_opacity").value == pytest.approx(0.4)
    assert "Strongest channels of stage 3 · 28×28×40" in [s.value for s in at.subheader]
    assert dict(at.query_params) == query
    _assert_link_is_the_view(at, "model_layers")
    at.selectbox(key="ml_layer").set_value("stage5").run()  # the link follows the page
    assert at.query_params["layers"] == "stage5" and at.query_params["channel"].startswith("stage5:")
    _assert_link_is_the_view(at, "model_layers")


@pytest.mark.parametrize("page", ["model_layers", "layer_hierarchy", "compare_images", "home"])
def test_every_page_s_link_names_a_model_that_is_not_the_default(page):
    """The model is in every page's link (``model=``), read by the shared sidebar: an offline
    model from a link is used at once; the default is left out."""
    at = _open(page, {"model": "efficientnet_lite0.random_init"})
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.sidebar.selectbox(key="fl_model").value == "efficientnet_lite0.random_init"
    assert at.query_params["model"] == "efficientnet_lite0.random_init"
    at.sidebar.selectbox(key="fl_model").set_value("efficientnet_lite0.in1k").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "model" not in at.query_params


def test_a_link_s_model_that_must_download_is_offered_not_downloaded(monkeypatch, tmp_path):
    """A link may name any registered model; one whose weights are not here is a choice: nothing
    is fetched until the visitor presses the button (then the usual offline sentence, no exception)."""
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", "http://127.0.0.1:9/none")
    at = _open("model_layers", {"model": "resnet18.tv_in1k", "layers": "layer3"})
    assert not at.exception, [e.value for e in at.exception]
    offers = [i.value for i in at.info if "resnet18.tv_in1k" in i.value]
    assert len(offers) == 1 and "not on this machine yet" in offers[0], [i.value for i in at.info]
    assert at.sidebar.selectbox(key="fl_model").value == "efficientnet_lite0.in1k"
    assert not at.error and not at.session_state["fl_model_failed"]  # no download was tried (it would fail here)
    assert "model" not in at.query_params  # the link names the model in use
    # the link's layer belongs to resnet18: ignored with one warning, the page shows lite0's default
    assert len(at.warning) == 1 and "layers='layer3'" in _warnings(at)[0]
    at.button(key="fl_accept_offer").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="fl_model").value == "resnet18.tv_in1k"
    assert len(at.error) == 1 and "resnet18.tv_in1k" in at.error[0].value  # offline here: the sentence, once
    assert not any("resnet18.tv_in1k" in i.value for i in at.info)


@pytest.mark.parametrize("k", [50, 1, 0, None])
def test_nmf_parts_widget_survives_any_session_value(k):
    """The issue's "also later when the user picks NMF parts": the slider meets the session's value."""
    at = _open("compare_images", {"mode": "all"})
    at.session_state["cmp_k"] = k
    at.radio(key="cmp_mode").set_value("parts").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="cmp_k").value == 4 and at.query_params["parts"] == "4"


def test_fewer_nmf_parts_drop_a_highlighted_part_they_no_longer_have():
    at = _open("compare_images", {"mode": "parts", "parts": "8", "part": "7"})
    assert not at.exception and not at.warning and at.radio(key="cmp_part").value == 7
    at.slider(key="cmp_k").set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="cmp_part").value is None and "part" not in at.query_params
    _assert_link_is_the_view(at, "compare_images")


def test_presentation_mode_from_a_link_and_a_bad_value():
    at = _open("layer_hierarchy", {"present": "1"})
    assert not at.exception and at.session_state["fl_present"] and at.query_params["present"] == "1"
    at = _open("layer_hierarchy", {"present": "<b>yes</b>"})
    assert not at.exception and not at.session_state["fl_present"] and "present" not in at.query_params
    assert [w.value for w in at.warning if "use present" in w.value and "for presentation mode" in w.value]


@pytest.mark.parametrize("page, prefix", [("few_shot", "fs"), ("feature_visualization", "fv"), ("chest_xray", "cx"),
                                          ("domain_shift", "ds"), ("model_comparison", "mc")])
def test_a_page_without_a_view_in_its_link_presents_from_it_and_names_what_it_ignores(page, prefix):
    """Pages that keep no view in their link still read ``present=1`` and the model, name the
    rest (trackers aside) in one warning that stays until dismissed, drop it from the address
    bar, and leave presentation mode by their Exit button (the sidebar is hidden)."""
    at = _open(page, {"present": "1", "layers": "stage7", "ref": "0.5,0.5", "utm_source": "mail"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["fl_present"] and set(at.query_params) == {"present"}
    assert [w for w in _warnings(at) if "ignored the parameters layers, ref: this page keeps no view" in w], _warnings(at)
    assert not at.title and not [e for e in at.expander if e.label.startswith("Lesson")]
    if any(b.key == f"{prefix}_preset_next" for b in at.button):   # pages with presets step through them
        at.button(key=f"{prefix}_preset_next").click().run()
        assert not at.exception and at.session_state[f"{prefix}_preset_note"]
    shared_link = lambda: [w for w in _warnings(at) if w.startswith("Shared link")]  # noqa: E731
    assert len(shared_link()) == 1, "the warning stays over reruns until dismissed"
    at.button(key="fl_link_notices_ok").click().run()
    assert not at.exception and not shared_link()
    at.button(key="fl_present_exit").click().run()
    assert not at.exception and not at.session_state["fl_present"] and "present" not in at.query_params
    assert at.title and at.sidebar.toggle(key="fl_present").value is False
    at.sidebar.toggle(key="fl_present").set_value(True).run()      # the sidebar's toggle, on every scenario page
    assert not at.exception and at.query_params["present"] == "1" and not at.title


def test_model_layers_in_presentation_mode_shows_the_channels_its_presets_speak_of_first():
    """Presented, Model & layers leaves out the top-5 chart and the layers table (the notes speak of
    channels) and says its first view is the first preset's."""
    at = _open("model_layers", {"present": "1"})
    assert not at.exception, [e.value for e in at.exception]
    assert not [h for h in at.subheader if "Top-5" in h.value] and not at.dataframe
    assert any("Cat, late layer (1/2)" in m.value for m in at.markdown)
    at.button(key="ml_preset_next").click().run()
    assert not at.exception and at.selectbox(key="ml_layer").value == "stage2"
    assert any("Coffee, early layer (2/2)" in m.value for m in at.markdown)
    at.button(key="fl_present_exit").click().run()
    assert [h for h in at.subheader if "Top-5" in h.value] and at.dataframe


@pytest.mark.parametrize("page", ["home", "feature_caches"])
def test_present_on_a_page_that_is_not_a_scenario_is_named_and_dropped(page):
    at = _open(page, {"present": "1"})
    assert not at.exception and "present" not in at.query_params
    assert [w for w in _warnings(at) if "ignored present=: presentation mode is for the scenario pages" in w]
