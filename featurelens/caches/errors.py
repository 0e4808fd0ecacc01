"""Errors of feature caches: each message names the field or file and says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["CacheError", "CacheIncompleteError", "CacheMismatchError", "CacheCorruptError", "CacheAttributesError",
           "CacheBusyError", "CacheLockWarning", "DamagedChunk"]


class CacheError(ValueError):
    """A cache cannot be built or opened; the message names the field and what to do."""


class CacheIncompleteError(CacheError):
    """The cache's build stopped before its last chunk (or during its setup); re-running the build resumes it."""


class CacheMismatchError(CacheError):
    """The cache was built with another model, weights, layer, preprocessing or image set."""


@dataclass(frozen=True)
class DamagedChunk:
    """One stored chunk that is missing or cannot be decoded: images ``start..stop-1`` of ``array``."""

    array: str   # the array's path in the cache, e.g. "features/stage3"
    index: int   # the chunk's index along the image axis
    start: int   # first image of the chunk
    stop: int    # one past its last image
    reason: str  # the decoder's complaint, e.g. "RuntimeError: Zstd decompression error: invalid input data"


class CacheCorruptError(CacheError):
    """The cache's files are missing, truncated or unreadable; ``damaged`` lists the chunks found
    damaged (empty when the damage is not in a chunk), which ``repair_cache`` recomputes."""

    def __init__(self, message: str, damaged: Sequence[DamagedChunk] = ()):
        super().__init__(message)
        self.damaged: tuple[DamagedChunk, ...] = tuple(damaged)


class CacheAttributesError(CacheCorruptError):
    """The root attributes (``zarr.json``) are missing, unreadable or of the wrong type or range."""


class CacheBusyError(CacheError):
    """Another build (or repair) of the same cache is running: it holds the cache's build lock."""


class CacheLockWarning(UserWarning):
    """A build took over the lock of a build that is no longer running (the message names it)."""
