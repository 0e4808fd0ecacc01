"""What caches exist in a folder (default: the app's caches folder, :func:`featurelens.config.caches_dir`):
``*.zarr`` folders and ``*.zip`` caches (opened in place)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import caches_dir
from .errors import CacheError
from .reader import open_cache
from .stores import _close, as_store

__all__ = ["CacheEntry", "list_caches"]


@dataclass(frozen=True)
class CacheEntry:
    """One ``*.zarr`` or ``*.zip`` cache in a folder: ``ready`` if it opens as complete, else ``problem`` says why.
    ``name`` is the folder's stem, or the zip's file name (``lab1.zip``)."""

    name: str
    path: Path
    ready: bool
    summary: str
    problem: str = ""


def list_caches(folder: str | Path | None = None) -> list[CacheEntry]:
    """Every ``*.zarr`` and ``*.zip`` cache in ``folder`` (default :func:`caches_dir`), sorted by name."""
    folder = Path(folder) if folder else caches_dir()
    paths = [*folder.glob("*.zarr"), *folder.glob("*.zip")] if folder.is_dir() else []
    entries = [_entry(path) for path in paths]
    return sorted(entries, key=lambda entry: entry.name)


def _entry(path: Path) -> CacheEntry:
    name = path.name if path.suffix == ".zip" else path.stem
    store = as_store(path, read_only=True)
    try:
        return CacheEntry(name, path, True, open_cache(store).describe())
    except CacheError as exc:
        return CacheEntry(name, path, False, "", str(exc))
    finally:
        _close(store)
