"""Repairing a cache from its own record: recompute just the damaged (or unfinished) chunks.

The images come from the cache's attributes: each ``image_sources`` entry that is still a
readable file, else the images of the cache's recipe (``bundled`` and ``generated`` recipes),
else those passed in (matched by id). The model is the recorded registry name, the batch size the
recorded one, so the recomputed chunks hold the same bytes as before the damage (on the same
device and torch thread count)::

    python -m featurelens cache repair photos.zarr            # or featurelens.caches.repair_cache("photos.zarr")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import zarr

from ..config import DEFAULT_CACHE_CATALOG
from ..images import GalleryImage
from ..models import FeatureModel, load_model
from .build import ProgressFn, _chunks_to_compute, _mark_complete, _run_chunks, _touching
from .chunks import _Plan
from .errors import CacheError, CacheIncompleteError, DamagedChunk
from .attrs import validate_attrs
from .format import _MEASURED, CacheImage
from .lock import build_lock
from .reader import FeatureCache, _check_layout, _check_request, _setup_message, _setup_stopped, open_cache
from .stores import StoreLike, _open_group, _where, as_store

__all__ = ["RepairResult", "repair_cache"]

_DEFAULT_BATCH_SIZE = 16  # build_cache's default, for caches that did not record theirs


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_cache` did: ``damaged`` chunks found (and recomputed), ``recomputed`` image count."""

    cache: FeatureCache
    damaged: tuple[DamagedChunk, ...]
    recomputed: int


def repair_cache(store: StoreLike, images: Sequence[CacheImage] | None = None, *,
                 model: FeatureModel | str | None = None, batch_size: int | None = None,
                 device: str | None = None, progress: ProgressFn | None = None) -> RepairResult:
    """Decode every chunk of the cache at ``store`` and recompute the damaged ones (and any
    unfinished ones), from the images' recorded sources; then open it.

    Args:
        store: the cache, a folder (see :data:`StoreLike`).
        images: images to use where a recorded source is gone, matched by ``id``.
        model: the model to compute with (default: load the recorded registry name on ``device``).
        batch_size: images per forward pass (default: the recorded one, else 16).
        progress: called as ``progress(images_done, n_images)``.

    Raises:
        CacheError: no cache there, its attributes are invalid, or the images of a damaged chunk
            cannot be found (the message lists them and says how to pass them).
        CacheBusyError: a build of the cache is running.
        CacheMismatchError: ``model`` is not the one the cache was built with.
    """
    target = as_store(store, read_only=False)
    where = _where(target)
    with build_lock(target, where) as lock:
        root = _open_root(target, where)
        attrs = dict(root.attrs)
        plan = _Plan(attrs=attrs, table=_readable_table(root, attrs))
        todo, damaged = _chunks_to_compute(root, plan, verify=True)
        if todo:
            sources = _recorded_images(attrs, todo, images, where)
            feature_model = _model(attrs, where, model, device)
            report = _touching(lock, progress)
            finished = plan.n_images - sum(stop - start for _, start, stop in todo)
            report(finished, plan.n_images)
            _run_chunks(root, plan, sources, feature_model, batch_size or _recorded_batch_size(attrs), report, todo,
                        finished)
        if todo or not attrs["complete"]:
            _mark_complete(root)
    recomputed = sum(stop - start for _, start, stop in todo)
    return RepairResult(open_cache(target), tuple(damaged), recomputed)


def _open_root(store: Any, where: str) -> zarr.Group:
    """The cache's group, with valid attributes and every array in place (else nothing can be repaired)."""
    try:
        root = _open_group(store, mode="r+")
    except FileNotFoundError as exc:
        raise CacheError(f"no FeatureLens cache at {where} (no zarr.json): nothing to repair; build one with "
                         "`python -m featurelens cache build`") from exc
    attrs = dict(root.attrs)
    if not attrs and _setup_stopped(store):
        raise CacheIncompleteError(_setup_message(store, where) + " (a repair needs the attributes the setup writes)")
    validate_attrs(attrs, where)
    _check_layout(root, attrs, where)
    return root


def _readable_table(root: zarr.Group, attrs: Mapping[str, Any]) -> pd.DataFrame:
    """The one-chunk metadata columns that can still be read (a damaged one cannot be re-derived here)."""
    data = {}
    for spec in attrs["metadata"]["columns"]:
        if spec["name"] in _MEASURED:
            continue
        try:
            data[spec["name"]] = np.asarray(root[spec["array"]][:])
        except Exception:  # damaged: _chunks_to_compute explains what to do
            continue
    return pd.DataFrame(data)


def _recorded_images(attrs: Mapping[str, Any], todo: Sequence[tuple[int, int, int]],
                     given: Sequence[CacheImage] | None, where: str) -> list[CacheImage | None]:
    """One entry per cached image: the images of the chunks ``todo`` (None elsewhere)."""
    ids, sources = attrs["image_ids"], attrs["image_sources"]
    by_id = {str(image.id): image for image in given or ()}
    recipe = _recipe_images(attrs.get("recipe")) if not given else {}
    found: list[CacheImage | None] = [None] * len(ids)
    missing = []
    for _, start, stop in todo:
        for i in range(start, stop):
            found[i] = by_id.get(ids[i]) or _file_image(ids[i], sources[i]) or recipe.get(ids[i])
            if found[i] is None:
                missing.append(i)
    if missing:
        listed = ", ".join(f"{ids[i]!r} ({sources[i]})" for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CacheError(f"cannot repair the cache at {where}: {len(missing)} images of the chunks to recompute are "
                         f"no longer at their recorded sources: {listed}{more}. Pass them, matched by id: "
                         f"`python -m featurelens cache repair {where} --images DIR` (ids are paths relative to "
                         "DIR), or repair_cache(store, images=...); else rebuild the cache")
    return found


def _file_image(image_id: str, source: str) -> GalleryImage | None:
    """The image at its recorded path, if that file is still there."""
    try:
        is_file = bool(source) and Path(source).is_file()
    except OSError:
        is_file = False
    return GalleryImage(id=image_id, caption="", source=source, license="", path=source) if is_file else None


def _recipe_images(name: str | None) -> dict[str, CacheImage]:
    """``{id: image}`` of a ``bundled`` or ``generated`` recipe of this project (nothing downloaded)."""
    from ..scenarios import load_recipe
    from .recipes import recipe_images

    path = DEFAULT_CACHE_CATALOG.parent / f"{name}.toml"
    if not name or not path.is_file():
        return {}
    try:
        recipe = load_recipe(path)
        if recipe.kind not in ("bundled", "generated"):
            return {}
        return {str(image.id): image for image in recipe_images(recipe)[0]}
    except Exception:  # an unusable recipe only means fewer images to repair from
        return {}


def _model(attrs: Mapping[str, Any], where: str, model: FeatureModel | str | None, device: str | None) -> FeatureModel:
    """The model the cache was built with (its weights and preprocessing checked)."""
    feature_model = model if isinstance(model, FeatureModel) else load_model(model or attrs["model"], device=device)
    _check_request(attrs, where, feature_model, None, None)
    return feature_model


def _recorded_batch_size(attrs: Mapping[str, Any]) -> int:
    """The build's batch size: recorded, else from its command line, else the build's default."""
    if attrs.get("batch_size"):
        return int(attrs["batch_size"])
    match = re.search(r"--batch-size[ =](\d+)", attrs.get("build_command") or "")
    return int(match.group(1)) if match else _DEFAULT_BATCH_SIZE
