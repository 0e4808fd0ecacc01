"""What caches exist in a folder (default: the app's caches folder, :func:`featurelens.config.caches_dir`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import caches_dir
from .errors import CacheError
from .reader import open_cache

__all__ = ["CacheEntry", "list_caches"]


@dataclass(frozen=True)
class CacheEntry:
    """One ``*.zarr`` cache in a folder: ``ready`` if it opens as complete, else ``problem`` says why."""

    name: str
    path: Path
    ready: bool
    summary: str
    problem: str = ""


def list_caches(folder: str | Path | None = None) -> list[CacheEntry]:
    """Every ``*.zarr`` cache in ``folder`` (default :func:`caches_dir`), sorted by name."""
    folder = Path(folder) if folder else caches_dir()
    entries = []
    for path in sorted(folder.glob("*.zarr")) if folder.is_dir() else []:
        try:
            entries.append(CacheEntry(path.stem, path, True, open_cache(path).describe()))
        except CacheError as exc:
            entries.append(CacheEntry(path.stem, path, False, "", str(exc)))
    return entries
