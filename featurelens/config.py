"""Where FeatureLens keeps things, and the environment variables that change it.

This module only knows folders and settings; it imports nothing else from FeatureLens.

| variable | meaning | default |
|---|---|---|
| ``FEATURELENS_HOME`` | root of everything FeatureLens writes | ``~/.cache/featurelens`` |
| ``FEATURELENS_WEIGHTS_MIRROR`` | base URL serving weight files (a classroom server) | unset: the official URLs |
| ``FEATURELENS_CACHE_CATALOG`` | path or URL of the catalog of downloadable caches | the project's ``cache_recipes/catalog.json`` |
| ``FEATURELENS_MODE`` | ``hosted`` for a demo open to anyone: visitors never name server paths | ``local`` |
| ``FEATURELENS_DATA_ROOTS`` | image folders the operator offers (``os.pathsep``-separated) | none |
| ``FEATURELENS_MEMORY_MB`` | bytes the server may keep in decoded images and reports | 1024 |

>>> import os; os.environ["FEATURELENS_HOME"] = "/tmp/fl-doc"
>>> str(caches_dir()), str(weights_dir())
('/tmp/fl-doc/caches', '/tmp/fl-doc/weights')
>>> del os.environ["FEATURELENS_HOME"]
>>> os.environ["FEATURELENS_CACHE_CATALOG"] = "http://lab.local/catalog.json"; cache_catalog()
'http://lab.local/catalog.json'
>>> del os.environ["FEATURELENS_CACHE_CATALOG"]; DEFAULT_CACHE_CATALOG.name
'catalog.json'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_CATALOG_ENV", "DEFAULT_CACHE_CATALOG", "MODE_ENV", "DATA_ROOTS_ENV", "featurelens_home",
           "caches_dir", "weights_dir", "weights_mirror", "cache_catalog", "hosted", "data_roots", "memory_budget_bytes"]

CACHE_CATALOG_ENV = "FEATURELENS_CACHE_CATALOG"
"""The environment variable naming another catalog of downloadable caches (a path or a URL)."""

DEFAULT_CACHE_CATALOG = Path(__file__).resolve().parents[1] / "cache_recipes" / "catalog.json"
"""The project's catalog of downloadable caches (in the source tree, next to the cache recipes)."""


def featurelens_home() -> Path:
    """``$FEATURELENS_HOME`` or ``~/.cache/featurelens``."""
    home = os.environ.get("FEATURELENS_HOME")
    return Path(home) if home else Path.home() / ".cache" / "featurelens"


def caches_dir() -> Path:
    """The folder the app builds feature caches into (``<home>/caches``)."""
    return featurelens_home() / "caches"


DASK_SCHEDULER_ENV = "FEATURELENS_DASK_SCHEDULER"


def dask_scheduler() -> str | None:
    """``$FEATURELENS_DASK_SCHEDULER`` (e.g. ``tcp://10.0.0.5:8786``): the app searches on that
    Dask cluster; None when unset."""
    return os.environ.get(DASK_SCHEDULER_ENV, "").strip() or None


def datasets_dir() -> Path:
    """Where dataset recipes download their images (``<home>/datasets``)."""
    return featurelens_home() / "datasets"


def weights_dir() -> Path:
    """Where downloaded weights live (``<home>/weights``)."""
    return featurelens_home() / "weights"


def weights_mirror() -> str | None:
    """``$FEATURELENS_WEIGHTS_MIRROR`` without a trailing slash, or None."""
    mirror = os.environ.get("FEATURELENS_WEIGHTS_MIRROR", "").strip()
    return mirror.rstrip("/") or None


def cache_catalog() -> str:
    """``$FEATURELENS_CACHE_CATALOG`` (a path or URL) or the project's :data:`DEFAULT_CACHE_CATALOG`."""
    return os.environ.get(CACHE_CATALOG_ENV, "").strip() or str(DEFAULT_CACHE_CATALOG)


MODE_ENV = "FEATURELENS_MODE"
DATA_ROOTS_ENV = "FEATURELENS_DATA_ROOTS"


def hosted() -> bool:
    """True when ``$FEATURELENS_MODE`` is ``hosted``: the app is open to anyone, so visitors
    choose image folders only among :func:`data_roots` and never see server paths.

    >>> os.environ["FEATURELENS_MODE"] = "Hosted"; hosted()
    True
    >>> del os.environ["FEATURELENS_MODE"]; hosted()
    False
    """
    return os.environ.get(MODE_ENV, "").strip().lower() == "hosted"


def visitor_downloads() -> bool:
    """Whether a visitor may start a weights download (up to ~550 MB): always on a course
    machine; in :func:`hosted` mode only when the operator sets ``$FEATURELENS_ALLOW_DOWNLOADS=1``.

    >>> os.environ["FEATURELENS_MODE"] = "hosted"; visitor_downloads()
    False
    >>> os.environ["FEATURELENS_ALLOW_DOWNLOADS"] = "1"; visitor_downloads()
    True
    >>> del os.environ["FEATURELENS_MODE"], os.environ["FEATURELENS_ALLOW_DOWNLOADS"]; visitor_downloads()
    True
    """
    return not hosted() or os.environ.get("FEATURELENS_ALLOW_DOWNLOADS", "").strip() == "1"


def data_roots() -> tuple[Path, ...]:
    """The image folders the operator offers (``$FEATURELENS_DATA_ROOTS``, separated by
    ``os.pathsep``), resolved; those that are not folders are left out.

    >>> os.environ["FEATURELENS_DATA_ROOTS"] = os.pathsep.join(["/tmp", "/no/such/folder"]); data_roots()
    (PosixPath('/tmp'),)
    >>> del os.environ["FEATURELENS_DATA_ROOTS"]; data_roots()
    ()
    """
    text = os.environ.get(DATA_ROOTS_ENV, "")
    roots = (Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part.strip())
    return tuple(dict.fromkeys(root for root in roots if root.is_dir()))


def memory_budget_bytes() -> int:
    """``$FEATURELENS_MEMORY_MB`` (default 1024) in bytes: what the server may keep in decoded
    images and per-image reports, shared by all sessions."""
    text = os.environ.get("FEATURELENS_MEMORY_MB", "").strip()
    return int(float(text) * 2**20) if text else 1024 * 2**20
