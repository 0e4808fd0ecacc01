"""featurelens.parts (ISO's NMF parts) on real EfficientNet-Lite0 features of real photos."""

from __future__ import annotations

import numpy as np
import pytest

from featurelens.similarity import base_image
from featurelens.similarity import NEGATIVE_HANDLING, PartsResult, nmf_parts, part_colors, render_parts
from featurelens.similarity import mask_to_grid

IMAGE_NAMES = ("chelsea", "coffee", "astronaut")  # the order of the shared `real` fixture





def _svd_relative_error(x_pc: np.ndarray, k: int) -> float:
    """The best possible rank-k error (Eckart–Young): a lower bound for NMF."""
    singular = np.linalg.svd(x_pc.astype(np.float64), compute_uv=False)
    return float(np.sqrt((singular[k:] ** 2).sum() / (singular ** 2).sum()))


def _split_pc(feats_nhwc: np.ndarray) -> np.ndarray:
    x_pc = feats_nhwc.reshape(-1, feats_nhwc.shape[-1])
    return np.concatenate([np.maximum(x_pc, 0), np.maximum(-x_pc, 0)], axis=1)


def test_late_layer_of_one_image_is_reconstructed_within_half_its_norm(real):
    result = nmf_parts(real["feats"][7][:1], 6)
    assert result.relative_error < 0.5


@pytest.mark.parametrize("grid", [14, 7])
def test_error_decreases_with_k_and_stays_near_the_svd_bound(real, grid):
    feats_nhwc = real["feats"][grid]
    x_pc = _split_pc(feats_nhwc)
    errors = []
    for k in (2, 4, 6, 8):
        result = nmf_parts(feats_nhwc, k)
        bound = _svd_relative_error(x_pc, k)
        assert bound - 1e-4 <= result.relative_error <= 1.1 * bound
        reconstruction = result.maps_nhwk.reshape(-1, k) @ result.components_kc
        recomputed = np.linalg.norm(x_pc - reconstruction) / np.linalg.norm(x_pc)
        assert result.relative_error == pytest.approx(recomputed, rel=1e-3)
        errors.append(result.relative_error)
    assert errors == sorted(errors, reverse=True) and len(set(errors)) == 4


def test_maps_are_non_negative_read_only_and_shaped_by_image(real):
    result = nmf_parts(real["feats"][14], 5)
    assert isinstance(result, PartsResult) and result.k == 5
    assert result.maps_nhwk.shape == (3, 14, 14, 5) and result.maps_nhwk.dtype == np.float32
    assert result.components_kc.shape == (5, 2 * 80)
    assert result.maps_nhwk.min() >= 0 and result.components_kc.min() >= 0
    with pytest.raises(ValueError, match="read-only"):
        result.maps_nhwk[0, 0, 0, 0] = 1.0


@pytest.mark.parametrize("init", ["nndsvda", "random"])
def test_same_seed_gives_bit_identical_parts(real, init):
    first = nmf_parts(real["feats"][7], 4, seed=3, init=init)
    second = nmf_parts(real["feats"][7], 4, seed=3, init=init)
    np.testing.assert_array_equal(first.maps_nhwk, second.maps_nhwk)
    np.testing.assert_array_equal(first.components_kc, second.components_kc)
    assert first.relative_error == second.relative_error


def test_random_init_depends_on_the_seed(real):
    first = nmf_parts(real["feats"][7], 4, seed=0, init="random")
    other = nmf_parts(real["feats"][7], 4, seed=1, init="random")
    assert not np.allclose(first.components_kc, other.components_kc)


def test_split_keeps_negative_values_as_extra_channels(real):
    feats_nhwc = real["feats"][7]
    result = nmf_parts(feats_nhwc, 4, negative="split")
    assert result.had_negative and result.negative_handling == "split"
    assert result.components_kc.shape == (4, 2 * feats_nhwc.shape[-1])
    assert "separate channels" in result.note


def test_clip_and_shift_factorise_the_transformed_features(real):
    feats_nhwc = real["feats"][7]
    clipped = nmf_parts(feats_nhwc, 4, negative="clip")
    via_relu = nmf_parts(np.maximum(feats_nhwc, 0), 4, negative="split")  # no negatives left: used as is
    np.testing.assert_array_equal(clipped.maps_nhwk, via_relu.maps_nhwk)
    assert clipped.components_kc.shape == (4, feats_nhwc.shape[-1]) and "set to zero" in clipped.note
    shifted = nmf_parts(feats_nhwc, 4, negative="shift")
    via_min = nmf_parts(feats_nhwc - feats_nhwc.min(), 4)
    np.testing.assert_array_equal(shifted.maps_nhwk, via_min.maps_nhwk)
    assert "minimum was subtracted" in shifted.note
    assert not np.allclose(clipped.maps_nhwk, shifted.maps_nhwk)


