"""Building a cache: plan (validate arguments, fix every attribute), create, run chunks, resume.

>>> from zarr.storage import MemoryStore
>>> from featurelens.images import bundled_gallery
>>> from featurelens.models import load_model
>>> model = load_model("efficientnet_lite0", device="cpu")
>>> cache = build_cache(MemoryStore(), bundled_gallery()[:2], model, ["stage5"], dataset_name="demo")
>>> cache.features("stage5").shape, cache.thumbnails.shape
((2, 14, 14, 112), (2, 128, 128, 3))
>>> list(cache.metadata[["id", "width", "height"]].itertuples(index=False, name=None))
[('chelsea', 451, 300), ('coffee', 600, 400)]
"""


from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import zarr
from zarr.abc.store import Store
from zarr.core.sync import sync

from ..models import FeatureModel, UnknownModelError, get_spec, load_model
from ..models.layouts import FEATURES_NHWC, IMAGES_NHWC
from .attrs import validate_attrs
from .chunks import _compute_chunk, _Plan, _writable_arrays, _write_chunk
from .cluster import run_chunk_tasks, worker_model
from .errors import CacheError, CacheMismatchError, DamagedChunk
from .format import (_FEATURE_DTYPES, _IDENTITY, _SCALES_DIMS, _WRITE_CONFIG, CACHE_FORMAT, TARGET_CHUNK_BYTES,
                     CacheImage, _layer_list, _new_array)
from .integrity import _probe, _static_paths, find_damage
from .lock import LOCK_KEY, BuildLock, build_lock
from .reader import FeatureCache, _check_layout, _setup_stopped, open_cache
from .stores import StoreLike, as_store, is_url, _open_group, _where
from .table import _column_values, _metadata_attrs, _static_table, _write_table

__all__ = ["build_cache"]

ProgressFn = Callable[[int, int], None]

def build_cache(store: StoreLike, images: Sequence[CacheImage], model: FeatureModel | str,
                layers: Sequence[str] | str | None = None, *, dataset_name: str, description: str = "",
                metadata: pd.DataFrame | None = None, batch_size: int = 16, thumb_size: int = 128,
                chunk_images: int | None = None, recipe: str | None = None, build_command: str | None = None,
                progress: ProgressFn | None = None, feature_dtype: str = "float16",
                client: Any | None = None, repair: bool = False) -> FeatureCache:
    """Compute ``model``'s features for ``images`` into a cache at ``store``; resume it if started before.

    Args:
        store: where the cache lives (see :data:`StoreLike`); a folder path for a resumable build.
        images: objects with ``.id``, ``.source`` (or ``.path``) and ``.load() -> PIL RGB``.
        model: a :class:`~featurelens.models.FeatureModel` or a registry name.
        layers: layer names (a list or ``"a,b"``); default the model's standard set.
        dataset_name, description, recipe: recorded in the attributes.
        metadata: extra columns, one row per image in ``images`` order (an ``id`` column must
            match); default :func:`image_metadata` of ``images``. ``width``, ``height`` and
            ``load_error`` are measured and added.
        batch_size: images per forward pass (batches never cross a chunk).
        thumb_size: longer side of the thumbnails in pixels.
        chunk_images: images per chunk; default from :data:`TARGET_CHUNK_BYTES`.
        build_command: how the build was started, quoted when an unfinished cache is opened.
        progress: called as ``progress(images_done, n_images)`` after each batch.
        feature_dtype: ``"float16"`` (default), or ``"int8"``: half the bytes, one float32 scale
            per feature vector (``scales/<layer>``, see :func:`~featurelens.search.quantize_int8`);
            search results stay close to float16's (``benchmarks/bench_search.py`` measures how close).
        client: a ``distributed.Client`` (see :func:`~featurelens.caches.cluster_client`): one task per
            unfinished chunk; each worker loads the model by its registry name once (cuda if it has
            one, else cpu) and writes its chunks straight into ``store``, which must then be a folder
            path or an fsspec URL (``s3://…``) every worker can reach. Same resume rules, and the same bytes as without a client
            (on the same device). ``progress`` is called as chunks finish.
        repair: also decode every chunk of a finished cache and recompute the damaged ones (same
            bytes as before the damage, given the same ``batch_size`` and device). An unfinished
            cache's finished chunks are always checked when its build resumes.

    While it runs, the build holds the cache's lock (:mod:`featurelens.caches.lock`); a lock left
    by a build that died is taken over with a warning.

    Returns:
        The finished cache, opened read-only.

    Raises:
        CacheMismatchError: ``store`` holds a cache started with other arguments.
        CacheBusyError: another build of the same cache is running (the message names it).
        CacheError: ``store`` is not empty and not a cache, or the arguments are invalid; with a
            client, also when a task fails or the cluster stops (run again to resume).
    """
    feature_model = load_model(model) if isinstance(model, str) else model
    plan = _plan(images, feature_model, layers, dataset_name=dataset_name, description=description,
                 metadata=metadata, thumb_size=thumb_size, chunk_images=chunk_images, recipe=recipe,
                 build_command=build_command, feature_dtype=feature_dtype, batch_size=batch_size)
    path = _cluster_path(store) if client is not None else None
    target = as_store(store, read_only=False)
    with build_lock(target, _where(target)) as lock:
        root = _root_for_build(target, plan)
        _finish(root, plan, images, feature_model, batch_size, _touching(lock, progress), repair=repair,
                client=client, path=path)
    return open_cache(target, model=feature_model, layers=list(plan.layers))


