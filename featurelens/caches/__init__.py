"""Feature caches: one model's features for a whole image set, in a self-describing Zarr v3 group.

Built once by :func:`build_cache` (or ``python -m featurelens cache build``), opened
read-only by :func:`open_cache`, which refuses a cache built for another model, layer or
preprocessing, naming both values. The format is described in :mod:`featurelens.caches.format`.
Caches travel as zips (:func:`pack_cache`) listed in a JSON catalog (:mod:`featurelens.caches.catalog`)
and are installed from it with :func:`install_cache`. A build can run on a Dask cluster
(:func:`cluster_client`, ``build_cache(..., client=...)``).

Integrity: reads of a damaged chunk raise :class:`CacheCorruptError` naming its images, and
:func:`repair_cache` (``python -m featurelens cache repair PATH``) recomputes just those chunks. One
build per cache at a time (:class:`CacheBusyError` names the running one); :func:`list_caches`
gives each cache a status and never raises.
"""

from .build import build_cache
from .catalog import Catalog, CatalogEntry, CatalogError, add_to_catalog, load_catalog
from .cluster import cluster_client, connect_scheduler
from .attrs import CacheAttrs
from .errors import (CacheAttributesError, CacheBusyError, CacheCorruptError, CacheError, CacheIncompleteError,
                     CacheLockWarning, CacheMismatchError, DamagedChunk)
from .format import CACHE_FORMAT, TARGET_CHUNK_BYTES, CacheImage
from .listing import CacheEntry, CacheStatus, list_caches
from .reader import FeatureCache, open_cache
from .repair import RepairResult, repair_cache
from .sharing import CacheArchiveError, CacheDownloadError, CacheExistsError, InstalledCache, install_cache, pack_cache
from .recipes import ensure_recipe_cache, recipe_cache_path, recipe_images
from .stores import StoreLike, as_store, is_url
from .table import image_metadata

__all__ = [
    "CACHE_FORMAT", "TARGET_CHUNK_BYTES", "CacheCorruptError", "CacheEntry", "CacheError", "CacheImage",
    "CacheIncompleteError", "CacheMismatchError", "FeatureCache", "StoreLike", "as_store", "is_url", "build_cache", "image_metadata",
    "cluster_client", "connect_scheduler", "list_caches", "open_cache", "ensure_recipe_cache", "recipe_cache_path", "recipe_images",
    "Catalog", "CatalogEntry", "CatalogError", "CacheArchiveError", "CacheDownloadError", "CacheExistsError",
    "InstalledCache", "add_to_catalog", "install_cache", "load_catalog", "pack_cache",
    "CacheAttrs", "CacheAttributesError", "CacheBusyError", "CacheLockWarning", "CacheStatus", "DamagedChunk", "RepairResult", "repair_cache",
]
