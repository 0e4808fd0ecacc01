"""Shareable views: query parameters round-trip, and bad links degrade with one warning per
ignored value, checked against the page's real ranges (``Bounds``)."""

from __future__ import annotations

import numpy as np
import pytest

from featurelens.similarity import OverlaySettings
from featurelens.similarity import ViewState, from_query, to_query
from featurelens.similarity.viewstate import Bounds, checked_int

FULL = ViewState(images=("chelsea", "coffee"), layers=("stage2", "stage7"), ref=(0.1234, 0.9),
                 ref_image=1, pin=(0, (0.5, 0.25)),
                 settings=OverlaySettings(metric="angular", scale="fixed", cmap="viridis", opacity=0.35,
                                          base="color", upsample="bilinear"),
                 channel=("stage7", 17), parts=5, part=2, mode="parts")
CHANNELS = {"stem": 32, "stage1": 16, "stage2": 24, "stage3": 40, "stage7": 320}  # efficientnet_lite0's, in order
GALLERY = {"chelsea", "coffee", "astronaut"}
# The two overlay pages' bounds, as the pages build them.
LAYER_HIERARCHY = Bounds(images=GALLERY, channels=CHANNELS, max_images=1, max_layers=5,
                         hidden=("mode", "parts", "part"))
COMPARE = Bounds(images=GALLERY, channels=CHANNELS, min_images=2, max_images=8, max_layers=1, parts=(2, 10),
                 modes=("all", "pair", "parts"), hidden=("pin", "channel"))
LH_DEFAULTS = ViewState(images=("chelsea",), layers=("stage2", "stage7"))
CMP_DEFAULTS = ViewState(images=("chelsea", "coffee", "astronaut"), layers=("stage3",), mode="all", parts=4)


def test_round_trip_restores_every_field():
    bounds = Bounds(images=GALLERY, channels=CHANNELS, parts=(2, 10), modes=("all", "parts"))
    state, warnings = from_query(to_query(FULL), ViewState(), bounds)
    assert state == FULL and warnings == []


def test_streamlit_style_list_values_are_read():
    query = {k: [v] for k, v in to_query(FULL).items()}
    assert from_query(query, ViewState()) == (FULL, [])


def test_a_channel_is_written_with_its_layer():
    assert to_query(FULL)["channel"] == "stage7:17"


@pytest.mark.parametrize("params, field, expected_warning", [
    ({"ref": "2,0.5"}, "ref", "x and y must be in [0, 1]"),
    ({"ref": "abc"}, "ref", "ref='abc'"),
    ({"ref": "0.1,0.2,0.3"}, "ref", "expected x,y"),
    ({"ref": "inf,0.5"}, "ref", "expected a number"),
    ({"images": "nosuch"}, "images", "no known image"),
    ({"layers": "stage9"}, "layers", "no known layer"),
    ({"metric": "manhattan"}, "settings", "unknown similarity metric 'manhattan'"),
    ({"opacity": "7"}, "settings", "opacity must be in [0, 1]"),
    ({"opacity": "nan"}, "settings", "opacity='nan'"),
    ({"ref_image": "5"}, "ref_image", "ref_image='5' from the link: the view has 1 image"),
    ({"ref_image": "-1"}, "ref_image", "ref_image='-1'"),
    ({"pin": "9:0.1,0.1"}, "pin", "pin='9:0.1,0.1' from the link: the view has 1 image"),
    ({"pin": "0:0.1"}, "pin", "expected x,y"),
    ({"pin": "0.1,0.1"}, "pin", "expected image:x,y"),
    ({"channel": "x"}, "channel", "expected a whole number"),
    ({"channel": "１２"}, "channel", "channel='１２'"),  # full-width digits: not a link this app writes
    ({"channel": "9" * 5000}, "channel", "expected a whole number"),
    ({"channel": "99999"}, "channel", "layer stage7 has channels 0..319"),
    ({"channel": "-1"}, "channel", "channel='-1' from the link: layer stage7 has channels 0..319"),
    ({"channel": "stage2:24"}, "channel", "layer stage2 has channels 0..23"),
    ({"channel": "stem:3"}, "channel", "its layer 'stem' is not in the view (stage2, stage7)"),
    ({"channel": "stage7:"}, "channel", "expected a whole number"),
])
def test_bad_values_keep_defaults_and_say_so_once(params, field, expected_warning):
    state, warnings = from_query(params, LH_DEFAULTS, LAYER_HIERARCHY)
    assert len(warnings) == 1 and expected_warning in warnings[0], warnings
    assert getattr(state, field) == getattr(LH_DEFAULTS, field)


