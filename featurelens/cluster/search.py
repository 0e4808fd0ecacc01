"""Region search over a feature cache on a Dask cluster: one task per range of whole chunks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..caches import FeatureCache, is_url, open_cache
from ..search import ComputeDtype, ProgressFn, Query, SearchError, SearchResult, best_windows, check_cache, rank_windows

__all__ = ["search_on_cluster"]

TASKS_PER_WORKER = 4


def _score_range(where: str, query: Query, start: int, stop: int, compute_dtype: ComputeDtype) -> tuple:
    """On a worker: images ``start:stop`` of the cache at ``where`` → ``(best (n,), windows (n, 4))``."""
    cache = open_cache(where)
    scales = cache.feature_scales(query.layer)
    best_n, windows_n4, _ = best_windows(cache.features(query.layer)[start:stop], query,
                                         scale_nhw=None if scales is None else scales[start:stop],
                                         compute_dtype=compute_dtype)
    return best_n, windows_n4


def _ranges(n: int, chunk: int, tasks: int) -> list[tuple[int, int]]:
    """``tasks`` or fewer ranges of whole chunks covering ``0:n``."""
    per_task = max(1, math.ceil(math.ceil(n / chunk) / max(1, tasks))) * chunk
    return [(start, min(n, start + per_task)) for start in range(0, n, per_task)]


def search_on_cluster(cache: FeatureCache, query: Query, client: Any, *, top_k: int = 10,
                      unique_by: str | None = None, include_self: bool = False, exclude: Iterable[int | str] = (),
                      tasks: int | None = None, compute_dtype: ComputeDtype = "float32",
                      progress: ProgressFn | None = None) -> SearchResult:
    """:func:`featurelens.search.search` on a Dask cluster: same arguments, same result.

    Args:
        cache: a cache in a folder (or zip) every worker can read at the same path, or at a URL
            every worker can open (``s3://…``).
        client: a ``distributed.Client`` (e.g. :func:`featurelens.caches.connect_scheduler`).
        tasks: how many tasks (ranges of whole chunks); default 4 per worker.
        progress: called as ``progress(done_images, total_images)`` as tasks finish.
        Other arguments: as in :func:`~featurelens.search.search`.

    Raises:
        SearchError: the cache is not in a folder or zip the workers can open, or as
            :func:`~featurelens.search.search` (SearchMismatchError for another model or layer).
    """
    from distributed import as_completed

    check_cache(cache, query)
    if not (is_url(cache.where) or Path(cache.where).exists()):
        raise SearchError(f"the cache at {cache.where!r} is not a folder or zip on a shared path: "
                           "a cluster search needs a store every worker can open")
    n, chunk = cache.n_images, int(cache.features(query.layer).chunks[0])
    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    ranges = _ranges(n, chunk, tasks or TASKS_PER_WORKER * workers)
    shared_query = client.scatter(query, broadcast=True, hash=False)  # a fresh key: never one being released
    futures = {client.submit(_score_range, cache.where, shared_query, start, stop, compute_dtype, pure=False): (start, stop)
               for start, stop in ranges}
    best_n = np.zeros(n, np.float32)
    windows_n4 = np.zeros((n, 4), np.int32)
    done = 0
    for future in as_completed(futures):
        start, stop = futures[future]
        best_n[start:stop], windows_n4[start:stop] = future.result()
        done += stop - start
        if progress is not None:
            progress(done, n)
    return rank_windows(query, best_n, windows_n4, image_ids=cache.image_ids, metadata=cache.metadata,
                        loaded_n=cache.loaded_n, top_k=top_k, unique_by=unique_by, include_self=include_self,
                        exclude=exclude, device=f"dask cluster, {workers} workers")
