"""Damaged chunks: found when read (:class:`CheckedArray`), by a full decode (:func:`find_damage`),
or cheaply for the listing (:func:`frame_damage`), and explained with the images and the fix.

Every chunk is one zstd frame with a content checksum (see :mod:`featurelens.caches.format`):
flipped bits fail the checksum and a cut or overwritten chunk fails to decode. The cheap check
walks each frame's block headers without decompressing, which finds cut, empty and overwritten
chunks but not flipped bits; those are found by reads, which this process remembers
(:func:`noted_damage`) so a listing can mark the cache until it is repaired.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.sync import sync

from .errors import CacheCorruptError, CacheError, DamagedChunk
from .format import _MEASURED, _expected_arrays
from .stores import ByteReader, _key_bytes

__all__ = ["CheckedArray", "find_damage", "frame_damage", "noted_damage", "repair_command"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NOTED: dict[str, set[tuple[str, int]]] = {}  # where → {(array path, chunk index)} found damaged by reads
_NOTED_LOCK = threading.Lock()


class CheckedArray(zarr.Array):
    """A read-only cache array (a ``zarr.Array``) whose reads raise :class:`CacheCorruptError`, naming
    the damaged chunks' images and the fix, where zarr would raise a decoder error.

    Reads cost nothing extra; only after a failed read are the chunks it touched decoded one by
    one to tell damage from other errors (a bad index is re-raised unchanged).
    """

    def __init__(self, array: zarr.Array, where: str, image_ids: Sequence[str]):
        super().__init__(array.async_array)
        self._where = where
        self._image_ids = tuple(image_ids)

    def with_config(self, config: Any) -> CheckedArray:
        return CheckedArray(zarr.Array(self.async_array.with_config(config)), self._where, self._image_ids)

    def get_basic_selection(self, selection: Any = Ellipsis, **kwargs: Any) -> Any:
        with self._checked(_rows(selection, self.shape[0])):
            return super().get_basic_selection(selection, **kwargs)

    def get_orthogonal_selection(self, selection: Any, **kwargs: Any) -> Any:
        with self._checked(_rows(selection, self.shape[0])):
            return super().get_orthogonal_selection(selection, **kwargs)

    def get_mask_selection(self, mask: Any, **kwargs: Any) -> Any:
        with self._checked(None):
            return super().get_mask_selection(mask, **kwargs)

    def get_coordinate_selection(self, selection: Any, **kwargs: Any) -> Any:
        with self._checked(None):
            return super().get_coordinate_selection(selection, **kwargs)

    def get_block_selection(self, selection: Any, **kwargs: Any) -> Any:
        blocks = _rows(selection, self.cdata_shape[0])
        step = self.chunks[0]
        rows = None if blocks is None else range(blocks.start * step, min(self.shape[0], blocks.stop * step))
        with self._checked(rows):
            return super().get_block_selection(selection, **kwargs)

    @contextlib.contextmanager
    def _checked(self, rows: range | None) -> Iterator[None]:
        try:
            yield
        except CacheError:
            raise
        except Exception as exc:
            step = self.chunks[0]
            rows = rows if rows is not None and len(rows) else range(self.shape[0])
            damaged = _probe(zarr.Array(self.async_array), range(rows.start // step, -(-rows.stop // step)))
            if not damaged:
                raise
            _note(self._where, damaged)
            raise CacheCorruptError(damage_message(self._where, self._image_ids, damaged), damaged) from exc


def _rows(selection: Any, n: int) -> range | None:
    """The rows (first-axis indices) a selection touches, or None when that is not simple to tell."""
    if isinstance(selection, tuple):
        return _rows(selection[0], n) if selection and selection[0] is not Ellipsis else range(n)
    if selection is Ellipsis:
        return range(n)
    if isinstance(selection, (int, np.integer)):
        i = int(selection) + (n if selection < 0 else 0)
        return range(i, i + 1) if 0 <= i < n else None
    if isinstance(selection, slice):
        picked = range(*selection.indices(n))
        return range(min(picked), max(picked) + 1) if len(picked) else range(0)
    return None


def _chunk_key(array: zarr.Array, index: int) -> str:
    """The store key of chunk ``index`` along the first axis (the only chunked axis in a cache)."""
    return f"{array.path}/{array.metadata.encode_chunk_key((index,) + (0,) * (array.ndim - 1))}"


def _probe(array: zarr.Array, chunks: range | Sequence[int]) -> list[DamagedChunk]:
    """Decode each listed chunk of ``array`` alone; the missing or undecodable ones."""
    step, n = array.chunks[0], array.shape[0]
    damaged = []
    for i in chunks:
        start, stop = i * step, min(n, (i + 1) * step)
        if not sync(array.store.exists(_chunk_key(array, i))):
            damaged.append(DamagedChunk(array.path, i, start, stop, "the chunk is missing"))
            continue
        try:
            array.get_basic_selection(slice(start, stop))
        except Exception as exc:  # decoders raise RuntimeError, ValueError and others
            damaged.append(DamagedChunk(array.path, i, start, stop, f"{type(exc).__name__}: {exc}"))
    return damaged


def _static_paths(attrs: Mapping[str, Any]) -> set[str]:
    """The metadata columns written once at setup, in a single chunk."""
    return {spec["array"] for spec in attrs["metadata"]["columns"] if spec["name"] not in _MEASURED}


def _chunked_paths(attrs: Mapping[str, Any]) -> list[str]:
    """Arrays chunked like the images (their chunk ``i`` holds images ``i*k`` to ``(i+1)*k``)."""
    static = _static_paths(attrs)
    return [path for path in _expected_arrays(attrs) if path not in static]


def find_damage(root: zarr.Group, attrs: Mapping[str, Any], chunks: Sequence[int] | None = None, *,
                static: bool = True) -> list[DamagedChunk]:
    """Decode the image chunks ``chunks`` (default all) of every array, and with ``static`` the
    one-chunk metadata columns; the missing or undecodable chunks (``progress`` chunks included)."""
    k, n = int(attrs["chunk_images"]), int(attrs["n_images"])
    indices = range(-(-n // k)) if chunks is None else chunks
    damaged = []
    for path in _chunked_paths(attrs):
        damaged += _probe(root[path], indices)
    for bad in _probe(root["progress"], indices):  # one element per image chunk
        damaged.append(DamagedChunk("progress", bad.index, bad.index * k, min(n, (bad.index + 1) * k), bad.reason))
    if static:
        for path in sorted(_static_paths(attrs)):
            damaged += _probe(root[path], [0])
    return damaged


def frame_damage(root: zarr.Group, attrs: Mapping[str, Any]) -> list[DamagedChunk]:
    """Cheap check of every stored chunk of a finished cache: present, and a whole zstd frame
    (block headers walked, nothing decompressed). Flipped bits pass; :func:`find_damage` finds them."""
    damaged = []
    for path in [*_expected_arrays(attrs), "progress"]:
        array = root[path]
        if not isinstance(array.metadata.codecs[-1], ZstdCodec):
            continue  # not written by FeatureLens: nothing to check cheaply
        step = array.chunks[0]
        for i in range(array.cdata_shape[0]):
            with _key_bytes(array.store, _chunk_key(array, i)) as found:
                problem = "the chunk is missing" if found is None else _frame_problem(*found)
            if problem:
                rows = step * int(attrs["chunk_images"]) if path == "progress" else step  # progress: 1 per chunk
                damaged.append(DamagedChunk(path, i, i * rows, min(int(attrs["n_images"]), (i + 1) * rows), problem))
    return damaged


def _frame_problem(read: ByteReader, size: int) -> str | None:
    """Why the bytes are not whole zstd frames (None when they are): wrong magic, cut inside a block,
    or bytes left over. Reads only the frame and block headers."""
    pos = 0
    while pos < size:
        head = read(pos, min(size, pos + 18))
        if head[:4] != _ZSTD_MAGIC:
            return f"not a zstd frame at byte {pos} (it starts with {head[:4].hex() or 'nothing'})"
        if len(head) < 6:
            return f"cut off: {size} bytes, inside a frame header"
        descriptor = head[4]
        single = (descriptor >> 5) & 1
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3] + ((1 if single else 0), 2, 4, 8)[descriptor >> 6]
        last = 0
        while not last:
            header = read(pos, pos + 3)
            if len(header) < 3:
                return f"cut off: {size} bytes, where a block header belongs at byte {pos}"
            value = int.from_bytes(header, "little")
            last, kind, block = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                return f"invalid block type at byte {pos}"
            pos += 3 + (1 if kind == 1 else block)
        pos += 4 if (descriptor >> 2) & 1 else 0
        if pos > size:
            return f"cut off: {size} bytes, its zstd frame needs {pos}"
    return None


def damage_message(where: str, image_ids: Sequence[str], damaged: Sequence[DamagedChunk]) -> str:
    """``the cache at … is damaged: <array> images a..b cannot be decoded (chunk i: 'x', 'y'; reason). Repair …``"""
    parts = []
    for bad in damaged[:3]:
        ids = [repr(image_id) for image_id in image_ids[bad.start:min(bad.stop, bad.start + 4)]]
        ids += ["…"] if bad.stop - bad.start > 4 else []
        parts.append(f"{bad.array} images {bad.start}..{bad.stop - 1} cannot be decoded (chunk {bad.index}: "
                     f"{', '.join(ids)}; {bad.reason})")
    more = f"; and {len(damaged) - 3} more chunks" if len(damaged) > 3 else ""
    return (f"the cache at {where} is damaged: {'; '.join(parts)}{more}. Repair it (only the damaged chunks "
            f"are recomputed, from the images' sources) with {repair_command(where)}")


def repair_command(where: str) -> str:
    """How to repair the cache at ``where``: the CLI command for a path, else the function."""
    if where.startswith("the in-memory store") or "(" in where:
        return "`featurelens.caches.repair_cache(store)`"
    return f"`python -m featurelens cache repair {shlex.quote(where)}`"


def _key(where: str) -> str:
    return os.path.realpath(where) if os.path.exists(where) else where


def _note(where: str, damaged: Sequence[DamagedChunk]) -> None:
    """Remember damage found by a read (in this process only: a read never writes to a cache)."""
    with _NOTED_LOCK:
        _NOTED.setdefault(_key(where), set()).update((bad.array, bad.index) for bad in damaged)


def noted_damage(root: zarr.Group, where: str) -> list[DamagedChunk]:
    """Damage that reads in this process found at ``where`` and that is still there (chunks decoded
    again; repaired ones are forgotten)."""
    with _NOTED_LOCK:
        noted = sorted(_NOTED.get(_key(where), ()))
    damaged = []
    for path, index in noted:
        try:
            damaged += _probe(root[path], [index])
        except (KeyError, FileNotFoundError):
            continue
    with _NOTED_LOCK:
        _NOTED[_key(where)] = {(bad.array, bad.index) for bad in damaged}
    return damaged