def _touching(lock: BuildLock, progress: ProgressFn | None) -> ProgressFn:
    """``progress`` that also refreshes the build lock's heartbeat."""
    def report(done: int, total: int) -> None:
        lock.touch()
        if progress is not None:
            progress(done, total)
    return report


def _finish(root: zarr.Group, plan: _Plan, images: Sequence[CacheImage | None], model: FeatureModel,
            batch_size: int, report: ProgressFn, *, repair: bool, client: Any = None, path: str | None = None) -> None:
    """Compute the chunks not done (and the done ones found damaged when checked), then mark the cache
    complete; a finished cache with nothing to recompute is left untouched."""
    complete = bool(root.attrs["complete"])
    todo, _ = _chunks_to_compute(root, plan, verify=repair or not complete)
    n = plan.n_images
    if complete and not todo:
        report(n, n)
        return
    finished = n - sum(stop - start for _, start, stop in todo)
    report(finished, n)
    if path is not None:
        _run_chunks_on_cluster(client, path, plan, images, model, batch_size, report, todo, finished)
    else:
        _run_chunks(root, plan, images, model, batch_size, report, todo, finished)
    _mark_complete(root)


def _chunks_to_compute(root: zarr.Group, plan: _Plan, *,
                       verify: bool) -> tuple[list[tuple[int, int, int]], list[DamagedChunk]]:
    """``(index, start, stop)`` of each chunk not marked done, and with ``verify`` of each done chunk that
    is damaged (damaged one-chunk metadata columns are rewritten from the plan's table); and the damage."""
    done_c = _done_chunks(root, plan)
    redo: set[int] = set()
    damaged: list[DamagedChunk] = []
    if verify:
        damaged = find_damage(root, plan.attrs, np.flatnonzero(done_c).tolist())
        static = _static_paths(plan.attrs)
        _rewrite_static(root, plan, sorted({bad.array for bad in damaged if bad.array in static}))
        redo = {bad.index for bad in damaged if bad.array not in static}
    k, n = plan.chunk_images, plan.n_images
    todo = [(i, i * k, min(n, (i + 1) * k)) for i in sorted(set(np.flatnonzero(~done_c).tolist()) | redo)]
    return todo, damaged


def _done_chunks(root: zarr.Group, plan: _Plan) -> np.ndarray:
    """``(n_chunks,)`` bool: marked done in ``progress`` (a damaged mark counts as not done)."""
    progress = root["progress"]
    try:
        return np.asarray(progress[:]) == 1
    except Exception:  # a damaged progress chunk: read the marks one by one
        bad = {chunk.index for chunk in _probe(progress, range(plan.n_chunks))}
        return np.array([i not in bad and progress[i] == 1 for i in range(plan.n_chunks)], dtype=bool)


