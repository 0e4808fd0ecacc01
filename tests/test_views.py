"""Overlay views on real features: one reference across layers and across images."""

from __future__ import annotations

import numpy as np
import pytest

from featurelens.models import analyse_image
from featurelens.similarity import OverlaySettings, grid_view, image_views, layer_views, pair_views, reference_cell

LAYERS = ("stage2", "stage3", "stage5", "stage7")


@pytest.fixture(scope="module")
def cat(lite0, chelsea_hwc_u8):
    return analyse_image(lite0, chelsea_hwc_u8)


@pytest.fixture(scope="module")
def coffee(lite0, coffee_hwc_u8):
    return analyse_image(lite0, coffee_hwc_u8)


def test_one_click_selects_the_same_place_in_every_layer(cat):
    eye = (0.37, 0.35)
    views = layer_views({l: cat.feats_hwc[l] for l in LAYERS}, cat.display_hwc_u8, eye)
    assert [v.ref_cell for v in views.values()] == [(19, 20), (9, 10), (4, 5), (2, 2)]
    for layer, view in views.items():
        assert view.sim_hw.shape == cat.feats_hwc[layer].shape[:2]
        assert view.sim_hw[view.ref_cell] == pytest.approx(1.0, abs=1e-5)
        assert view.sim_hw.max() == pytest.approx(1.0, abs=1e-5)
        assert view.image_hwc_u8.shape == cat.display_hwc_u8.shape


def test_overlay_is_brightest_around_the_reference(cat):
    """The rendered picture changes where the reference moves: the colour under the
    reference cell is the colormap's top colour."""
    views = layer_views({"stage7": cat.feats_hwc["stage7"]}, cat.display_hwc_u8, (0.1, 0.9),
                        OverlaySettings(opacity=1.0))
    view = views["stage7"]
    h, w = view.image_hwc_u8.shape[:2]
    row, col = view.ref_cell
    assert (row, col) == (6, 0)
    y, x = int((row + 0.25) * h / 7), int((col + 0.75) * w / 7)  # inside the cell, off the marker ring
    from featurelens.similarity import colormap_lut
    assert view.image_hwc_u8[y, x].tolist() == colormap_lut("magma")[255].tolist()


def test_late_layer_eye_matches_other_eye_more_than_background(cat):
    """ISO's finding on a real photo: at a late layer the cat's left eye is more similar to
    the right eye than to the plain background."""
    view = layer_views({"stage5": cat.feats_hwc["stage5"]}, cat.display_hwc_u8, (0.37, 0.35))["stage5"]
    right_eye = view.sim_hw[reference_cell((0.66, 0.33), (14, 14))]
    background = view.sim_hw[reference_cell((0.05, 0.05), (14, 14))]
    assert right_eye > background + 0.1


def test_fixed_scale_uses_metric_range_and_is_comparable(cat):
    feats = {l: cat.feats_hwc[l] for l in ("stage2", "stage7")}
    fixed = layer_views(feats, cat.display_hwc_u8, (0.5, 0.5), OverlaySettings(scale="fixed"))
    assert {v.value_range for v in fixed.values()} == {(-1.0, 1.0)}
    adaptive = layer_views(feats, cat.display_hwc_u8, (0.5, 0.5))
    assert adaptive["stage2"].value_range != adaptive["stage7"].value_range
    dot = layer_views(feats, cat.display_hwc_u8, (0.5, 0.5), OverlaySettings(metric="dot", scale="fixed"))
    assert len({v.value_range for v in dot.values()}) == 1  # unbounded: one range shared by all views


def test_channel_view_replaces_only_that_layer(cat):
    feats = {l: cat.feats_hwc[l] for l in ("stage3", "stage7")}
    views = layer_views(feats, cat.display_hwc_u8, (0.5, 0.5), channel=("stage7", 12))
    np.testing.assert_array_equal(views["stage7"].sim_hw, cat.feats_hwc["stage7"][..., 12])
    assert "channel 12" in views["stage7"].note
    assert views["stage3"].sim_hw.max() == pytest.approx(1.0, abs=1e-5)


def test_region_reference_averages_the_mask(cat):
    feats_hwc = cat.feats_hwc["stage5"]
    mask_hw = np.zeros((280, 280), np.float32)  # any resolution; 20 px per cell of the 14×14 grid
    mask_hw[:140, :140] = 1.0  # top-left quarter
    view = layer_views({"stage5": feats_hwc}, cat.display_hwc_u8, (0.5, 0.5), ref_mask_hw=mask_hw)["stage5"]
    expected_ref = feats_hwc[:7, :7].reshape(-1, feats_hwc.shape[-1]).mean(0)
    cos = (feats_hwc @ expected_ref) / (np.linalg.norm(feats_hwc, axis=-1) * np.linalg.norm(expected_ref))
    np.testing.assert_allclose(view.sim_hw, cos, atol=1e-4)


