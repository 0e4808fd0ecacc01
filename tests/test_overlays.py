"""featurelens.overlays on real photos and real similarity maps (EfficientNet-Lite0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featurelens.similarity import (
    COLOR_SCALES, COLORMAPS, MARKER_COLORS, PIN_RING_SCALE, UPSAMPLE_MODES, base_image, colorbar_image,
    colormap_lut, colormap_stops, normalize_map, render_channel, render_overlay, scale_range, shared_range,
    upsample_map,
)
from featurelens.similarity import (
    cell_center_px, channel_map, get_metric, pixel_to_cell, reference_vector, similarity_map,
)



@pytest.fixture(scope="session")
def real(real) -> dict:
    """The shared real features plus cosine maps ``{grid: (3, g, g)}`` for the reference at
    pixel (120, 150) of chelsea."""
    sims = {g: similarity_map(f, reference_vector(f[0], pixel_to_cell((120, 150), (224, 224), (g, g))))
            for g, f in real["feats"].items()}
    return {**real, "sims": sims}


def _colours(image_hwc_u8: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in image_hwc_u8.reshape(-1, 3)}


@pytest.mark.parametrize("upsample", list(UPSAMPLE_MODES))
@pytest.mark.parametrize("base", ["gray", "color"])
@pytest.mark.parametrize("grid", [56, 28, 14, 7])
def test_render_overlay_returns_an_image_of_the_photo_size(real, upsample, base, grid):
    out = render_overlay(real["images"]["coffee"], real["sims"][grid][1], upsample=upsample, base=base,
                         marker_xy=(120, 150), pin_xy=(10, 220))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out.flags.c_contiguous


@pytest.mark.parametrize("cmap", list(COLORMAPS))
def test_every_colormap_spans_its_lut_with_the_adaptive_scale(real, cmap):
    out = render_overlay(real["images"]["chelsea"], real["sims"][14][0], cmap=cmap, opacity=1.0)
    lut = colormap_lut(cmap)
    colours = _colours(out)
    assert tuple(lut[0]) in colours and tuple(lut[255]) in colours
    assert colours <= {tuple(c) for c in lut}


@pytest.mark.parametrize("key", list(COLOR_SCALES))
def test_every_colour_scale_maps_a_real_map_into_unit_range(real, key):
    sim_hw = real["sims"][28][2]
    value_range = get_metric("cosine").value_range if COLOR_SCALES[key].needs_value_range else None
    norm_hw = normalize_map(sim_hw, key, value_range)
    assert norm_hw.shape == sim_hw.shape and norm_hw.dtype == np.float32
    assert 0.0 <= norm_hw.min() and norm_hw.max() <= 1.0


def test_adaptive_scale_uses_the_full_colormap_and_fixed_scale_does_not(real):
    sim_hw = real["sims"][7][1]  # another image: cosine stays well inside (-1, 1)
    adaptive_hw = normalize_map(sim_hw)
    assert adaptive_hw.min() == 0.0 and adaptive_hw.max() == 1.0
    fixed_hw = normalize_map(sim_hw, "fixed", (-1.0, 1.0))
    assert fixed_hw.min() > 0.0 and fixed_hw.max() < 1.0
    np.testing.assert_allclose(fixed_hw, (sim_hw + 1) / 2, atol=1e-6)


def test_fixed_scale_gives_the_same_colour_to_the_same_value_across_images_and_layers(real):
    coarse_hw = real["sims"][7][0].copy()    # chelsea, 7x7
    fine_hw = real["sims"][28][1].copy()     # coffee, 28x28
    coarse_hw[0, 0] = fine_hw[0, 0] = 0.3    # one shared value in two different maps
    kwargs = dict(opacity=1.0, base="color")
    fixed_a = render_overlay(real["images"]["chelsea"], coarse_hw, scale="fixed", value_range=(-1, 1), **kwargs)
    fixed_b = render_overlay(real["images"]["coffee"], fine_hw, scale="fixed", value_range=(-1, 1), **kwargs)
    assert (fixed_a[0, 0] == fixed_b[0, 0]).all()
    adaptive_a = render_overlay(real["images"]["chelsea"], coarse_hw, **kwargs)
    adaptive_b = render_overlay(real["images"]["coffee"], fine_hw, **kwargs)
    assert not (adaptive_a[0, 0] == adaptive_b[0, 0]).all()  # adaptive colours are not comparable


def test_shared_adaptive_range_equals_a_fixed_scale_on_that_range(real):
    maps = list(real["sims"][14])
    lo, hi = shared_range(maps)
    assert lo == min(float(m.min()) for m in maps) and hi == max(float(m.max()) for m in maps)
    for sim_hw in maps:
        np.testing.assert_array_equal(normalize_map(sim_hw, "adaptive", (lo, hi)),
                                      normalize_map(sim_hw, "fixed", (lo, hi)))
    assert scale_range(maps[0]) == (float(maps[0].min()), float(maps[0].max()))


def test_constant_maps_render_the_middle_colour_without_nan(real):
    norm_hw = normalize_map(np.full((7, 7), 0.42, np.float32))
    assert np.isfinite(norm_hw).all() and (norm_hw == 0.5).all()
    out = render_overlay(real["images"]["astronaut"], np.ones((7, 7)), opacity=1.0)
    assert _colours(out) == {tuple(colormap_lut("magma")[128])}


@pytest.mark.parametrize(("grid", "block"), [(7, 32), (14, 16), (28, 8), (56, 4)])
def test_nearest_upsampling_turns_each_cell_into_a_clean_block(real, grid, block):
    sim_hw = real["sims"][grid][0]
    up_hw = upsample_map(sim_hw, (224, 224), "nearest")
    np.testing.assert_array_equal(up_hw, np.kron(sim_hw, np.ones((block, block), np.float32)))
    out = render_overlay(real["images"]["chelsea"], sim_hw, opacity=1.0)
    blocks = out.reshape(grid, block, grid, block, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


@pytest.mark.parametrize(("grid", "size_hw"), [(7, (224, 224)), (56, (224, 224)), (7, (300, 448)), (28, (20, 30))])
def test_bilinear_upsampling_matches_torch_align_corners_false(real, grid, size_hw):
    sim_hw = real["sims"][grid][2]
    expected = torch.nn.functional.interpolate(torch.from_numpy(sim_hw)[None, None], size=size_hw,
                                               mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(upsample_map(sim_hw, size_hw, "bilinear"), expected, atol=1e-5)


def test_nearest_upsampling_of_non_integer_ratios_keeps_every_cell(real):
    sim_hw = real["sims"][7][0]
    up_hw = upsample_map(sim_hw, (300, 448))
    assert up_hw.shape == (300, 448)
    assert set(np.unique(up_hw)) == set(np.unique(sim_hw))


def test_opacity_zero_returns_the_grayscale_base_and_one_the_heat_map(real):
    image = real["images"]["chelsea"]
    sim_hw = real["sims"][14][0]
    gray = render_overlay(image, sim_hw, opacity=0.0)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(gray[..., 0], base_image(image)[..., 0])
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[..., 0] - luma).max() <= 2.0
    np.testing.assert_array_equal(render_overlay(image, sim_hw, opacity=0.0, base="color"), image)
    heat = render_overlay(image, sim_hw, opacity=1.0)
    np.testing.assert_array_equal(heat, render_overlay(np.zeros_like(image), sim_hw, opacity=1.0))


def test_half_opacity_lies_between_base_and_heat(real):
    image = real["images"]["coffee"]
    sim_hw = real["sims"][28][1]
    base = render_overlay(image, sim_hw, opacity=0.0).astype(int)
    heat = render_overlay(image, sim_hw, opacity=1.0).astype(int)
    half = render_overlay(image, sim_hw, opacity=0.5).astype(int)
    assert np.abs(half - (base + heat) / 2).max() <= 1.0


def test_markers_draw_white_and_orange_rings_around_their_points(real):
    image = real["images"]["astronaut"]
    grid_hw = (7, 7)
    ref_xy = cell_center_px((3, 3), grid_hw, (224, 224))   # (112, 112)
    pin_xy = cell_center_px((1, 5), grid_hw, (224, 224))   # (176, 48)
    sim_hw = real["sims"][7][2]
    plain = render_overlay(image, sim_hw)
    out = render_overlay(image, sim_hw, marker_xy=ref_xy, pin_xy=pin_xy, marker_radius=7)
    assert out[112, 112 + 7].tolist() == list(MARKER_COLORS["reference"])   # on the ring
    assert out[112 - 7, 112].tolist() == list(MARKER_COLORS["reference"])
    pin_radius = 7 * PIN_RING_SCALE                                      # wider: visible when pinned at the reference
    assert out[48, 176 + round(pin_radius)].tolist() == list(MARKER_COLORS["pinned"])
    assert (out[112, 112] == plain[112, 112]).all()                       # centre left visible
    changed_rc = np.argwhere((out != plain).any(axis=2))
    assert len(changed_rc) > 0
    near_ref = np.hypot(changed_rc[:, 0] + 0.5 - 112, changed_rc[:, 1] + 0.5 - 112) <= 7 + 3  # Pillow rasterises the ring
    near_pin = np.hypot(changed_rc[:, 0] + 0.5 - 48, changed_rc[:, 1] + 0.5 - 176) <= pin_radius + 3
    assert (near_ref | near_pin).all()


def test_markers_at_the_border_are_clipped_and_outside_points_rejected(real):
    image = real["images"]["coffee"]
    out = render_overlay(image, real["sims"][7][1], marker_xy=(0, 224), marker_radius=7)
    assert out[223, 6].tolist() == [255, 255, 255] and out[223 - 6, 0].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match="outside the 224x224 image"):
        render_overlay(image, real["sims"][7][1], pin_xy=(230, 10))


def test_render_channel_shows_a_real_channel_with_adaptive_contrast(real):
    channel_hw = channel_map(real["feats"][28][0], 5)
    out = render_channel(real["images"]["chelsea"], channel_hw, opacity=1.0)
    lut = colormap_lut("magma")
    assert tuple(lut[0]) in _colours(out) and tuple(lut[255]) in _colours(out)


def test_colorbar_runs_from_low_at_the_bottom_to_high_at_the_top():
    lut = colormap_lut("viridis")
    bar = colorbar_image("viridis", -1.0, 1.0, height=64, width=8)
    assert bar.shape == (64, 8, 3) and bar.dtype == np.uint8
    assert (bar[0] == lut[255]).all() and (bar[-1] == lut[0]).all()
    stretched = colorbar_image("viridis", 0.2, 0.6, height=101, width=4, full_range=(-1.0, 1.0))
    assert (stretched[0] == 48).all() and (stretched[-1] == 48).all()   # outside the shown range
    assert (stretched[20] == lut[255]).all() and (stretched[40] == lut[0]).all()   # 0.6 and 0.2
    assert colormap_stops("viridis", 3)[1][0] == 0.5


def test_bad_arguments_say_what_to_do():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(KeyError, match="choose one of .*magma"):
        render_overlay(image, np.eye(2), cmap="jet")
    with pytest.raises(ValueError, match="value_range=.*get_metric"):
        render_overlay(image, np.eye(2), scale="fixed")
    with pytest.raises(ValueError, match="uint8"):
        render_overlay(image.astype(np.float32), np.eye(2))
    with pytest.raises(ValueError, match="Index the image first"):
        render_overlay(image, np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="opacity must lie in"):
        render_overlay(image, np.eye(2), opacity=1.5)
    with pytest.raises(ValueError, match="NaN"):
        render_overlay(image, np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="unknown upsample mode"):
        upsample_map(np.eye(2), (4, 4), "bicubic")