def _rewrite_static(root: zarr.Group, plan: _Plan, paths: Sequence[str]) -> None:
    """Write the damaged one-chunk metadata columns ``paths`` again from the plan's table."""
    for spec in plan.attrs["metadata"]["columns"]:
        if spec["array"] not in paths:
            continue
        if spec["name"] not in plan.table.columns:
            raise CacheError(f"the metadata column {spec['name']!r} of the cache at {_where(root.store)} is damaged "
                             "and cannot be derived from the images alone: re-run the cache's original build "
                             f"command with --repair ({plan.attrs.get('build_command') or 'cache build … --repair'})")
        root[spec["array"]].with_config(_WRITE_CONFIG)[:] = _column_values(plan.table[spec["name"]], spec["kind"])


def _positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise CacheError(f"{name} must be a positive integer, got {value!r}")


def _plan(images: Sequence[CacheImage], model: FeatureModel, layers: Sequence[str] | str | None, *,
          dataset_name: str, description: str, metadata: pd.DataFrame | None, thumb_size: int,
          chunk_images: int | None, recipe: str | None, build_command: str | None, feature_dtype: str,
          batch_size: int) -> _Plan:
    """Validate the arguments and fix every attribute of the cache to build."""
    _positive("batch_size", batch_size)
    if feature_dtype not in _FEATURE_DTYPES:
        raise CacheError(f"feature_dtype must be one of {', '.join(map(repr, _FEATURE_DTYPES))}, got {feature_dtype!r}")
    ids = _image_ids(images)
    names = _layer_names(model, layers)
    _positive("thumb_size", thumb_size)
    shapes = {name: _layer_entry(model, name) for name in names}
    thumb_hw = _thumbnail_hw(model.input_hw, thumb_size)
    k = chunk_images if chunk_images is not None else _auto_chunk_images(shapes, thumb_hw, len(ids),
                                                                         _FEATURE_DTYPES[feature_dtype].itemsize)
    _positive("chunk_images", k)
    table = _static_table(images, metadata)
    attrs = {
        "featurelens_cache_format": CACHE_FORMAT, "complete": False,
        "model": model.spec.name, "weights_sha256": model.spec.weights_sha256,
        "preprocessing": model.spec.preprocessing, "input_hw": list(model.input_hw),
        "layers": shapes, "layout": FEATURES_NHWC.name, "dtype": feature_dtype,
        "scale": "per_cell" if feature_dtype == "int8" else 1.0,
        "dataset": {"name": dataset_name, "description": description},
        "n_images": len(ids), "chunk_images": int(min(k, len(ids))), "thumbnail_hw": list(thumb_hw),
        "created": _now(), "completed": None, "recipe": recipe,
        "image_ids": ids, "image_sources": [_source(image) for image in images],
        "metadata": _metadata_attrs(table), "skipped": [], "build_command": build_command,
        "batch_size": int(batch_size),
    }
    return _Plan(attrs=json.loads(json.dumps(attrs)), table=table)


def _image_ids(images: Sequence[CacheImage]) -> list[str]:
    """The images' ids, checked: at least one, each an object with ``id`` and ``load``, no repeats."""
    if len(images) == 0:
        raise CacheError("no images to cache: pass at least one image (e.g. featurelens.images.folder_images(DIR))")
    for image in images:
        if not (hasattr(image, "id") and callable(getattr(image, "load", None))):
            raise CacheError(f"cannot cache {image!r}: images need an .id and a .load() method; "
                             "wrap files with featurelens.images.folder_images(DIR)")
    ids = [str(image.id) for image in images]
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if repeated:
        raise CacheError(f"image ids must be unique, but {', '.join(repeated[:5])} appear more than once")
    return ids


def _source(image: CacheImage) -> str:
    """Where an image came from: its ``path`` if it has one, else its ``source``."""
    return str(getattr(image, "path", None) or getattr(image, "source", ""))



def _layer_names(model: FeatureModel, layers: Sequence[str] | str | None) -> list[str]:
    """The layers to build: the given ones (checked against the model) or the model's standard set."""
    names = _layer_list(layers) or list(model.spec.default_layers)
    for name in names:
        model.layer(name)  # raises UnknownLayerError naming the valid layers and list_layers
    return names


def _layer_entry(model: FeatureModel, name: str) -> dict[str, Any]:
    """``{"shape": [H, W, C], "stride": s}`` of a layer at the model's input size."""
    spec = model.layer(name)
    return {"shape": [*spec.grid_hw(model.input_hw), spec.channels], "stride": spec.stride}


