"""Region search (featurelens.search): the engine equals a plain float64 VFS written here with loops,
streaming from zarr equals searching in memory, int8 storage, the defined edge cases, results,
and real PACS photos (a photo query finds photos of its class above the class prior)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from PIL import Image
from zarr.storage import LocalStore, MemoryStore

from featurelens.caches import CacheError, CacheMismatchError, build_cache, image_metadata
from featurelens.images import folder_images
from featurelens.search import (FeatureIndex, Query, SearchCancelled, SearchError, SearchMismatchError, box_mask, dequantize_int8,
                                grid_mask, load_features, load_mask, mask_box, mask_from_image, parse_box,
                                quantize_int8, query_from_features, query_from_image, search, search_features)


# --- the definition, written plainly -------------------------------------------------------


def reference_search(feats_nhwc: np.ndarray, query_hwc: np.ndarray, mask_hw: np.ndarray):
    """VFS in float64 with loops: crop to the box of ``mask > 0``, ``q = f[box] ⊙ m``; for every image
    and every position ``u`` where the box fits, ``d_u = f[u + box] ⊙ m``; score ``cos(q, d_u)``
    (0 when ``|d_u| = 0``). Returns every image's best score ``(N,)``, its best ``(row, col)`` ``(N, 2)``
    and the gap to its second-best window ``(N,)`` (windows are comparable only where it is clear)."""
    rows, cols = np.nonzero(mask_hw > 0)
    r0, c0 = rows.min(), cols.min()
    bh, bw = rows.max() - r0 + 1, cols.max() - c0 + 1
    m = mask_hw[r0:r0 + bh, c0:c0 + bw].astype(np.float64)[:, :, None]
    q = query_hwc[r0:r0 + bh, c0:c0 + bw].astype(np.float64) * m
    n, h, w, _ = feats_nhwc.shape
    best, where, gap = np.zeros(n), np.zeros((n, 2), int), np.full(n, np.inf)
    for i in range(n):
        scores = {}
        for r in range(h - bh + 1):
            for c in range(w - bw + 1):
                d = feats_nhwc[i, r:r + bh, c:c + bw].astype(np.float64) * m
                norm = np.sqrt((d * d).sum())
                scores[(r, c)] = 0.0 if norm == 0 else float((q * d).sum() / (np.sqrt((q * q).sum()) * norm))
        ranked = sorted(scores.items(), key=lambda item: -item[1])
        best[i], where[i] = ranked[0][1], ranked[0][0]
        if len(ranked) > 1:
            gap[i] = ranked[0][1] - ranked[1][1]
    return best, where, gap


def random_feats(n: int, h: int, w: int, c: int, seed: int, relu: bool = True) -> np.ndarray:
    """float16 features like a network's: ReLU-sparse (or signed), one all-zero image, zero cells."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n, h, w, c)).astype(np.float32)
    feats += rng.standard_normal((1, 1, 1, c)).astype(np.float32)  # a shared direction: cosines spread out
    if relu:
        feats = np.maximum(feats, 0)
    feats[0] = np.abs(feats[0]) + 0.05                # the query image: no dead cell
    feats[1] = 0                                      # an image with no features at all (e.g. unreadable)
    feats[2, rng.integers(h), :] = 0                  # a row of dead cells
    return feats.astype(np.float16)


