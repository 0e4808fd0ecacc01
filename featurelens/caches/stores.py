"""Stores: the one place where store-likes (a folder, a .zip, a dict, a zarr Store) become zarr stores."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Callable, Iterator

import zarr
from zarr.abc.store import RangeByteRequest, Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, MemoryStore, ZipStore

from .errors import CacheAttributesError, CacheError

__all__ = ["StoreLike", "as_store", "is_url"]

StoreLike = str | os.PathLike | Store | dict
"""A directory path, a ``.zip`` path (read only), a URL that fsspec opens (``s3://bucket/c.zarr``,
``gs://…``, ``file:///shared/c.zarr``), a ``dict`` (in memory) or any zarr ``Store``."""

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]+://")  # two letters at least: "C://" stays a Windows path


def is_url(store: StoreLike) -> bool:
    """Whether ``store`` is a URL for fsspec rather than a local path."""
    return isinstance(store, str) and _URL.match(store) is not None


def _fsspec_store(url: str, read_only: bool) -> Store:
    """The store fsspec opens for ``url`` (its filesystem package, e.g. s3fs, must be installed;
    credentials come from that package's usual environment and config)."""
    options = {"auto_mkdir": True} if url.startswith(("file://", "local://")) else None  # object stores have no folders
    try:
        return FsspecStore.from_url(url, storage_options=options, read_only=read_only)
    except (ImportError, ValueError) as exc:
        raise CacheError(f"cannot open {url!r} through fsspec ({type(exc).__name__}: {exc}); install the package "
                         "for its scheme (e.g. s3fs for s3://, gcsfs for gs://) or use a folder path") from exc


def as_store(store: StoreLike, *, read_only: bool) -> Store:
    """Turn a store-like into a zarr ``Store`` (read-only when asked)."""
    if isinstance(store, Store):
        return store.with_read_only(True) if read_only and not store.read_only else store
    if isinstance(store, dict):
        return MemoryStore(store, read_only=read_only)
    if is_url(store):
        return _fsspec_store(store, read_only)
    if isinstance(store, (str, os.PathLike)):
        path = os.fspath(store)
        if path.lower().endswith(".zip"):
            if not read_only:
                raise CacheError(f"cannot build into the zip file {path!r}: zip entries cannot be replaced, "
                                 "so a build could not resume. Build into a folder, then zip its contents.")
            return ZipStore(path, mode="r", read_only=True)
        return LocalStore(path, read_only=read_only)
    raise TypeError(f"expected a path, a dict or a zarr Store for the cache, got {type(store).__name__}")


def _close(store: Store) -> None:
    """Close a store made by :func:`as_store`; a zip that failed to open holds no file to close."""
    try:
        store.close()
    except AttributeError:  # ZipStore.close on a file that was never opened (not a zip)
        pass


def _where(store: Store) -> str:
    """How messages name a store: its folder, file or URL, else its repr."""
    if isinstance(store, FsspecStore):
        protocol = store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]
        return f"{protocol}://{store.path}"
    for attr in ("root", "path"):
        value = getattr(store, attr, None)
        if isinstance(value, (str, Path)):
            return str(value)
    return "the in-memory store" if isinstance(store, MemoryStore) else repr(store)


def _open_group(store: Store, mode: str) -> zarr.Group:
    """The root group; a missing or unreadable ``zarr.json`` becomes a :class:`CacheError`."""
    try:
        return zarr.open_group(store, mode=mode, zarr_format=3)
    except FileNotFoundError:  # includes zarr's GroupNotFoundError
        raise
    except Exception as exc:  # zarr raises JSON, value and key errors for a damaged zarr.json
        raise CacheAttributesError(f"the zarr.json at {_where(store)} cannot be read ({type(exc).__name__}: "
                                f"{exc}): the cache is damaged; delete it and build it again") from exc



ByteReader = Callable[[int, int], bytes]
"""``read(start, stop)`` → bytes ``start:stop`` of one stored value."""


@contextlib.contextmanager
def _key_bytes(store: Store, key: str) -> Iterator[tuple[ByteReader, int] | None]:
    """``(read, size)`` for the value at ``key`` without reading all of it, or None when it is missing.

    A folder's files are read with plain seeks (many small reads stay cheap); other stores use
    the store's ranged reads.
    """
    if isinstance(store, LocalStore):
        try:
            handle = open(Path(store.root) / key, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            yield None
            return
        with handle:
            def read_file(start: int, stop: int) -> bytes:
                handle.seek(start)
                return handle.read(stop - start)

            yield read_file, os.fstat(handle.fileno()).st_size
        return
    try:
        size = sync(store.getsize(key))
    except (FileNotFoundError, KeyError):
        yield None
        return
    prototype = default_buffer_prototype()

    def read_store(start: int, stop: int) -> bytes:
        buffer = sync(store.get(key, prototype=prototype, byte_range=RangeByteRequest(start, stop)))
        return b"" if buffer is None else buffer.to_bytes()

    yield read_store, size
