"""Opening a finished cache read-only (:func:`open_cache`) and reading it (:class:`FeatureCache`)."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import zarr

from zarr.abc.store import Store
from zarr.core.sync import sync

from ..models import FeatureModel, get_spec
from .attrs import validate_attrs
from .errors import CacheCorruptError, CacheError, CacheIncompleteError, CacheMismatchError, DamagedChunk
from .format import _MEMBERS, _expected_arrays, _layer_list, _rebuild_hint
from .integrity import CheckedArray, damage_message, find_damage, frame_damage, noted_damage
from .lock import LOCK_KEY, running_build
from .stores import StoreLike, as_store, _open_group, _where
from .table import _read_table

__all__ = ["FeatureCache", "open_cache"]

def open_cache(store: StoreLike, *, model: FeatureModel | str | None = None,
               layers: Sequence[str] | str | None = None, preprocessing: Mapping[str, Any] | None = None,
               verify: bool = False) -> FeatureCache:
    """Open a finished cache read-only, refusing one that does not match what the caller needs.

    Args:
        store: the cache (see :data:`StoreLike`).
        model: a registry name or :class:`~featurelens.models.FeatureModel`; its name, weights
            hash and preprocessing must equal the cache's.
        layers: layer names (a list or ``"a,b"``) the cache must hold.
        preprocessing: a preprocessing dict the cache's must equal.
        verify: also read and decode every chunk (slow for big caches; the default only checks
            that every chunk is present).

    Raises:
        CacheIncompleteError: the build has not finished; re-run it to resume.
        CacheMismatchError: the cache was built for another model, weights, layer or preprocessing.
        CacheCorruptError: an attribute, array or chunk is missing or unreadable.
        CacheError: no cache at ``store``, or one in an unknown format.
    """
    source = as_store(store, read_only=True)
    where = _where(source)
    try:
        root = _open_group(source, mode="r")
    except FileNotFoundError as exc:
        raise CacheError(f"no FeatureLens cache at {where} (no zarr.json): build one with "
                         f"`python -m featurelens cache build --images DIR --model MODEL --out {where}`") from exc
    attrs = dict(root.attrs)
    if not attrs and _setup_stopped(source):
        raise CacheIncompleteError(_setup_message(source, where))
    validate_attrs(attrs, where)
    _check_complete(root, attrs, where)
    _check_request(attrs, where, model, layers, preprocessing)
    _check_layout(root, attrs, where)
    _check_chunks(root, attrs, where)
    cache = FeatureCache(root, where)
    if verify:
        cache.verify()
    return cache


def _setup_stopped(store: Store) -> bool:
    """True when the store holds only what a build writes before its attributes (an interrupted setup)."""
    names = {name for name in sync(_list_dir(store)) if not name.endswith(".partial")}
    return names <= _MEMBERS | {"zarr.json", LOCK_KEY}


async def _list_dir(store: Store) -> list[str]:
    return [name async for name in store.list_dir("")]


def _setup_message(store: Store, where: str) -> str:
    """Why a cache without attributes is unfinished, and that re-running the build resumes it."""
    owner = running_build(store)
    if owner is not None:
        return (f"the cache at {where} is being set up by a build running now ({owner.describe()}): "
                "wait for it to finish")
    return (f"the cache at {where} is incomplete: its build stopped during setup, before it wrote the cache's "
            "attributes, so nothing was computed yet. Re-run the same build command to resume it (the setup "
            "starts again), or delete the folder")


def _check_complete(root: zarr.Group, attrs: Mapping[str, Any], where: str) -> None:
    """Refuse an unfinished cache, saying how far it got and how to resume."""
    if attrs["complete"] is True:
        return
    n, k = attrs["n_images"], attrs["chunk_images"]
    try:
        done = np.flatnonzero(np.asarray(root["progress"][:]))
    except Exception:
        done = np.array([], dtype=np.int64)
    images = sum(min(n, (i + 1) * k) - i * k for i in done)
    owner = running_build(root.store)
    if owner is not None:
        raise CacheIncompleteError(f"the cache at {where} is incomplete ('complete' is false): it is being built "
                                   f"now by {owner.describe()}, {len(done)} of {-(-n // k)} chunks ({images} of "
                                   f"{n} images) done; wait for the build to finish")
    command = f": {attrs['build_command']}" if attrs.get("build_command") else ""
    raise CacheIncompleteError(
        f"the cache at {where} is incomplete ('complete' is false): its build stopped after {len(done)} of "
        f"{-(-n // k)} chunks ({images} of {n} images). Re-run the same build command to resume it; "
        f"finished chunks are kept{command}")


def _check_request(attrs: Mapping[str, Any], where: str, model: FeatureModel | str | None,
                   layers: Sequence[str] | str | None, preprocessing: Mapping[str, Any] | None) -> None:
    """Refuse a cache whose model, weights, layers or preprocessing differ from the request."""
    if model is not None:
        spec = model.spec if isinstance(model, FeatureModel) else get_spec(model)
        _same(attrs, where, "model", spec.name, f"open it with model={attrs['model']!r} or rebuild with "
              f"{_rebuild_hint(attrs, model=spec.name)}")
        _same(attrs, where, "weights_sha256", spec.weights_sha256, "its features came from other weights; "
              f"rebuild with {_rebuild_hint(attrs, model=spec.name)}")
        _same(attrs, where, "preprocessing", spec.preprocessing, "the model's input transform changed since "
              f"the build; rebuild with {_rebuild_hint(attrs, model=spec.name)}")
    if preprocessing is not None:
        _same(attrs, where, "preprocessing", json.loads(json.dumps(dict(preprocessing))),
              f"rebuild with {_rebuild_hint(attrs)} (the model's preprocessing is used)")
    wanted = _layer_list(layers) or []
    for name in wanted:
        if name not in attrs["layers"]:
            raise CacheMismatchError(
                f"the cache at {where} has no layer {name!r}: it was built with layers "
                f"{', '.join(attrs['layers'])}; pick one of those or rebuild with "
                f"{_rebuild_hint(attrs, layers=','.join(dict.fromkeys([*attrs['layers'], *wanted])))}")


def _same(attrs: Mapping[str, Any], where: str, field: str, asked: Any, fix: str) -> None:
    """Raise :class:`CacheMismatchError` naming ``field`` and both values when they differ."""
    cached = attrs[field]
    if cached != asked:
        detail = ""
        if isinstance(cached, dict) and isinstance(asked, dict):
            keys = [key for key in {**cached, **asked} if cached.get(key) != asked.get(key)]
            detail = " (differs in " + ", ".join(f"{k!r}: {cached.get(k)!r} vs {asked.get(k)!r}" for k in keys) + ")"
        raise CacheMismatchError(f"the cache at {where} was built with {field} {cached!r}, you asked for "
                                 f"{asked!r}{detail}: {fix}")


def _node(root: zarr.Group, path: str, where: str) -> zarr.Array:
    """The array at ``path``; missing or unreadable becomes :class:`CacheCorruptError`."""
    try:
        node = root[path]
    except Exception as exc:
        raise CacheCorruptError(f"the cache at {where} has no readable array {path!r} ({type(exc).__name__}: "
                                f"{exc}): files are missing or damaged; rebuild the cache") from exc
    if not isinstance(node, zarr.Array):
        raise CacheCorruptError(f"the cache at {where} has a group at {path!r} where an array belongs; rebuild it")
    return node


def _check_layout(root: zarr.Group, attrs: Mapping[str, Any], where: str) -> None:
    """Every promised array exists with the promised shape and dtype."""
    for path, (shape, dtype) in _expected_arrays(attrs).items():
        array = _node(root, path, where)
        if array.shape != shape or (dtype is not None and array.dtype != dtype):
            raise CacheCorruptError(f"the cache at {where} has {path} of shape {array.shape} and dtype "
                                    f"{array.dtype}, its attributes promise {shape} {dtype or 'str'}; rebuild it")


def _check_chunks(root: zarr.Group, attrs: Mapping[str, Any], where: str) -> None:
    """Every chunk of every array is stored (a build writes them all, even all-zero ones)."""
    for path in _expected_arrays(attrs):
        array = root[path]
        stored, total = array.nchunks_initialized, array.nchunks
        if stored < total:
            raise CacheCorruptError(f"the cache at {where} is truncated: {path} has {stored} of {total} chunks "
                                    f"(files deleted or an incomplete copy); copy it again or rebuild it with "
                                    f"{_rebuild_hint(attrs)}")


# --- read side --------------------------------------------------------------------------


class FeatureCache:
    """A finished cache opened read-only (use :func:`open_cache`); safe to share between threads.

    ``features(layer)`` is a lazy zarr array ``(N, H, W, C)`` float16 (slice it to read), or int8
    with per-cell ``feature_scales(layer)`` in caches built with ``feature_dtype="int8"``;
    ``thumbnails`` is ``(N, h, w, 3)`` uint8, ``metadata`` a DataFrame with one row per image.
    """

    def __init__(self, root: zarr.Group, where: str):
        self._root = root
        self._attrs = dict(root.attrs)
        self.where = where

    def __repr__(self) -> str:
        return (f"FeatureCache({self.where!r}, model={self.model_name!r}, layers={list(self.layers)}, "
                f"n_images={self.n_images})")

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the root attributes (JSON values)."""
        return copy.deepcopy(self._attrs)

    @property
    def model_name(self) -> str:
        return self._attrs["model"]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self._attrs["layers"])

    @property
    def weights_sha256(self) -> str:
        """sha256 of the weights file the features were computed with ("" when unknown)."""
        return str(self._attrs["weights_sha256"] or "")

    @property
    def feature_dtype(self) -> str:
        """How features are stored: ``"float16"``, or ``"int8"`` with :meth:`feature_scales`."""
        return str(self._attrs["dtype"])

    @property
    def n_images(self) -> int:
        return int(self._attrs["n_images"])

    @property
    def image_ids(self) -> tuple[str, ...]:
        return tuple(self._attrs["image_ids"])

    @property
    def input_hw(self) -> tuple[int, int]:
        return tuple(self._attrs["input_hw"])  # type: ignore[return-value]

    @property
    def dataset_name(self) -> str:
        return self._attrs["dataset"]["name"]

    def layer_shape(self, layer: str) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image's features at ``layer``."""
        return tuple(self._layer(layer)["shape"])  # type: ignore[return-value]

    def layer_stride(self, layer: str) -> int:
        """Input pixels per feature cell at ``layer``."""
        return int(self._layer(layer)["stride"])

    def _layer(self, layer: str) -> dict[str, Any]:
        if layer not in self._attrs["layers"]:
            raise CacheMismatchError(f"the cache at {self.where} has no layer {layer!r}; it holds "
                                     f"{', '.join(self.layers)} (see FeatureCache.layers)")
        return self._attrs["layers"][layer]

    def _array(self, path: str) -> CheckedArray:
        """The array at ``path``, whose reads raise :class:`CacheCorruptError` for a damaged chunk."""
        return CheckedArray(self._root[path], self.where, self.image_ids)

    def features(self, layer: str) -> zarr.Array:
        """``(N, H, W, C)`` feats_nhwc of ``layer`` as stored (lazy; zero rows for skipped images):
        float16, or int8 to multiply by :meth:`feature_scales`. A read that meets a damaged chunk
        raises :class:`CacheCorruptError` naming its images and how to repair it."""
        self._layer(layer)
        return self._array(f"features/{layer}")

    def feature_scales(self, layer: str) -> zarr.Array | None:
        """``(N, H, W)`` float32 scale_nhw of an int8 cache's ``layer`` (feature ≈ int8 × scale of its
        cell), or None for a float16 cache."""
        self._layer(layer)
        return self._array(f"scales/{layer}") if self.feature_dtype == "int8" else None

    @property
    def thumbnails(self) -> zarr.Array:
        """``(N, h, w, 3)`` uint8 thumbnails, the whole image squashed like the model input."""
        return self._array("thumbnails")

    @functools.cached_property
    def _table(self) -> pd.DataFrame:
        return _read_table(self._root, self._attrs, array=self._array)

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per image: ``id, file, source, width, height, …, load_error`` (a fresh copy)."""
        return self._table.copy()

    @property
    def skipped(self) -> dict[str, str]:
        """``{image id: reason}`` for images that could not be loaded (stored as zeros)."""
        return {entry["id"]: entry["error"] for entry in self._attrs.get("skipped", [])}

    @property
    def loaded_n(self) -> np.ndarray:
        """``(N,)`` bool: True where the image was loaded (False rows hold zeros)."""
        return (self._table["load_error"] == "").to_numpy()

    def find_damage(self, *, full: bool = False) -> list[DamagedChunk]:
        """The damaged chunks: cheaply (every chunk a whole zstd frame, plus chunks that reads in
        this process found damaged), or with ``full`` by decoding every chunk."""
        if full:
            return find_damage(self._root, self._attrs)
        found = noted_damage(self._root, self.where) + frame_damage(self._root, self._attrs)
        return list({(bad.array, bad.index): bad for bad in found}.values())

    def verify(self, *, full: bool = True) -> None:
        """Raise :class:`CacheCorruptError` naming the damaged chunks and the fix: found by decoding
        every chunk, or without ``full`` by the cheap check of :meth:`find_damage`."""
        damaged = self.find_damage(full=full)
        if damaged:
            raise CacheCorruptError(damage_message(self.where, self.image_ids, damaged), damaged)

    def describe(self) -> str:
        """A few lines for people: dataset, model, input, layers, thumbnails, metadata, problems."""
        a = self._attrs
        pre, dataset = a["preprocessing"], a["dataset"]
        scales = " with one float32 scale per cell" if a["dtype"] == "int8" else ""
        lines = [
            f"FeatureLens cache (format {a['featurelens_cache_format']}) at {self.where}: complete",
            f"dataset:    {dataset['name']}" + (f" — {dataset['description']}" if dataset["description"] else ""),
            f"images:     {self.n_images} ({len(self.skipped)} could not be loaded and hold zeros)",
            f"model:      {a['model']} (weights sha256 {a['weights_sha256'][:12] or 'unknown'}…)",
            f"input:      {pre.get('resize')} {pre.get('resample')} resize, crop {pre.get('crop')}, "
            f"scaling {pre.get('scaling')}",
            "layers:     " + "; ".join(f"{name} {'×'.join(map(str, e['shape']))} stride {e['stride']}"
                                       for name, e in a["layers"].items()),
            f"storage:    {a['dtype']} {a['layout']}{scales}, {a['chunk_images']} images per chunk",
            f"thumbnails: {a['thumbnail_hw'][0]}×{a['thumbnail_hw'][1]} RGB",
            "metadata:   " + ", ".join(spec["name"] for spec in a["metadata"]["columns"]),
            f"created:    {a['created']}" + (f", completed {a['completed']}" if a.get("completed") else "")
            + (f", recipe {a['recipe']}" if a.get("recipe") else ""),
        ]
        lines += [f"  skipped {image_id}: {error}" for image_id, error in self.skipped.items()]
        return "\n".join(lines)