def _thumbnail_hw(input_hw: tuple[int, int], thumb_size: int) -> tuple[int, int]:
    """Thumbnail size with the model input's aspect ratio and longer side ``thumb_size``."""
    h, w = input_hw
    if h >= w:
        return thumb_size, max(1, round(thumb_size * w / h))
    return max(1, round(thumb_size * h / w)), thumb_size


def _auto_chunk_images(shapes: Mapping[str, Mapping[str, Any]], thumb_hw: tuple[int, int], n: int,
                       itemsize: int = 2) -> int:
    """Images per chunk so the largest array's chunk is about :data:`TARGET_CHUNK_BYTES`.

    >>> _auto_chunk_images({"stage2": {"shape": [56, 56, 24]}}, (128, 128), 1000)
    27
    """
    per_image = max([int(np.prod(s["shape"])) * itemsize for s in shapes.values()] + [thumb_hw[0] * thumb_hw[1] * 3])
    return max(1, min(n, TARGET_CHUNK_BYTES // per_image))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _root_for_build(store: Store, plan: _Plan) -> zarr.Group:
    """The group to build into: a new cache, or the same build's unfinished or finished one."""
    try:
        root = _open_group(store, mode="r+")
    except FileNotFoundError:
        root = None
    if root is not None and "featurelens_cache_format" in root.attrs:
        validate_attrs(dict(root.attrs), _where(store))
        _check_same_build(dict(root.attrs), plan.attrs, _where(store))
        if not root.attrs["complete"]:
            _check_layout(root, dict(root.attrs), _where(store))
        return root
    if (root is not None and dict(root.attrs)) or not _setup_stopped(store):
        raise CacheError(f"{_where(store)} is not empty and is not a FeatureLens cache; choose a new "
                         "--out path (or an empty folder) so nothing there is overwritten")
    return _create(store, plan)


def _check_same_build(cached: Mapping[str, Any], asked: Mapping[str, Any], where: str) -> None:
    """Refuse to continue a cache whose identity fields differ from this build's."""
    for field in _IDENTITY:
        if cached.get(field) != asked[field]:
            old, new = cached.get(field), asked[field]
            if field == "layers" and list(old or ()) != list(new):
                old, new = list(old or ()), list(new)
            raise CacheMismatchError(
                f"cannot continue the cache at {where}: it was built with {field} "
                f"{_difference(old, new)}. Re-run with the arguments it was "
                "built with to resume or reuse it, or build into a new --out path (or delete the old cache).")


def _difference(cached: Any, asked: Any) -> str:
    """``"X, this build asks for Y"``, pointing at the first differing item of long lists or dicts."""
    if isinstance(cached, list) and isinstance(asked, list) and len(cached) > 8:
        if len(cached) != len(asked):
            return f"of {len(cached)} entries, this build asks for {len(asked)} entries"
        i = next(i for i, (a, b) in enumerate(zip(cached, asked)) if a != b)
        return f"entry #{i} {cached[i]!r}, this build asks for {asked[i]!r}"
    if isinstance(cached, dict) and isinstance(asked, dict):
        keys = [key for key in {**cached, **asked} if cached.get(key) != asked.get(key)]
        return f"{cached!r}, this build asks for {asked!r} (differs in {', '.join(map(repr, keys))})"
    return f"{cached!r}, this build asks for {asked!r}"


def _create(store: Store, plan: _Plan) -> zarr.Group:
    """Write an empty cache: arrays first, the root attributes last (they mark it as a cache).
    What an interrupted setup left is deleted first; the build lock stays."""
    sync(_delete_all_but(store, LOCK_KEY))
    root = zarr.open_group(store, mode="a", zarr_format=3)
    n, k = plan.n_images, plan.chunk_images
    for name, entry in plan.layers.items():
        _new_array(root, f"features/{name}", (n, *entry["shape"]), plan.stored_dtype, FEATURES_NHWC.dims,
                   k, {"layer": name, "layout": FEATURES_NHWC.name, "dtype": plan.attrs["dtype"],
                       "scale": plan.attrs["scale"], "stride": entry["stride"],
                       "model": plan.attrs["model"], "weights_sha256": plan.attrs["weights_sha256"]})
        if plan.stored_dtype == np.int8:
            _new_array(root, f"scales/{name}", (n, *entry["shape"][:2]), np.float32, _SCALES_DIMS, k,
                       {"layer": name, "meaning": f"feature ≈ features/{name} (int8) × scale, one scale per cell"})
    h, w = plan.attrs["thumbnail_hw"]
    _new_array(root, "thumbnails", (n, h, w, 3), np.uint8, IMAGES_NHWC.dims, k,
               {"layout": IMAGES_NHWC.name, "content": "whole image resized (squashed, bicubic) to thumbnail_hw, "
                "like the model input, so overlays line up with the feature grid"})
    _write_table(root, plan.attrs["metadata"]["columns"], plan.table, n, k)
    _new_array(root, "progress", (plan.n_chunks,), np.uint8, ("chunk",), 1,
               {"meaning": "1 once images [i*chunk_images, (i+1)*chunk_images) are written to every array"})
    root.attrs.update(plan.attrs)
    return root


async def _delete_all_but(store: Store, keep: str) -> None:
    for key in [key async for key in store.list() if key != keep]:
        await store.delete(key)


def _run_chunks(root: zarr.Group, plan: _Plan, images: Sequence[CacheImage | None], model: FeatureModel,
                batch_size: int, report: ProgressFn, todo: Sequence[tuple[int, int, int]], finished: int) -> None:
    """Compute and write the chunks ``todo`` (``(index, start, stop)``) in order, marking each done."""
    arrays = _writable_arrays(root, plan)
    n = plan.n_images
    for i, start, stop in todo:
        chunk = _compute_chunk(list(images[start:stop]), model, plan, batch_size,
                               lambda count, base=finished: report(base + count, n))
        _write_chunk(arrays, slice(start, stop), chunk)
        arrays["progress"][i] = 1  # only now is the chunk done
        finished += stop - start


def _cluster_path(store: StoreLike) -> str:
    """The folder or fsspec URL a cluster build writes to; workers open it themselves."""
    if is_url(store):
        return store
    if isinstance(store, (str, os.PathLike)) and not os.fspath(store).lower().endswith(".zip"):
        return os.path.abspath(os.fspath(store))
    raise CacheError(f"a cluster build needs the cache as a folder path or a URL (s3://…) every worker can reach, "
                     f"got {store!r}")


def _run_chunks_on_cluster(client: Any, path: str, plan: _Plan, images: Sequence[CacheImage | None],
                           model: FeatureModel, batch_size: int, report: ProgressFn,
                           todo: Sequence[tuple[int, int, int]], finished: int) -> None:
    """One task per chunk of ``todo`` (see :func:`_cluster_chunk`), waited for with progress."""
    try:
        get_spec(model.spec.name)
    except UnknownModelError as exc:
        raise CacheError(f"a cluster build loads the model on each worker by its registry name, but "
                         f"{model.spec.name!r} is not registered; register it (featurelens.models.register_model) "
                         "or build without a client") from exc
    slim = {key: plan.attrs[key] for key in ("layers", "dtype", "thumbnail_hw", "n_images", "chunk_images")}
    args = (path, model.spec.name, slim, batch_size, torch.get_num_threads())
    run_chunk_tasks(client, _cluster_chunk, todo, images, args, done=finished, total=plan.n_images, report=report)


def _cluster_chunk(index: int, images: list[CacheImage], path: str, model_name: str, attrs: dict[str, Any],
                   batch_size: int, torch_threads: int) -> int:
    """On a worker: compute chunk ``index`` and write it into the cache folder ``path``, then mark it done
    (with the client's torch thread count, so CPU results round the same as a single-process build)."""
    plan = _Plan(attrs=attrs, table=pd.DataFrame())
    root = _open_group(as_store(path, read_only=False), mode="r+")
    arrays = _writable_arrays(root, plan)
    chunk = _compute_chunk(images, worker_model(model_name, torch_threads), plan, batch_size, lambda count: None)
    start = index * plan.chunk_images
    _write_chunk(arrays, slice(start, start + len(images)), chunk)
    arrays["progress"][index] = 1  # only now is the chunk done
    return len(images)



def _mark_complete(root: zarr.Group) -> None:
    """Set ``complete`` (after the last chunk) and list the images that could not be loaded."""
    ids = root.attrs["image_ids"]
    errors = np.asarray(root["metadata/load_error"][:])
    skipped = [{"id": ids[i], "error": str(errors[i])} for i in np.flatnonzero(errors != "")]
    root.attrs.update({"complete": True, "completed": _now(), "skipped": skipped})