@pytest.mark.parametrize("params, expected", [
    ({"channel": "stage7:319"}, ("stage7", 319)),
    ({"channel": "stage2:0"}, ("stage2", 0)),
    ({"channel": "31"}, ("stage7", 31)),  # an old link: a bare channel of the deepest layer
    ({"layers": "stem,stage1", "channel": "stem:31"}, ("stem", 31)),
])
def test_valid_channels_are_kept_with_their_layer(params, expected):
    state, warnings = from_query(params, LH_DEFAULTS, LAYER_HIERARCHY)
    assert state.channel == expected and warnings == []


def test_an_old_bare_channel_that_the_deepest_layer_lacks_is_refused():
    """The issue's link: channel 31 typed for stem, written without its layer."""
    state, warnings = from_query({"layers": "stem,stage1", "channel": "31"}, LH_DEFAULTS, LAYER_HIERARCHY)
    assert state.channel is None and state.layers == ("stem", "stage1")
    assert warnings == ["ignored channel='31' from the link: layer stage1 has channels 0..15"]


@pytest.mark.parametrize("params, bounds, defaults, kept, expected_warning", [
    ({"layers": "stage2,stage2,stage2"}, LAYER_HIERARCHY, LH_DEFAULTS, {"layers": ("stage2",)},
     "ignored the repeated layer stage2 in layers='stage2,stage2,stage2'"),
    ({"layers": "stage7,stage2,stage9"}, LAYER_HIERARCHY, LH_DEFAULTS, {"layers": ("stage2", "stage7")},
     "ignored unknown layer stage9 in layers='stage7,stage2,stage9'"),
    ({"images": "chelsea,chelsea"}, COMPARE, CMP_DEFAULTS, {"images": CMP_DEFAULTS.images},
     "ignored images='chelsea,chelsea' from the link: only 1 usable, this page needs at least 2 "
     "(the repeated image chelsea)"),
    ({"images": "chelsea,coffee,chelsea"}, COMPARE, CMP_DEFAULTS, {"images": ("chelsea", "coffee")},
     "ignored the repeated image chelsea"),
    ({"mode": "parts", "parts": "50"}, COMPARE, CMP_DEFAULTS, {"mode": "parts", "parts": 4},
     "ignored parts='50' from the link: this page shows 2 to 10 parts"),
    ({"mode": "parts", "parts": "1"}, COMPARE, CMP_DEFAULTS, {"mode": "parts", "parts": 4},
     "ignored parts='1' from the link: this page shows 2 to 10 parts"),
    ({"parts": "3", "part": "3"}, COMPARE, CMP_DEFAULTS, {"parts": 3, "part": None},
     "ignored part='3' from the link: the view has 3 parts (0..2)"),
    ({"part": "99"}, COMPARE, CMP_DEFAULTS, {"part": None}, "ignored part='99'"),
    ({"mode": "evil"}, COMPARE, CMP_DEFAULTS, {"mode": "all"}, "this page's views are all, pair, parts"),
    ({"mode": "parts", "parts": "50", "part": "3"}, LAYER_HIERARCHY, LH_DEFAULTS, {"parts": 0, "mode": ""},
     "ignored mode='parts', parts='50', part='3' from the link: this page does not show them"),
    ({"pin": "0:0.1,0.1"}, COMPARE, CMP_DEFAULTS, {"pin": None},
     "ignored pin='0:0.1,0.1' from the link: this page does not show it"),
    ({"channel": ["3", "5"]}, LAYER_HIERARCHY, LH_DEFAULTS, {"channel": ("stage7", 5)},
     "channel appears 2 times in the link: ignored '3', used the last ('5')"),
    ({"channel": ["3", "stem:1"]}, LAYER_HIERARCHY, LH_DEFAULTS, {"channel": None},
     "channel appears 2 times in the link: ignored '3', used the last ('stem:1'); ignored channel='stem:1'"),
    ({"foo": "1", "utm_source": "x", "fbclid": "y"}, LAYER_HIERARCHY, LH_DEFAULTS, {},
     "ignored the unknown parameter foo (this page reads images, layers, ref, ref_image, pin, metric, scale, "
     "cmap, opacity, base, upsample, channel)"),
])
def test_link_values_outside_the_page_s_ranges_give_one_warning(params, bounds, defaults, kept, expected_warning):
    state, warnings = from_query(params, defaults, bounds)
    assert len(warnings) == 1 and expected_warning in warnings[0], warnings
    assert {field: getattr(state, field) for field in kept} == kept


def test_each_bad_parameter_gets_its_own_warning():
    params = {"images": "nosuch", "ref": "2,2", "metric": "evil", "channel": "-1", "ref_image": "9"}
    state, warnings = from_query(params, LH_DEFAULTS, LAYER_HIERARCHY)
    assert state == LH_DEFAULTS
    assert [w.split("=")[0] for w in warnings] == ["ignored images", "ignored ref", "ignored ref_image",
                                                   "ignored metric", "ignored channel"]


