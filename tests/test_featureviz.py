"""Feature visualisation (The Mind's Eye) on the real offline model and the bundled gallery:
Barron's loss against its closed forms, facets of the gallery, the gradient path leaving the
model as it was, objective arithmetic, and short real runs (loss falls, the target's channels
rise, a seed fixes the image, cancel stops). Sizes and steps are small: the benchmark does the
full run (``benchmarks/bench_featureviz.py``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from featurelens.featureviz import (FacetSettings, LiveRun, Schedule, barron_loss, channel_dot, embed_2d, facet_figure,
                                    facet_loss, inverse_distance_weights, mean_activation, pixel_image,
                                    pooled_activations, png_bytes, previous_layer, render_vis, select_facets,
                                    standard_regularisers, visualize_facets)
from featurelens.images import bundled_gallery, get_gallery_image

X = torch.tensor([-4.0, -1.3, -0.2, 0.0, 0.05, 0.7, 2.5, 9.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def gallery_inputs(lite0) -> list[np.ndarray]:
    """Every bundled photo at the model's input size (224×224 uint8)."""
    return [lite0.resize(get_gallery_image(g.id).load()) for g in bundled_gallery()]


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_barron_loss_equals_its_closed_forms_at_shape_2_0_and_minus_infinity(scale):
    z2 = (X / scale) ** 2
    closed = {2.0: 0.5 * z2, 0.0: torch.log(0.5 * z2 + 1.0), float("-inf"): 1.0 - torch.exp(-0.5 * z2)}
    for shape, expected in closed.items():
        torch.testing.assert_close(barron_loss(X, shape, scale), expected, rtol=1e-12, atol=1e-12)
    # the general formula approaches the same closed forms next to those shapes
    for shape, near in ((2.0, 2.0 + 1e-4), (0.0, 1e-4), (float("-inf"), -1e5)):
        torch.testing.assert_close(barron_loss(X, near, scale), closed[shape], rtol=2e-3, atol=2e-4)
    # and gives the named members in between: pseudo-Huber (1) and Geman-McClure (−2)
    torch.testing.assert_close(barron_loss(X, 1.0, scale), torch.sqrt(z2 + 1.0) - 1.0)
    torch.testing.assert_close(barron_loss(X, -2.0, scale), 2.0 * z2 / (z2 + 4.0))


def test_barron_loss_refuses_a_scale_that_is_not_positive():
    with pytest.raises(ValueError, match="scale .* must be positive, got 0.0; try 1.0"):
        barron_loss(X, 1.0, 0.0)


def test_facets_of_the_gallery_are_distinct_with_weights_summing_to_one(lite0, gallery_inputs):
    pooled_nc = pooled_activations(lite0, gallery_inputs, ["stage5"])["stage5"]
    assert pooled_nc.shape == (len(gallery_inputs), 112)
    embeddings_n2 = embed_2d(pooled_nc, seed=0)
    facets = select_facets(pooled_nc, 3, seed=0, embeddings_n2=embeddings_n2)
    assert len(facets) == 3
    members = [set(f.members.tolist()) for f in facets]
    assert all(members) and not (members[0] & members[1] or members[0] & members[2] or members[1] & members[2])
    assert sum(f.size for f in facets) == len(gallery_inputs)
    for facet in facets:
        assert facet.weights.sum() == pytest.approx(1.0, abs=1e-9)
        centre = np.array(facet.centre_xy)
        distances = np.linalg.norm(embeddings_n2[facet.members] - centre, axis=1)
        assert np.all(np.diff(distances) >= 0)                             # nearest to the centre first
        np.testing.assert_allclose(facet.weights, inverse_distance_weights(distances))   # Eq. 1
        np.testing.assert_allclose(facet.target_c, facet.weights @ pooled_nc[facet.members], rtol=1e-5, atol=1e-6)
    targets = np.stack([f.target_c for f in facets])
    assert np.linalg.matrix_rank(targets) == 3                            # three different targets
    top = [set(f.top_channels(10).tolist()) for f in facets]
    assert top[0] != top[1] and top[1] != top[2] and top[0] != top[2]
    again = select_facets(pooled_nc, 3, seed=0)
    assert [f.members.tolist() for f in again] == [f.members.tolist() for f in facets]


def test_eq1_weights_favour_the_nearest_and_sum_to_one():
    weights = inverse_distance_weights(np.array([0.5, 1.0, 4.0]))
    assert weights.sum() == pytest.approx(1.0) and weights[0] > weights[1] > weights[2]
    with pytest.raises(ValueError, match="non-negative distances"):
        inverse_distance_weights(np.array([-1.0]))


def test_more_facets_than_images_is_refused_with_what_to_change(lite0, gallery_inputs):
    with pytest.raises(ValueError, match="4 facets need at least 4 images, got 2: pick more images or fewer facets"):
        visualize_facets(lite0, gallery_inputs[:2], FacetSettings(layer="stage3", n_facets=4, steps=1))


