"""Past one machine: region search on a Dask cluster (``dask.distributed``), with results equal
to the single-process search. Each task scores a range of cache chunks on a worker (which reads
them straight from the shared store) and returns every image's best score and window; the
client merges them into the same :class:`~featurelens.search.SearchResult`.

``dask``/``distributed`` are optional: they are imported only when a cluster is used. Connect
with :func:`featurelens.caches.connect_scheduler` (builds use :func:`featurelens.caches.cluster_client`).
"""

from .search import search_on_cluster

__all__ = ["search_on_cluster"]