@pytest.mark.parametrize("negative", list(NEGATIVE_HANDLING))
def test_non_negative_features_are_factorised_unchanged_for_every_option(real, negative):
    result = nmf_parts(real["head"], 3, negative=negative)
    assert not result.had_negative and result.negative_handling == negative
    assert result.components_kc.shape == (3, 1280)
    assert "non-negative" in result.note


def test_cat_and_background_are_dominated_by_different_parts(real):
    result = nmf_parts(real["feats"][14], 6)
    cat_hw = np.zeros((224, 224), np.float32)
    cat_hw[48:176, 48:176] = 1              # chelsea's face
    room_hw = np.zeros((224, 224), np.float32)
    room_hw[48:224, 204:224] = 1            # the blurred room right of the cat
    maps_hwk = result.maps_nhwk[0]
    profiles = []
    for mask_hw in (cat_hw, room_hw):
        weights_hw = mask_to_grid(mask_hw, (14, 14))
        profiles.append((maps_hwk * weights_hw[..., None]).sum(axis=(0, 1)) / weights_hw.sum())
    cat_k, room_k = profiles
    cat_part, room_part = int(cat_k.argmax()), int(room_k.argmax())
    assert cat_part != room_part
    assert cat_k[cat_part] > 2 * room_k[cat_part] and room_k[room_part] > 2 * cat_k[room_part]


def test_bad_arguments_say_what_to_do(real):
    with pytest.raises(ValueError, match="choose one of .*split"):
        nmf_parts(real["feats"][7], 3, negative="abs")
    with pytest.raises(ValueError, match="feats_hwc\\[None\\]"):
        nmf_parts(real["feats"][7][0], 3)
    with pytest.raises(ValueError, match="pick a k between"):
        nmf_parts(real["feats"][7], 0)
    with pytest.raises(ValueError, match="all features are zero"):
        nmf_parts(np.zeros((1, 2, 2, 3), np.float32), 1)


@pytest.mark.parametrize("k", [1, 6, 10, 15, 25])
def test_part_colors_are_distinct(k):
    colors_k3 = part_colors(k)
    assert colors_k3.shape == (k, 3) and colors_k3.dtype == np.uint8
    assert len({tuple(c) for c in colors_k3}) == k


def test_render_parts_colours_each_cell_by_its_dominant_part(real):
    result = nmf_parts(real["feats"][7], 6)
    maps_hwk = result.maps_nhwk[1]
    image = real["images"]["coffee"]
    out = render_parts(image, maps_hwk, opacity=1.0)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    row, col = np.unravel_index(maps_hwk.max(axis=2).argmax(), (7, 7))   # the strongest cell
    block = out[row * 32:(row + 1) * 32, col * 32:(col + 1) * 32]
    assert (block == part_colors(6)[maps_hwk[row, col].argmax()]).all()
    assert (render_parts(image, maps_hwk, opacity=0.0) == base_image(image)).all()


def test_highlight_shows_one_part_on_a_scale_shared_by_all_images(real):
    result = nmf_parts(real["feats"][7], 6)
    top = float(result.maps_nhwk.max())
    color = part_colors(6)[2].astype(np.float32)
    for i, name in enumerate(IMAGE_NAMES):
        image = real["images"][name]
        out = render_parts(image, result.maps_nhwk[i], highlight=2, max_strength=top, opacity=0.7)
        strength_hw = result.maps_nhwk[i, :, :, 2]
        for row, col in [np.unravel_index(strength_hw.argmax(), (7, 7)), np.unravel_index(strength_hw.argmin(), (7, 7))]:
            y, x = row * 32 + 16, col * 32 + 16  # one pixel inside each 32-px cell (nearest upsampling)
            alpha = 0.7 * strength_hw[row, col] / top  # the same strength gets the same colour in every image
            expected = base_image(image)[y, x] * (1 - alpha) + color * alpha
            np.testing.assert_allclose(out[y, x], expected, atol=1.0)
    with pytest.raises(IndexError, match="parts are 0..5"):
        render_parts(real["images"]["chelsea"], result.maps_nhwk[0], highlight=6)


def test_a_weak_part_still_shows_on_its_own_scale(real):
    result = nmf_parts(real["feats"][14], 4)
    weakest = int(np.argmin([result.max_strength(j) for j in range(result.k)]))
    assert result.max_strength(weakest) < result.max_strength()
    image = real["images"]["chelsea"]
    shown = render_parts(image, result.maps_nhwk[0], highlight=weakest, max_strength=result.max_strength(weakest))
    faint = render_parts(image, result.maps_nhwk[0], highlight=weakest, max_strength=result.max_strength())
    base = base_image(image).astype(int)
    assert np.abs(shown.astype(int) - base).sum() > np.abs(faint.astype(int) - base).sum()