def test_objectives_add_scale_and_describe_themselves():
    target = np.array([3.0, 1.0, 2.0, 0.5], np.float32)
    loss = facet_loss("stage5", target, [0, 2], "stage4")
    assert loss.layers == ("stage5", "stage4") and loss.names == ("distance", "dot", "l1")
    assert loss.describe() == ("ρ(|top-2 of stage5 − target|; α=2, c=0.5) − dot(top-2 of stage5, target) "
                               "+ (0.001 → 0.0001) × |stage4|₁")
    acts = {"stage5": torch.zeros(1, 2, 2, 4), "stage4": torch.full((1, 2, 2, 3), -2.0)}
    acts["stage5"][..., 0], acts["stage5"][..., 2] = 3.0, 2.0                  # exactly the target
    terms = loss.terms(acts, 0.0)
    assert float(terms["distance"]) == 0.0 and float(terms["dot"]) == pytest.approx(-(1.2 ** 2 + 0.8 ** 2) / 2)
    assert float(terms["l1"]) == pytest.approx(2e-3) and float(loss.terms(acts, 1.0)["l1"]) == pytest.approx(2e-4)
    both = 2 * channel_dot("stage5", target, [0]) - mean_activation("stage4")
    assert float(both(acts)) == pytest.approx(2 * 1.0 + 2.0)
    assert Schedule(0.05, 0.01).at(0.5) == pytest.approx(0.03) and str(Schedule(1, 1)) == "1"


def test_the_gradient_path_leaves_the_model_as_it_found_it_also_after_an_error(lite0, gallery_inputs):
    module = lite0.module
    before = lite0.features(gallery_inputs[:1], ["stage3"])["stage3"]
    frozen = next(module.parameters())
    frozen.requires_grad_(False)                              # one parameter the caller had frozen
    try:
        pixels = torch.rand(1, 3, 64, 64, requires_grad=True)
        with lite0.gradient_path(["stage3"]) as forward:
            assert not any(p.requires_grad for p in module.parameters())
            grad, = torch.autograd.grad(forward(pixels)["stage3"].mean(), pixels)
        assert grad.abs().sum() > 0
        module.train()
        with pytest.raises(RuntimeError, match="boom"):
            with lite0.gradient_path(["stage2", "stage3"]) as forward:
                forward(pixels)
                raise RuntimeError("boom")
        assert module.training
        module.eval()
        hooked = [name for name, m in module.named_modules() if m._forward_hooks]
        assert hooked == []
        assert not frozen.requires_grad and all(p.requires_grad for p in module.parameters() if p is not frozen)
    finally:
        frozen.requires_grad_(True)
        module.eval()
    np.testing.assert_array_equal(lite0.features(gallery_inputs[:1], ["stage3"])["stage3"], before)


def _run(model, start_hwc, seed, steps=6, **kw):
    channels = np.arange(8)
    target = np.linspace(2.0, 1.0, 40).astype(np.float32)
    return render_vis(model, facet_loss("stage3", target, channels, "stage2"), pixel_image(start_hwc),
                      regularisers=standard_regularisers(), steps=steps, seed=seed, **kw)


def test_the_same_seed_gives_a_bit_identical_image_on_the_cpu(lite0, gallery_inputs):
    start = gallery_inputs[0][::2, ::2].astype(np.float32) / 255.0          # 112×112: a quick run
    first, second = _run(lite0, start, seed=3), _run(lite0, start, seed=3)
    np.testing.assert_array_equal(first.image_hwc_u8, second.image_hwc_u8)
    assert first.losses == second.losses
    assert not np.array_equal(_run(lite0, start, seed=4).image_hwc_u8, first.image_hwc_u8)   # the seed matters


def test_a_short_run_lowers_the_loss_and_raises_the_targets_top_channels(lite0, gallery_inputs):
    settings = FacetSettings(layer="stage3", n_facets=1, top_k=20, steps=40, nearest=4)
    seen = []
    vis = visualize_facets(lite0, gallery_inputs[:6], settings, progress=lambda done, total: seen.append((done, total)))
    result = vis.facets[0]
    losses = result.render.losses
    assert len(losses) == 40 and seen[-1] == (40, 40)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    assert result.final_k.mean() > result.start_k.mean() * 1.2, (result.start_k.mean(), result.final_k.mean())
    assert len(result.facet.members) == 4 and result.facet.weights.sum() == pytest.approx(1.0)
    assert result.image_hwc_u8.shape == (224, 224, 3) and not np.array_equal(result.image_hwc_u8, result.start_hwc_u8)
    figure = facet_figure(vis, "stage3 · one facet", nearest_shown=3)
    assert figure.ndim == 3 and png_bytes(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_cancel_stops_a_running_visualisation_promptly(lite0, gallery_inputs):
    live, out = LiveRun(), {}
    settings = FacetSettings(layer="stage2", n_facets=2, top_k=10, steps=2000, nearest=3)
    worker = threading.Thread(target=lambda: out.setdefault("vis", visualize_facets(
        lite0, gallery_inputs[:6], settings, live=live)))
    worker.start()
    deadline = time.monotonic() + 120
    while live.done < 3 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live.done >= 3 and live.image_hwc_u8 is not None and live.label == "stage2 · facet 1"
    live.cancel()
    cancelled_at = time.monotonic()
    worker.join(timeout=30)
    assert not worker.is_alive()
    vis = out["vis"]
    assert vis.cancelled and len(vis.facets) == 1 and vis.facets[0].render.cancelled
    assert vis.facets[0].render.steps_done < 2000 and live.done < 2000
    assert time.monotonic() - cancelled_at < 10       # one step and the closing measurements, not 2000 steps


def test_previous_layer_is_the_one_before_in_depth_order(lite0):
    assert previous_layer(lite0, "stage7") == "stage6" and previous_layer(lite0, "stem") is None
