"""Region search on a Dask cluster (loopback: a LocalCluster with 2 worker processes) equals the
single-process search on the same real cache and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from featurelens.caches import build_cache
from featurelens.images import bundled_gallery
from featurelens.search import box_mask, query_from_features, search
from tests.conftest import local_cluster

distributed = pytest.importorskip("distributed", reason="cluster search needs dask's distributed package")
from featurelens.caches import CacheError, connect_scheduler  # noqa: E402
from featurelens.cluster import search_on_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory, lite0):
    """A real 15-image cache in 5 chunks of 3 images, on a path both workers can read."""
    path = tmp_path_factory.mktemp("cluster") / "gallery.zarr"
    return build_cache(path, bundled_gallery(), lite0, ["stage5", "stage7"], dataset_name="gallery", chunk_images=3)


@pytest.fixture(scope="module")
def client():
    with local_cluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


MASKS = {"2x2 box": (0.3, 0.2, 0.55, 0.5), "border": (0.0, 0.0, 0.3, 1.0), "whole image": (0.0, 0.0, 1.0, 1.0)}


@pytest.mark.parametrize("layer", ["stage5", "stage7"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_cluster_search_equals_single_process_search(cache, client, layer, mask):
    feats_hwc = np.asarray(cache.features(layer)[0], np.float32)
    query = query_from_features(feats_hwc, box_mask(MASKS[mask], feats_hwc.shape[:2]), model=cache.model_name,
                                layer=layer, image_index=0)
    here = search(cache, query, top_k=5, unique_by="label")
    seen = []
    there = search_on_cluster(cache, query, client, top_k=5, unique_by="label", tasks=3,
                              progress=lambda done, total: seen.append((done, total)))
    # float32 sums in another order (other block sizes, one BLAS thread per worker): ≤ 1e-6 apart
    assert np.abs(there.best_scores_n - here.best_scores_n).max() <= 1e-6
    assert np.array_equal(there.windows_n4, here.windows_n4) and np.array_equal(there.valid_n, here.valid_n)
    assert [(h.id, h.window) for h in there.top] == [(h.id, h.window) for h in here.top]
    assert there.device == "dask cluster, 2 workers"
    assert seen[-1] == (15, 15) and len(seen) == 3, seen


def test_cluster_search_of_a_cache_at_a_url(cache, client):
    """Workers open a cache opened from an fsspec URL by that URL (file:// here, s3:// alike)."""
    from featurelens.caches import open_cache

    at_url = open_cache(Path(cache.where).as_uri())
    feats_hwc = np.asarray(at_url.features("stage7")[2], np.float32)
    query = query_from_features(feats_hwc, box_mask(MASKS["2x2 box"], feats_hwc.shape[:2]), model=at_url.model_name,
                                layer="stage7", image_index=2)
    there, here = search_on_cluster(at_url, query, client, top_k=5), search(cache, query, top_k=5)
    assert at_url.where.startswith("file://") and [h.id for h in there.top] == [h.id for h in here.top]


def test_cluster_search_refuses_a_mismatched_query(cache, client):
    from featurelens.search import SearchMismatchError

    feats_hwc = np.asarray(cache.features("stage7")[0], np.float32)
    query = query_from_features(feats_hwc, box_mask((0, 0, 0.5, 0.5), (7, 7)), model="efficientnet_lite2.in1k",
                                layer="stage7")
    with pytest.raises(SearchMismatchError, match="efficientnet_lite2"):
        search_on_cluster(cache, query, client)


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(CacheError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s.*running"):
        connect_scheduler("tcp://127.0.0.1:9", timeout_s=1)


def test_the_same_query_twice_in_a_row(cache, client):
    """A repeated query must not reuse a scattered query that the first search is releasing."""
    feats_hwc = np.asarray(cache.features("stage7")[2], np.float32)
    query = query_from_features(feats_hwc, box_mask((0.2, 0.2, 0.5, 0.5), (7, 7)), model=cache.model_name,
                                layer="stage7", image_index=2)
    first, second = (search_on_cluster(cache, query, client, tasks=5) for _ in range(2))
    assert [h.id for h in first.top] == [h.id for h in second.top]
