"""What caches exist in a folder (default: the app's caches folder, :func:`featurelens.config.caches_dir`):
``*.zarr`` folders and ``*.zip`` caches (opened in place).

Listing never raises for what it finds: each entry has a :attr:`CacheEntry.status` and, unless it
is ready, a :attr:`CacheEntry.problem` saying why and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import caches_dir
from .errors import CacheAttributesError, CacheCorruptError, CacheError, CacheIncompleteError
from .integrity import damage_message
from .reader import FeatureCache, open_cache
from .stores import _close, as_store

__all__ = ["CacheEntry", "CacheStatus", "list_caches"]

CacheStatus = Literal["ready", "incomplete", "damaged", "unreadable"]
"""``ready``: opens and its chunks look whole; ``incomplete``: its build stopped (or runs now) — re-running
it resumes; ``damaged``: chunks or arrays are missing or broken — repair it; ``unreadable``: not a
cache this FeatureLens can read (broken ``zarr.json``, wrong attribute types, another format, not a zip)."""


@dataclass(frozen=True)
class CacheEntry:
    """One ``*.zarr`` or ``*.zip`` in a folder. ``name`` is the folder's stem, or the zip's file name
    (``lab1.zip``); ``summary`` describes the cache when it could be opened (also when damaged);
    ``problem`` is ``""`` when ready, else ``"<status>: <reason and fix>"``."""

    name: str
    path: Path
    status: CacheStatus
    summary: str = ""
    problem: str = ""

    @property
    def ready(self) -> bool:
        """True when the cache opens as complete and no damage was found."""
        return self.status == "ready"


def list_caches(folder: str | Path | None = None) -> list[CacheEntry]:
    """Every ``*.zarr`` and ``*.zip`` in ``folder`` (default :func:`caches_dir`), sorted by name.

    Each is opened (attributes validated, arrays and chunks present) and its chunks get a cheap
    check (every chunk a whole zstd frame, plus chunks that reads in this process found damaged);
    ``python -m featurelens cache info PATH --verify`` decodes everything.
    """
    folder = Path(folder) if folder else caches_dir()
    try:
        paths = [*folder.glob("*.zarr"), *folder.glob("*.zip")] if folder.is_dir() else []
    except OSError:  # an unreadable folder lists nothing
        paths = []
    return sorted((_entry(path) for path in paths), key=lambda entry: entry.name)


def _entry(path: Path) -> CacheEntry:
    name = path.name if path.suffix == ".zip" else path.stem
    try:
        store = as_store(path, read_only=True)
    except Exception as exc:  # never let one folder break the list
        return CacheEntry(name, path, "unreadable", problem=f"unreadable: {_reason(exc)}")
    try:
        return _checked_entry(name, path, open_cache(store))
    except CacheIncompleteError as exc:
        return CacheEntry(name, path, "incomplete", problem=f"incomplete: {exc}")
    except CacheAttributesError as exc:
        return CacheEntry(name, path, "unreadable", problem=f"unreadable: {exc}")
    except CacheCorruptError as exc:
        return CacheEntry(name, path, "damaged", problem=f"damaged: {exc}")
    except Exception as exc:
        return CacheEntry(name, path, "unreadable", problem=f"unreadable: {_reason(exc)}")
    finally:
        _close(store)


def _checked_entry(name: str, path: Path, cache: FeatureCache) -> CacheEntry:
    """A cache that opened: ready, or damaged when the cheap chunk check or this process's reads found damage."""
    summary = cache.describe()
    damaged = cache.find_damage()
    if damaged:
        return CacheEntry(name, path, "damaged", summary,
                          f"damaged: {damage_message(cache.where, cache.image_ids, damaged)}")
    return CacheEntry(name, path, "ready", summary)


def _reason(exc: Exception) -> str:
    """A CacheError's message as it is; other errors with their type (``BadZipFile: File is not a zip file``)."""
    return str(exc) if isinstance(exc, CacheError) else f"{type(exc).__name__}: {exc}"
