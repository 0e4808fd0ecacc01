"""Shareable views: query parameters round-trip, and bad links degrade with a warning."""

from __future__ import annotations

import pytest

from featurelens.similarity import OverlaySettings
from featurelens.similarity import ViewState, from_query, to_query

FULL = ViewState(images=("chelsea", "coffee"), layers=("stage2", "stage7"), ref=(0.1234, 0.9),
                 ref_image=1, pin=(0, (0.5, 0.25)),
                 settings=OverlaySettings(metric="angular", scale="fixed", cmap="viridis", opacity=0.35,
                                          base="color", upsample="bilinear"),
                 channel=17, parts=5, part=2, mode="parts")


def test_round_trip_restores_every_field():
    state, warnings = from_query(to_query(FULL), ViewState(), valid_images={"chelsea", "coffee"},
                                 valid_layers={"stage2", "stage7"})
    assert state == FULL and warnings == []


def test_streamlit_style_list_values_are_read():
    query = {k: [v] for k, v in to_query(FULL).items()}
    assert from_query(query, ViewState())[0] == FULL


@pytest.mark.parametrize("params, field, expected_warning", [
    ({"ref": "2,0.5"}, "ref", "outside"),
    ({"ref": "abc"}, "ref", "ref='abc'"),
    ({"images": "chelsea,nosuch"}, "images", "unknown image nosuch"),
    ({"layers": "stage9"}, "layers", "unknown layer stage9"),
    ({"metric": "manhattan"}, "settings", "metric"),
    ({"opacity": "7"}, "settings", "opacity"),
    ({"ref_image": "5"}, "ref_image", "ref_image=5"),
    ({"pin": "9:0.1,0.1"}, "pin", "pin"),
    ({"channel": "x"}, "channel", "channel"),
])
def test_bad_values_keep_defaults_and_say_so(params, field, expected_warning):
    defaults = ViewState(images=("chelsea",), layers=("stage2",))
    state, warnings = from_query(params, defaults, valid_images={"chelsea"}, valid_layers={"stage2"})
    assert any(expected_warning in w for w in warnings), warnings
    if field == "images":
        assert state.images == ("chelsea",)
    else:
        assert getattr(state, field) == getattr(defaults, field)


def test_defaults_are_left_out_of_the_link():
    query = to_query(ViewState())
    assert "pin" not in query and "channel" not in query and "parts" not in query


def test_links_with_more_images_or_layers_than_a_page_shows_keep_the_first():
    query = {"images": "chelsea,coffee,astronaut", "layers": "stem,stage1,stage2"}
    state, warnings = from_query(query, ViewState(), max_images=2, max_layers=1)
    assert state.images == ("chelsea", "coffee") and state.layers == ("stem",)
    assert any("first 2 of the link's 3 images (astronaut left out)" in w for w in warnings), warnings
    assert any("first 1 of the link's 3 layers" in w for w in warnings), warnings
