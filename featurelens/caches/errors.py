"""Errors of feature caches: each message names the field or file and says what to do."""

from __future__ import annotations

__all__ = ["CacheError", "CacheIncompleteError", "CacheMismatchError", "CacheCorruptError"]


class CacheError(ValueError):
    """A cache cannot be built or opened; the message names the field and what to do."""


class CacheIncompleteError(CacheError):
    """The cache's build stopped before its last chunk; re-running the build resumes it."""


class CacheMismatchError(CacheError):
    """The cache was built with another model, weights, layer, preprocessing or image set."""


class CacheCorruptError(CacheError):
    """The cache's files are missing, truncated or unreadable; rebuild it."""