def test_long_values_are_cut_in_warnings():
    state, warnings = from_query({"images": "x" * 100_000}, LH_DEFAULTS, LAYER_HIERARCHY)
    assert state == LH_DEFAULTS and len(warnings) == 1 and len(warnings[0]) < 300
    assert "'" + "x" * 40 + "…'" in warnings[0]


def test_defaults_are_left_out_of_the_link():
    query = to_query(ViewState())
    assert "pin" not in query and "channel" not in query and "parts" not in query


def test_links_with_more_images_or_layers_than_a_page_shows_keep_the_first():
    query = {"images": "chelsea,coffee,astronaut", "layers": "stem,stage1,stage2"}
    state, warnings = from_query(query, ViewState(), Bounds(max_images=2, max_layers=1))
    assert state.images == ("chelsea", "coffee") and state.layers == ("stem",)
    assert warnings == ["ignored images after the first 2 (astronaut; this page shows at most 2) in "
                        "images='chelsea,coffee,astronaut'",
                        "ignored layers after the first 1 (stage1, stage2; this page shows at most 1) in "
                        "layers='stem,stage1,stage2'"]


def test_layers_come_back_in_the_model_s_order():
    state, warnings = from_query({"layers": "stage7,stem,stage2"}, LH_DEFAULTS, LAYER_HIERARCHY)
    assert state.layers == ("stem", "stage2", "stage7") and warnings == []


@pytest.mark.parametrize("value, lo, hi, expected", [
    (3, 0, 15, 3), (0, 0, 15, 0), (15, 0, 15, 15), (np.int64(4), 2, 10, 4),
    (16, 0, 15, None), (-1, 0, 15, None), (None, 0, 15, None), ("3", 0, 15, None), (3.0, 0, 15, None),
    (True, 0, 1, None),
])
def test_checked_int_accepts_only_whole_numbers_in_range(value, lo, hi, expected):
    assert checked_int(value, lo, hi) == expected


MODELS = ("efficientnet_lite0.in1k", "resnet18.tv_in1k")


@pytest.mark.parametrize("params, name, warning", [
    ({}, "efficientnet_lite0.in1k", None),
    ({"model": ""}, "efficientnet_lite0.in1k", None),
    ({"model": "resnet18.tv_in1k"}, "resnet18.tv_in1k", None),
    ({"model": ["resnet18.tv_in1k"]}, "resnet18.tv_in1k", None),
    ({"model": "resnet18"}, "efficientnet_lite0.in1k", "ignored model='resnet18' from the link: unknown model"),
    ({"model": "<b>x</b>" * 20}, "efficientnet_lite0.in1k", "ignored model='<b>x</b><b>x</b><b>x</b><b>x</b><b>x</b>…'"),
    ({"model": ["efficientnet_lite0.in1k", "resnet18.tv_in1k"]}, "resnet18.tv_in1k",
     "model appears 2 times in the link: ignored 'efficientnet_lite0.in1k', used the last ('resnet18.tv_in1k')"),
    ({"model": ["resnet18.tv_in1k", "nosuch"]}, "efficientnet_lite0.in1k", "; ignored model='nosuch'"),
])
def test_a_link_s_model_is_a_registered_one_or_the_default_with_one_warning(params, name, warning):
    from featurelens.similarity import model_from_query

    chosen, warnings = model_from_query(params, MODELS, "efficientnet_lite0.in1k")
    assert chosen == name
    assert (warnings == []) if warning is None else (len(warnings) == 1 and warning in warnings[0]), warnings


def test_the_app_s_parameters_are_neither_a_page_s_view_nor_unknown():
    """``model`` (and the other app-level keys) belong to the shell: a page's reader passes over them."""
    from featurelens.similarity import APP_KEYS

    assert "model" in APP_KEYS
    state, warnings = from_query({"model": "anything", "layers": "stage3"}, LH_DEFAULTS, LAYER_HIERARCHY)
    assert warnings == [] and state.layers == ("stage3",)
    assert not set(to_query(FULL)) & set(APP_KEYS)


def test_a_page_leaves_what_it_does_not_show_out_of_its_link():
    hidden = ("ref", "ref_image", "pin", "metric", "scale", "cmap", "base", "upsample", "mode", "parts", "part")
    query = to_query(FULL, omit=hidden)
    assert query == {"images": "chelsea,coffee", "layers": "stage2,stage7", "opacity": "0.35", "channel": "stage7:17"}
    assert from_query(query, ViewState(), Bounds(channels=CHANNELS, hidden=hidden)) == (
        ViewState(images=FULL.images, layers=FULL.layers, settings=OverlaySettings(opacity=0.35), channel=FULL.channel),
        [])