def test_image_views_share_one_reference_across_images(cat, coffee):
    feats = [cat.feats_hwc["stage5"], coffee.feats_hwc["stage5"]]
    views = image_views(feats, [cat.display_hwc_u8, coffee.display_hwc_u8], 0, (0.37, 0.35))
    assert views[0].sim_hw.max() == pytest.approx(1.0, abs=1e-5)
    assert views[1].sim_hw.max() < 0.9  # no cat eye in the coffee photo
    assert views[0].value_range == views[1].value_range  # one adaptive range for the whole row
    assert views[0].ref_cell == (4, 5) and views[1].ref_cell is None
    swapped = image_views(feats, [cat.display_hwc_u8, coffee.display_hwc_u8], 1, (0.5, 0.2))
    assert swapped[1].sim_hw.max() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexError, match="reference image 2"):
        image_views(feats, [cat.display_hwc_u8, coffee.display_hwc_u8], 2, (0.5, 0.5))


def test_pair_view_outlines_the_chosen_square(cat, coffee):
    left, right = pair_views(cat.feats_hwc["stage7"], coffee.feats_hwc["stage7"], cat.display_hwc_u8,
                             coffee.display_hwc_u8, (0.05, 0.05))
    assert left[0, 0].tolist() == [255, 214, 10]  # cell (0, 0) outlined in yellow
    assert right.image_hwc_u8.shape == coffee.display_hwc_u8.shape
    grid = grid_view(np.zeros((70, 70, 3), np.uint8), (7, 7))
    assert grid[10, 5].tolist() != [0, 0, 0] and grid[5, 5].tolist() == [0, 0, 0]


def test_bad_settings_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        OverlaySettings(cmap="rainbow")
    with pytest.raises(KeyError, match="cosine"):
        OverlaySettings(metric="manhattan")
    with pytest.raises(ValueError, match="opacity"):
        OverlaySettings(opacity=2.0)


def test_pinned_vector_comparison_matches_the_similarity_map(cat):
    from featurelens.similarity import compare_vectors

    feats_hwc = cat.feats_hwc["stage7"]
    eye, background = (0.37, 0.35), (0.05, 0.05)
    vectors = compare_vectors(feats_hwc, eye, background)
    view = layer_views({"stage7": feats_hwc}, cat.display_hwc_u8, eye)["stage7"]
    assert vectors.cosine == pytest.approx(float(view.sim_hw[reference_cell(background, (7, 7))]), abs=1e-5)
    assert len(vectors.rows) == 2 * feats_hwc.shape[-1]
    assert compare_vectors(feats_hwc, eye).cosine is None


@pytest.mark.parametrize("ref, top_k, keep, expected", [
    ([0.1, -3.0, 2.0, 0.0, 2.0], None, None, [1, 2, 4, 0, 3]),  # all, largest |value| first, ties by channel
    ([0.1, -3.0, 2.0, 0.0, 2.0], 2, None, [1, 2]),
    ([0.1, -3.0, 2.0, 0.0, 2.0], 2, 0, [1, 2, 0]),  # the chosen channel is kept, at its rank
    ([0.1, -3.0, 2.0, 0.0, 2.0], 2, 2, [1, 2]),  # already shown: not twice
    ([0.1, -3.0, 2.0, 0.0, 2.0], 9, 3, [1, 2, 4, 0, 3]),  # more than there are: all
    ([0.1, -3.0, 2.0, 0.0, 2.0], 2, 99, [1, 2]),  # a channel the vector lacks is ignored
    ([0.1, -3.0, 2.0, 0.0, 2.0], 2, -1, [1, 2]),
])
def test_chart_channels_are_the_largest_first_with_the_chosen_one(ref, top_k, keep, expected):
    from featurelens.similarity import chart_channels

    assert chart_channels(np.array(ref, np.float32), top_k=top_k, keep=keep).tolist() == expected


@pytest.mark.parametrize("ref, top_k, match", [(np.zeros((2, 3)), None, r"one feature vector \(C,\)"),
                                               (np.zeros(3), -1, "top_k must be None")])
def test_chart_channels_refuses_what_it_cannot_chart(ref, top_k, match):
    from featurelens.similarity import chart_channels

    with pytest.raises(ValueError, match=match):
        chart_channels(ref, top_k=top_k)


def test_chart_channels_of_a_real_vector_lead_with_its_strongest_channels(cat):
    from featurelens.similarity import chart_channels, compare_vectors

    ref_c = compare_vectors(cat.feats_hwc["stage7"], (0.37, 0.35)).ref_c
    top = chart_channels(ref_c, top_k=32)
    assert top.shape == (32,) and len(set(top.tolist())) == 32
    assert np.abs(ref_c[top]).min() >= np.sort(np.abs(ref_c))[-32]
    assert np.all(np.diff(np.abs(ref_c[top])) <= 0)
