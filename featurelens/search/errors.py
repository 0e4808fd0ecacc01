"""Errors raised by region search; each message says what went wrong and what to do."""

from __future__ import annotations

__all__ = ["SearchCancelled", "SearchError", "SearchMismatchError"]


class SearchError(ValueError):
    """A search request that cannot be answered: empty mask, zero query, bad arguments."""


class SearchMismatchError(SearchError):
    """The query and the features searched do not belong together (model, layer or grid shape)."""


class SearchCancelled(Exception):
    """The caller's ``cancel`` event was set; the search stopped between two blocks of images."""
