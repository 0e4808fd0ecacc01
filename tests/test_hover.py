"""What Python sends to the browser's similarity views (featurelens.similarity.hover), the
quantisation it rests on, and the figure a notebook makes of the same views — on real features."""

from __future__ import annotations

import json

import numpy as np
import pytest

import featurelens as fl
from featurelens.images import get_gallery_image
from featurelens.models import analyse_image
from featurelens.similarity import (OverlaySettings, colormap_lut, dequantize_vectors, hover_assets, hover_state,
                                    layer_views, pack_hover, pair_views, quantize_vectors, reference_cell,
                                    reference_vector, similarity_map, unpack_hover, views_figure, CELL_COLOR)

LAYERS = ("stem", "stage2", "stage3", "stage5", "stage7")


@pytest.fixture(scope="module")
def reports():
    model = fl.load_model("efficientnet_lite0.in1k")
    return {name: analyse_image(model, get_gallery_image(name).load()) for name in ("chelsea", "coffee")}


def _cos_error(feats_hwc: np.ndarray, bits: int, points) -> float:
    """Largest |Δcosine| between the float32 map and the map of the dequantised features."""
    codes, scale = quantize_vectors(feats_hwc, bits)
    approx_hwc = dequantize_vectors(codes, scale)
    worst = 0.0
    for xy in points:
        cell = reference_cell(xy, feats_hwc.shape[:2])
        exact = similarity_map(feats_hwc, reference_vector(feats_hwc, cell), "cosine")
        approx = similarity_map(approx_hwc, reference_vector(approx_hwc, cell), "cosine")
        worst = max(worst, float(np.abs(exact - approx).max()))
    return worst


@pytest.mark.parametrize("layer", LAYERS)
def test_8_bit_features_keep_cosine_within_0_02_and_16_bit_within_1e_3(reports, layer):
    points = np.random.default_rng(0).uniform(0, 1, (12, 2))
    feats_hwc = reports["chelsea"].feats_hwc[layer]
    assert _cos_error(feats_hwc, 8, points) <= 0.02
    assert _cos_error(feats_hwc, 16, points) <= 1e-3


def test_quantisation_keeps_zero_vectors_zero_and_refuses_other_bits():
    codes, scale = quantize_vectors(np.zeros((2, 2, 3), np.float32))
    assert not codes.any() and not scale.any()
    with pytest.raises(ValueError, match="8 or 16"):
        quantize_vectors(np.ones((1, 3)), bits=4)


def test_assets_decode_back_to_the_quantised_features(reports):
    report = reports["chelsea"]
    assets = hover_assets([report.display_hwc_u8], [{l: report.feats_hwc[l] for l in LAYERS}], bits=16)
    header, blob = unpack_hover(pack_hover(assets, {"mode": "layers"}))
    assert header["assets"] == json.loads(json.dumps(assets.meta))
    for grid in header["assets"]["grids"]:
        (co, cl), (so, sl) = grid["codes"], grid["scales"]
        assert co % 4 == 0 and so % 4 == 0  # the browser reads them in place
        h, w, c = grid["grid"]
        codes = np.frombuffer(blob[co:co + cl], "<i2").reshape(h, w, c)
        scale = np.frombuffer(blob[so:so + sl], "<f4").reshape(h, w)
        expected_codes, expected_scale = quantize_vectors(report.feats_hwc[grid["layer"]], 16)
        np.testing.assert_array_equal(codes, expected_codes)
        np.testing.assert_array_equal(scale, expected_scale)
        assert grid["signed"] == bool(report.feats_hwc[grid["layer"]].min() < 0)
    photo = header["assets"]["photos"][0]
    assert (photo["height"], photo["width"]) == report.display_hwc_u8.shape[:2]
    assert blob[photo["at"][0]:photo["at"][0] + 2] == b"\xff\xd8"  # a JPEG