def masks_for(h: int, w: int, seed: int) -> dict[str, np.ndarray]:
    """Hard, soft and border-touching masks, holes inside the box, and the whole grid."""
    rng = np.random.default_rng(seed)
    out = {}
    corner = np.zeros((h, w)); corner[0, 0] = 1
    out["cell at the top-left corner"] = corner
    block = np.zeros((h, w)); block[-min(2, h):, -min(2, w):] = 1
    out["hard block at the bottom-right border"] = block
    soft = np.zeros((h, w)); soft[:min(3, h), 1:min(4, w)] = rng.uniform(0.1, 1, (min(3, h), min(4, w) - 1))
    soft[0, 1] = 0                                    # a hole: zero cell inside the box
    out["soft with a hole, touching the top"] = soft
    ring = rng.uniform(0.2, 1, (h, w)); ring[h // 2, w // 2] = 0
    out["soft over the whole grid"] = ring
    out["whole grid"] = np.ones((h, w))
    return out


SHAPES = [(9, 5, 6, 3), (12, 7, 7, 32), (6, 1, 8, 4), (7, 4, 4, 1), (5, 9, 3, 16)]


def _cases():
    for shape in SHAPES:
        for name in masks_for(*shape[1:3], seed=0):
            yield pytest.param(shape, name, id=f"{'x'.join(map(str, shape))}-{name.replace(' ', '_')}")


def _check_against_reference(result, feats_nhwc, query, ref, atol=2e-5):
    best, where, gap = ref
    np.testing.assert_allclose(result.best_scores_n, best, atol=atol, rtol=0)
    clear = gap > 1e-3
    np.testing.assert_array_equal(result.best_rc_n2[clear], where[clear])
    assert np.all(np.isfinite(result.best_scores_n))
    bh, bw = query.box[2:]
    assert np.all(result.windows_n4[:, 2:] == (bh, bw))


@pytest.mark.parametrize("shape,mask_name", list(_cases()))
def test_search_equals_plain_float64_vfs(shape, mask_name):
    n, h, w, c = shape
    feats = random_feats(*shape, seed=sum(shape), relu=c != 16)
    mask = masks_for(h, w, seed=0)[mask_name]
    query = query_from_features(feats[0].astype(np.float32), mask, model="toy", layer="l", image_index=0)
    result = search_features(feats, query, top_k=n, include_self=True, device="cpu")
    ref = reference_search(feats, feats[0], mask)
    _check_against_reference(result, feats, query, ref)
    assert result.best_scores_n[1] == 0.0            # the all-zero image scores 0, not NaN
    assert result.best_scores_n[0] == pytest.approx(1.0, abs=1e-5)  # the query region itself
    order = [hit.index for hit in result.top]
    expected = sorted(range(n), key=lambda i: (-ref[0][i], i))
    assert sorted(order) == sorted(expected)
    ranked_ref = ref[0][order]
    assert np.all(np.diff(ranked_ref) <= 1e-5)        # hits come in the reference's order


@pytest.mark.parametrize("kernels", [True, False], ids=["CPU kernels", "torch.mm"])
@pytest.mark.parametrize("per_cell", [True, False], ids=["per-cell products", "all-cells product"])
def test_blocks_scored_in_several_passes_equal_plain_float64_vfs(monkeypatch, per_cell, kernels):
    """Both ways of scoring a held block (one product per grid cell, or every cell with every query
    row), by the CPU kernels or by torch, in passes smaller than a block (3 images here, 256 in real
    use): held blocks of 5 (passes of 3 and 2) and streamed blocks of 7 (3, 3 and 1), int8 scales too."""
    import featurelens.search.engine as engine

    monkeypatch.setattr(engine, "pass_images", lambda channels, device, cells=1: 3)
    monkeypatch.setattr(engine, "_DOTS_FLOATS", 3 * 16 * 42)  # the all-cells product: 3 images at K' = 16
    monkeypatch.setattr(engine._Prepared, "per_cell_pays", property(lambda self: per_cell))
    monkeypatch.setattr(engine, "_uses_kernels", lambda device, dtype, stored, channels, cells: kernels)
    feats = random_feats(17, 6, 7, 12, seed=13)
    q_nhwc, scale_nhw = quantize_int8(feats)
    held = load_features(feats, device="cpu", block_images=5)
    held8 = load_features(q_nhwc, device="cpu", scale_nhw=scale_nhw, block_images=5)
    for name, mask in masks_for(6, 7, seed=4).items():
        query = query_from_features(feats[5].astype(np.float32), mask, model="toy", layer="l", image_index=5)
        ref = reference_search(feats, feats[5], mask)
        ref8 = reference_search(dequantize_int8(q_nhwc, scale_nhw), feats[5], mask)
        for source, kwargs, expected in ((held, {}, ref), (feats, {"block_images": 7}, ref),
                                         (held8, {}, ref8), (q_nhwc, {"block_images": 7, "scale_nhw": scale_nhw}, ref8)):
            result = search_features(source, query, top_k=17, include_self=True, device="cpu", **kwargs)
            _check_against_reference(result, feats, query, expected)


@pytest.mark.parametrize("per_cell", [True, False], ids=["per-cell products", "all-cells product"])
def test_rows_the_cpu_kernels_do_not_read_are_multiplied_by_torch(monkeypatch, per_cell):
    """bfloat16 rows (held and plain) and bfloat16 products go through torch's ``mm`` on the CPU:
    float32 products score as float64 does on the same values; bfloat16 products within 1e-2."""
    import featurelens.search.engine as engine

    monkeypatch.setattr(engine._Prepared, "per_cell_pays", property(lambda self: per_cell))
    feats = random_feats(11, 5, 6, 20, seed=17)
    feats_bf16 = torch.from_numpy(feats.astype(np.float32)).to(torch.bfloat16)
    exact = feats_bf16.to(torch.float32).numpy()
    held = load_features(feats_bf16, device="cpu", block_images=4)
    for name, mask in masks_for(5, 6, seed=5).items():
        query = query_from_features(exact[0], mask, model="toy", layer="l", image_index=0)
        ref = reference_search(exact, exact[0], mask)
        for source in (held, feats_bf16):
            result = search_features(source, query, top_k=11, include_self=True, device="cpu", block_images=4)
            _check_against_reference(result, exact, query, ref)
        rounded = search_features(feats, query, top_k=11, include_self=True, device="cpu", compute_dtype="bfloat16")
        np.testing.assert_allclose(rounded.best_scores_n, ref[0], atol=1e-2, rtol=0, err_msg=name)


def test_reference_notices_a_wrong_weighting():
    """The comparison can fail: weighting cells by m instead of m² changes soft-mask scores."""
    feats = random_feats(8, 5, 5, 6, seed=3)
    mask = masks_for(5, 5, seed=0)["soft over the whole grid"]
    best, _, _ = reference_search(feats, feats[0], mask)
    wrong, _, _ = reference_search(feats, feats[0], np.sqrt(mask))
    assert np.abs(best - wrong).max() > 1e-3


def test_query_from_another_image_and_float32_torch_input():
    feats = random_feats(10, 6, 6, 8, seed=5)
    other_hwc = np.abs(np.random.default_rng(9).standard_normal((6, 6, 8))).astype(np.float32)
    mask = np.zeros((6, 6)); mask[2:5, 1:3] = [[1, .5], [.25, 1], [1, 0]]
    query = query_from_features(torch.from_numpy(other_hwc), mask, model="toy", layer="l")
    result = search_features(torch.from_numpy(feats.astype(np.float32)), query, device="cpu")
    _check_against_reference(result, feats, query, reference_search(feats.astype(np.float32), other_hwc, mask))


ACCELERATOR = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else None


@pytest.mark.skipif(ACCELERATOR is None, reason="needs a cuda or mps device (run on the device machine)")
@pytest.mark.parametrize("held", ["on the device", "streamed from zarr"])
def test_the_accelerator_path_equals_plain_float64_vfs(tmp_path, held):
    """On a GPU: the cache held on the device, and streamed to it in blocks (pinned, read ahead),
    score as the float64 reference does, for hard, soft and border masks."""
    feats = random_feats(40, 7, 7, 32, seed=21)
    array = zarr.create_array(LocalStore(str(tmp_path / "f.zarr")), shape=feats.shape, chunks=(4, 7, 7, 32),
                              dtype="float16")
    array[:] = feats
    source = load_features(feats, device=ACCELERATOR) if held == "on the device" else array
    for name, mask in masks_for(7, 7, seed=1).items():
        query = query_from_features(feats[0].astype(np.float32), mask, model="toy", layer="l", image_index=0)
        result = search_features(source, query, top_k=40, include_self=True, device=ACCELERATOR, block_images=6)
        assert result.device.startswith(ACCELERATOR), name
        _check_against_reference(result, feats, query, reference_search(feats, feats[0], mask), atol=1e-4)


# --- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["memory", "directory"])
def test_streaming_from_zarr_equals_in_memory(tmp_path, store_kind):
    feats = random_feats(23, 7, 7, 24, seed=11)
    store = MemoryStore() if store_kind == "memory" else LocalStore(str(tmp_path / "f.zarr"))
    array = zarr.create_array(store, shape=feats.shape, chunks=(4, 7, 7, 24), dtype="float16")
    array[:] = feats
    mask = np.zeros((7, 7)); mask[3:6, 0:2] = 0.7; mask[4, 1] = 1
    query = query_from_features(feats[4].astype(np.float32), mask, model="toy", layer="l", image_index=4)
    seen = []
    streamed = search_features(array, query, block_images=3, read_ahead=1, progress=lambda d, t: seen.append((d, t)))
    in_memory = search_features(feats, query, device="cpu")
    np.testing.assert_allclose(streamed.best_scores_n, in_memory.best_scores_n, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(streamed.windows_n4, in_memory.windows_n4)
    assert [h.index for h in streamed.top] == [h.index for h in in_memory.top]
    assert seen[-1] == (23, 23) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) == 8                              # blocks of 3 images



def test_a_loaded_index_holds_the_same_features_and_searches_as_the_array(tmp_path):
    """load_features re-blocks zarr chunks (4 images) into blocks of 5, cell-major; each image
    reads back unchanged and the search equals the array's, for float16 and int8 with scales."""
    feats = random_feats(23, 7, 7, 24, seed=11)
    array = zarr.create_array(LocalStore(str(tmp_path / "f.zarr")), shape=feats.shape, chunks=(4, 7, 7, 24),
                              dtype="float16")
    array[:] = feats
    loaded = load_features(array, device="cpu", block_images=5)
    assert isinstance(loaded, FeatureIndex) and loaded.dtype == torch.float16 and loaded.shape == feats.shape
    assert [b.start for b in loaded.blocks] == [0, 5, 10, 15, 20]
    assert all(np.array_equal(loaded[i].numpy(), feats[i]) for i in range(-1, 23))
    with pytest.raises(IndexError, match="out of range for 23 images"):
        loaded[23]
    q_nhwc, scale_nhw = quantize_int8(feats)
    loaded8 = load_features(q_nhwc, device="cpu", scale_nhw=scale_nhw, block_images=6)
    np.testing.assert_allclose(loaded8[7].numpy(), dequantize_int8(q_nhwc[7:8], scale_nhw[7:8])[0], rtol=1e-6)
    for name, mask in masks_for(7, 7, seed=3).items():
        query = query_from_features(feats[2].astype(np.float32), mask, model="toy", layer="l", image_index=2)
        for held, plain in ((loaded, {"feats_nhwc": feats}),
                            (loaded8, {"feats_nhwc": q_nhwc, "scale_nhw": scale_nhw})):
            from_index = search_features(held, query, include_self=True, top_k=23)
            from_array = search_features(query=query, include_self=True, top_k=23, device="cpu", **plain)
            np.testing.assert_allclose(from_index.best_scores_n, from_array.best_scores_n, atol=1e-6, rtol=0)
            np.testing.assert_array_equal(from_index.windows_n4, from_array.windows_n4)
            assert from_index.device == "cpu", name
    with pytest.raises(SearchError, match="holds its own scales"):
        search_features(loaded8, query, scale_nhw=scale_nhw)


def test_streaming_can_be_cancelled_and_reports_reader_errors():
    feats = random_feats(12, 3, 3, 4, seed=2)
    array = zarr.create_array(MemoryStore(), shape=feats.shape, chunks=(2, 3, 3, 4), dtype="float16")
    array[:] = feats
    query = query_from_features(feats[0].astype(np.float32), np.ones((3, 3)), model="toy", layer="l")
    cancel = threading.Event()
    with pytest.raises(SearchCancelled, match="cancelled after 4 of 12"):
        search_features(array, query, block_images=2, progress=lambda d, t: cancel.set() if d >= 4 else None,
                        cancel=cancel)
    with pytest.raises(SearchError, match="block_images must be at least 1"):
        search_features(array, query, block_images=0)


# --- int8 storage ----------------------------------------------------------------------------


def test_int8_quantisation_is_per_cell_and_round_trips():
    feats = random_feats(4, 3, 5, 64, seed=8).astype(np.float32)
    q_nhwc, scale_nhw = quantize_int8(feats)
    assert q_nhwc.dtype == np.int8 and scale_nhw.shape == (4, 3, 5) and scale_nhw.dtype == np.float32
    back = dequantize_int8(q_nhwc, scale_nhw)
    peak = np.abs(feats).max(axis=-1, keepdims=True)
    assert np.all(np.abs(back - feats) <= peak / 254 + 1e-7)   # half a step of each cell's own scale
    assert np.all(scale_nhw[1] == 0) and np.all(back[1] == 0)  # the all-zero image stays zero


def test_int8_search_equals_float64_search_of_the_dequantised_features():
    feats = random_feats(15, 6, 6, 48, seed=21)
    q_nhwc, scale_nhw = quantize_int8(feats)
    mask = masks_for(6, 6, seed=1)["soft with a hole, touching the top"]
    query = query_from_features(feats[3].astype(np.float32), mask, model="toy", layer="l", image_index=3)
    result = search_features(q_nhwc, query, scale_nhw=scale_nhw, include_self=True, top_k=15, device="cpu")
    _check_against_reference(result, feats, query, reference_search(dequantize_int8(q_nhwc, scale_nhw), feats[3], mask))
    with pytest.raises(SearchError, match="int8 features need scale_nhw"):
        search_features(q_nhwc, query)


# --- edge cases and refusals -----------------------------------------------------------------


def test_empty_masks_and_zero_queries_are_refused_with_a_way_out():
    feats = random_feats(3, 4, 4, 5, seed=1)
    with pytest.raises(SearchError, match="mask is empty.*draw a larger region"):
        query_from_features(feats[0], np.zeros((4, 4)), model="m", layer="l")
    with pytest.raises(SearchError, match="zero features.*draw the region elsewhere"):
        query_from_features(feats[1], np.ones((4, 4)), model="m", layer="l")   # image 1 is all zeros
    with pytest.raises(SearchError, match=r"\[0, 1\]"):
        query_from_features(feats[0], np.full((4, 4), 2.0), model="m", layer="l")
    with pytest.raises(SearchError, match="area-average"):
        Query("m", "l", feats[0].astype(np.float32), np.ones((3, 3)))


def test_a_mask_covering_the_whole_grid_compares_whole_maps():
    feats = random_feats(6, 3, 4, 7, seed=4).astype(np.float32)
    mask = np.ones((3, 4))
    result = search_features(feats, query_from_features(feats[0], mask, model="m", layer="l"), device="cpu")
    flat = feats.reshape(6, -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1)
    cosine = np.where(norms > 0, flat @ flat[0] / (norms * norms[0] + (norms == 0)), 0)
    np.testing.assert_allclose(result.best_scores_n, cosine, atol=1e-6)
    assert {tuple(w) for w in result.windows_n4} == {(0, 0, 3, 4)}


def test_features_of_another_grid_or_channels_are_refused_naming_both_shapes():
    feats = random_feats(3, 7, 7, 8, seed=1)
    other = query_from_features(random_feats(3, 8, 8, 8, seed=1)[0], np.ones((8, 8)), model="m", layer="head")
    with pytest.raises(SearchMismatchError, match=r"\(7, 7, 8\).*\(8, 8, 8\).*same model, layer and input size"):
        search_features(feats, other)


def test_bad_arguments_say_what_to_pass():
    feats = random_feats(4, 3, 3, 2, seed=1)
    query = query_from_features(feats[0], np.ones((3, 3)), model="m", layer="l")
    with pytest.raises(SearchError, match="compute_dtype must be"):
        search_features(feats, query, compute_dtype="float8")
    with pytest.raises(SearchError, match="4 images but image_ids has 2"):
        search_features(feats, query, image_ids=["a", "b"])
    with pytest.raises(SearchError, match="no such id"):
        search_features(feats, query, exclude=["zzz"])
    with pytest.raises(SearchError, match="cannot be searched"):
        search_features(feats.astype(np.int32), query)


# --- masks --------------------------------------------------------------------------------------


def test_grid_masks_average_areas_and_boxes_are_fractions():
    drawn = np.zeros((10, 15), bool); drawn[:5, :5] = True          # grid cells are 10/3 × 5 px
    mask = grid_mask(drawn, (3, 2))
    np.testing.assert_allclose(mask, [[5 / 7.5, 0], [0.5 * 5 / 7.5, 0], [0, 0]], atol=1e-6)
    assert mask_box(mask) == (0, 0, 2, 1)
    np.testing.assert_allclose(box_mask((0.5, 0.25, 1.0, 0.5), (4, 4)),
                               [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert parse_box(" 0.1,0.2 , 0.3,0.4") == (0.1, 0.2, 0.3, 0.4)
    for bad in ("0.1,0.2,0.3", "a,b,c,d", "0.5,0.2,0.4,0.6", "0,0,1.5,1"):
        with pytest.raises(SearchError, match="x0"):
            parse_box(bad)


def test_mask_images_use_alpha_or_grey(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8); rgba[1:3, 2:5] = (255, 0, 0, 255)
    grey = np.zeros((4, 6), np.uint8); grey[0, 0] = 128
    Image.fromarray(rgba).save(tmp_path / "strokes.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert load_mask(tmp_path / "strokes.png").sum() == 6
    assert mask_from_image(Image.open(tmp_path / "grey.png"))[0, 0] == pytest.approx(128 / 255)
    with pytest.raises(SearchError, match="cannot read the mask image"):
        load_mask(tmp_path / "missing.png")


# --- results ------------------------------------------------------------------------------------


@pytest.fixture()
def grouped_result():
    feats = random_feats(10, 4, 4, 6, seed=13)
    meta = pd.DataFrame({"id": [f"im{i}" for i in range(10)], "group": list("aabbbccdd") + [None],
                         "label": ["x"] * 10})
    query = query_from_features(feats[0], box_mask((0, 0, 0.5, 0.5), (4, 4)), model="m", layer="l",
                                image_id="im0")
    return search_features(feats, query, image_ids=meta["id"], metadata=meta, top_k=10,
                           loaded_n=np.arange(10) != 7, device="cpu")


def test_top_k_ranks_by_score_and_keeps_one_hit_per_metadata_value(grouped_result):
    r = grouped_result
    top = r.top
    assert [h.rank for h in top] == list(range(1, 9))                # 10 minus the query and unloaded im7
    assert "im0" not in [h.id for h in top] and "im7" not in [h.id for h in top]
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
    unique = r.top_k(10, unique_by="group")
    groups = [h.metadata["group"] for h in unique]
    assert len(groups) == len(set(map(str, groups))) == 5            # a, b, c, d and the missing value
    best_b = max((h for h in top if h.metadata["group"] == "b"), key=lambda h: h.score)
    assert best_b.id in [h.id for h in unique]
    with pytest.raises(SearchError, match="not a metadata column.*'group'"):
        r.top_k(3, unique_by="domain")
    assert [h.id for h in r.top_k(3, exclude=[top[0].id])] == [h.id for h in top[1:4]]


def test_scores_table_holds_every_ranked_image_for_box_plots(grouped_result):
    r = grouped_result
    table = r.scores_table()
    assert len(table) == 8 and table["valid"].all() and {"group", "label", "row", "col"} <= set(table.columns)
    np.testing.assert_allclose(table["score"], r.best_scores_n[r.valid_n])
    every = r.scores_table(include_excluded=True)
    assert len(every) == 10 and list(every["valid"]) == list(r.valid_n)
    assert np.isneginf(r.scores_n[~r.valid_n]).all() and not np.isnan(r.scores_n).any()


def test_windows_map_to_pixel_boxes_and_hits_print_as_a_table(grouped_result):
    r = grouped_result
    assert r.window_box_px((1, 2, 2, 2), (200, 100)) == (100.0, 25.0, 200.0, 75.0)
    table = r.hits_table()
    assert list(table.columns) == ["rank", "id", "score", "window", "group", "label"]
    assert table["window"][0] == "{},{} 2×2".format(*r.top[0].window[:2])
    with pytest.raises(SearchError, match="no metadata column 'nope'"):
        r.hits_table(columns=["nope"])


# --- real photos: PACS ----------------------------------------------------------------------------

PER_CLASS = 20


@pytest.fixture(scope="session")
def pacs(shared_data, lite0):
    """The first PER_CLASS photos of each PACS class in an in-memory cache (layers stage7 and head)."""
    root = shared_data / "pacs"
    labels = pd.read_csv(root / "labels.csv")
    chosen = set(labels[labels["domain"] == "photo"].groupby("class").head(PER_CLASS)["file"])
    images = [image for image in folder_images(root) if image.id in chosen]
    table = image_metadata(images, root=root, labels=labels)
    cache = build_cache(MemoryStore(), images, lite0, ["stage7", "head"], dataset_name="pacs-photos",
                        metadata=table, batch_size=35)
    return {"root": root, "cache": cache, "images": images, "table": table}


def _precision_at_k(cache, lite0, root, k: int, layer: str) -> tuple[float, float]:
    """Mean precision@k of same-class hits for one object query per class, and the class prior."""
    table = cache.metadata
    precisions, priors = [], []
    for cls, rows in table.groupby("class"):
        index = int(rows.index[0])
        query = query_from_image(lite0, Image.open(root / table["file"][index]), layer=layer,
                                 box_xyxy=(0.2, 0.2, 0.8, 0.8), image_index=index)
        result = search(cache, query, top_k=k, device="cpu")
        precisions.append(np.mean([h.metadata["class"] == cls for h in result.top]))
        priors.append((len(rows) - 1) / (len(table) - 1))
    return float(np.mean(precisions)), float(np.mean(priors))


@pytest.mark.parametrize("layer", ["head", "stage7"])
def test_a_photo_object_query_finds_its_class_above_the_class_prior(pacs, lite0, layer):
    precision, prior = _precision_at_k(pacs["cache"], lite0, pacs["root"], k=5, layer=layer)
    assert precision > 2 * prior, (precision, prior)


def test_a_query_image_of_another_size_is_squashed_like_the_cache(pacs, lite0):
    cache, root = pacs["cache"], pacs["root"]
    photo = Image.open(root / cache.metadata["file"][0]).convert("RGB")
    wide = photo.resize((400, 150))
    drawn = np.zeros((150, 400)); drawn[30:120, 80:320] = 1            # the same region, in the wide image
    a = search(cache, query_from_image(lite0, photo, layer="head", box_xyxy=(0.2, 0.2, 0.8, 0.8)), device="cpu")
    b = search(cache, query_from_image(lite0, wide, layer="head", mask_hw=drawn), device="cpu")
    assert a.query.box == b.query.box and np.allclose(a.query.mask_hw, b.query.mask_hw)
    assert a.query.feats_hwc.shape == b.query.feats_hwc.shape == (7, 7, 1280)
    with pytest.raises(SearchError, match="draw the mask at the image's size"):
        query_from_image(lite0, wide, layer="head", mask_hw=np.ones((100, 100)))


def test_a_cache_of_another_model_layer_or_weights_is_refused_naming_both(pacs, lite0):
    cache = pacs["cache"]
    feats_hwc = np.asarray(cache.features("head")[0], dtype=np.float32)
    box = box_mask((0.2, 0.2, 0.8, 0.8), (7, 7))
    other_model = query_from_features(feats_hwc, box, model="efficientnet_lite2.in1k", layer="head")
    with pytest.raises(SearchMismatchError, match="'efficientnet_lite0.in1k'.*'efficientnet_lite2.in1k'"):
        search(cache, other_model)
    other_layer = query_from_features(feats_hwc, box, model=cache.model_name, layer="stage5")
    with pytest.raises(SearchMismatchError, match="no layer 'stage5'.*stage7, head"):
        search(cache, other_layer)
    other_weights = query_from_features(feats_hwc, box, model=cache.model_name, layer="head",
                                        weights_sha256="0" * 64)
    with pytest.raises(SearchMismatchError, match="weights sha256 579344248a93.*000000000000"):
        search(cache, other_weights)
    wrong_grid = query_from_features(feats_hwc[:6, :6], box[:6, :6], model=cache.model_name, layer="head")
    with pytest.raises(SearchMismatchError, match=r"\(7, 7, 1280\).*\(6, 6, 1280\).*input size"):
        search(cache, wrong_grid)


def test_int8_cache_keeps_the_float16_ranking_on_real_photos(pacs, lite0):
    cache = pacs["cache"]
    few = list(range(0, len(pacs["images"]), 2))
    images = [pacs["images"][i] for i in few]
    int8 = build_cache(MemoryStore(), images, lite0, ["head"], dataset_name="pacs-int8", feature_dtype="int8",
                       metadata=pacs["table"].iloc[few].reset_index(drop=True), batch_size=35)
    assert int8.feature_dtype == "int8" and int8.features("head").dtype == np.int8
    assert int8.feature_scales("head").shape == (len(few), 7, 7) and cache.feature_scales("head") is None
    half = np.asarray(cache.features("head")[few])
    np.testing.assert_allclose(dequantize_int8(int8.features("head")[:], int8.feature_scales("head")[:]),
                               half.astype(np.float32), atol=6 / 254 + 4e-3)
    agree = []
    for index in range(0, len(few), 4):
        query = query_from_features(half[index].astype(np.float32), box_mask((0.3, 0.3, 0.7, 0.7), (7, 7)),
                                    model=cache.model_name, layer="head", image_index=index)
        a = search_features(half, query, image_ids=int8.image_ids, top_k=10, device="cpu")
        b = search(int8, query, top_k=10, device="cpu")
        agree.append(len({h.id for h in a.top} & {h.id for h in b.top}) / 10)
        assert a.top[0].id == b.top[0].id
        np.testing.assert_allclose(a.best_scores_n, b.best_scores_n, atol=5e-3)
    assert np.mean(agree) >= 0.9, agree
    assert "int8 NHWC with one float32 scale per cell" in int8.describe()


def test_an_int8_build_is_not_resumed_as_float16(pacs, lite0, tmp_path):
    images = pacs["images"][:2]
    build_cache(tmp_path / "c.zarr", images, lite0, ["head"], dataset_name="two", feature_dtype="int8")
    with pytest.raises(CacheMismatchError, match="dtype 'int8', this build asks for 'float16'"):
        build_cache(tmp_path / "c.zarr", images, lite0, ["head"], dataset_name="two")
    with pytest.raises(CacheError, match="feature_dtype must be one of 'float16', 'int8'"):
        build_cache(tmp_path / "d.zarr", images, lite0, ["head"], dataset_name="two", feature_dtype="int4")