def test_the_same_images_and_layers_give_the_same_bytes_and_key(reports):
    """Identical payloads are sent by Streamlit as a short reference: a click that changes
    nothing in the state must not change a byte."""
    report = reports["coffee"]

    def packed(ref):
        assets = hover_assets([report.display_hwc_u8], [{"stage5": report.feats_hwc["stage5"]}])
        return assets.key, pack_hover(assets, hover_state(assets, [(0, "stage5", "s5")], OverlaySettings(),
                                                         mode="layers", ref=(0, ref)))

    assert packed((0.5, 0.5)) == packed((0.5, 0.5))
    assert packed((0.5, 0.5))[1] != packed((0.2, 0.5))[1]


def test_state_says_what_the_browser_draws(reports):
    report = reports["chelsea"]
    assets = hover_assets([report.display_hwc_u8, reports["coffee"].display_hwc_u8],
                          [{"stage7": report.feats_hwc["stage7"]}, {"stage7": reports["coffee"].feats_hwc["stage7"]}])
    settings = OverlaySettings(metric="angular", scale="fixed", cmap="viridis", opacity=0.3)
    state = hover_state(assets, [(0, "stage7", "cat"), (1, "stage7", "cup")], settings, mode="images",
                        ref=(1, (1.5, -0.2)), pin=(0, (0.1, 0.2)))
    assert state["value_range"] == [0.0, 1.0] and state["lut"][:3] == colormap_lut("viridis")[0].tolist()
    assert state["ref"] == {"image": 1, "xy": [1.0, 0.0]}  # clipped into the image
    assert [v["grid"] for v in state["views"]] == [0, 1] and state["opacity"] == 0.3
    with pytest.raises(KeyError, match="stage2"):
        hover_state(assets, [(0, "stage2", "x")], settings, mode="images", ref=(0, (0.5, 0.5)))
    with pytest.raises(ValueError, match="two views"):
        hover_state(assets, [(0, "stage7", "x")], settings, mode="pair", ref=(0, (0.5, 0.5)))
    with pytest.raises(ValueError, match="hover mode"):
        hover_state(assets, [(0, "stage7", "x")], settings, mode="grid", ref=(0, (0.5, 0.5)))


def test_pair_view_scales_b_to_its_own_values_and_marks_its_best_match(reports):
    """Issue 9: the reference cell (1.0) lies in A; B's colours span B's own values."""
    a, b = reports["chelsea"], reports["coffee"]
    _, right = pair_views(a.feats_hwc["stage5"], b.feats_hwc["stage5"], a.display_hwc_u8, b.display_hwc_u8, (0.37, 0.35))
    assert right.value_range == pytest.approx((float(right.sim_hw.min()), float(right.sim_hw.max())))
    assert right.value_range[1] < 0.99
    best = np.unravel_index(int(np.argmax(right.sim_hw)), right.sim_hw.shape)
    h, w = right.image_hwc_u8.shape[:2]
    top, left = int(best[0] * h / 14), int(best[1] * w / 14)
    assert (right.image_hwc_u8[top, left] == CELL_COLOR).all()


def test_figure_holds_every_view_its_labels_and_a_colour_bar(reports):
    report = reports["chelsea"]
    views = layer_views({l: report.feats_hwc[l] for l in ("stage2", "stage7")}, report.display_hwc_u8, (0.4, 0.4))
    figure = views_figure([v.image_hwc_u8 for v in views.values()], list(views), "efficientnet_lite0 · cosine",
                          per_row=2, colorbar=("magma", -1.0, 1.0))
    h, w = report.display_hwc_u8.shape[:2]
    assert figure.shape[1] >= 2 * w and figure.shape[0] > h
    np.testing.assert_array_equal(figure[12:12 + h, 12:12 + w], views["stage2"].image_hwc_u8)
    assert (figure == colormap_lut("magma")[-1]).all(axis=-1).any()  # the bar's top colour
    with pytest.raises(ValueError, match="one label per view"):
        views_figure([report.display_hwc_u8], [], "x")
