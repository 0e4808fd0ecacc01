"""Caches made from recipes: the images a recipe names, and its cache built on first use.

A ``bundled`` or ``generated`` recipe needs nothing from the network, so its cache can be
built on the machine the first time a page asks for it (with progress), then reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..config import caches_dir, datasets_dir
from ..images import CROPS, DomainImage, bundled_gallery, domain_shift_images, wilds_images
from ..models import FeatureModel
from ..scenarios import CacheRecipe
from .build import ProgressFn, build_cache
from .errors import CacheError, CacheIncompleteError
from .format import CacheImage
from .reader import FeatureCache, open_cache
from .table import image_metadata

__all__ = ["ensure_recipe_cache", "recipe_cache_path", "recipe_images"]


def recipe_images(recipe: CacheRecipe, images_folder: str | Path | None = None,
                  ) -> tuple[tuple[CacheImage, ...], pd.DataFrame]:
    """The images of a ``bundled``, ``generated``, ``wilds``, ``medmnist`` or ``nih`` recipe and their
    metadata table (``wilds`` and ``medmnist`` recipes download their dataset into
    :func:`~featurelens.config.datasets_dir` first; a ``nih`` recipe reads ``images_folder``, a
    folder of NIH ChestX-ray14 PNGs, see :func:`featurelens.xray.nih_images`).

    Generated images get the columns ``domain``, ``source_photo`` and ``crop``, and ``label``
    is the source photo (the "class" a match should share).
    """
    if recipe.kind in ("nih", "medmnist"):
        return _xray_images(recipe, images_folder)
    if recipe.kind == "bundled":
        images = bundled_gallery()
        return images, image_metadata(images)
    if recipe.kind == "generated":
        generated = domain_shift_images(crops=CROPS[:recipe.crops], domains=recipe.domains)
        return generated, _domain_table(generated)
    if recipe.kind == "wilds":
        return wilds_images(recipe.dataset, datasets_dir(), split=recipe.split, max_images=recipe.max_images or None,
                            download=True)
    raise CacheError(f"recipe {recipe.name!r} is a {recipe.kind} recipe: its images are not on this machine; "
                     f"build its cache with `python -m featurelens cache build` or install it with "
                     f"`python -m featurelens cache download`")


def _xray_images(recipe: CacheRecipe, images_folder: str | Path | None) -> tuple[tuple[CacheImage, ...], pd.DataFrame]:
    from ..images import GalleryError
    from ..models.weights import download_failure_reason
    from ..xray import ChestMnistError, NihDataError, chestmnist_images, nih_images

    try:
        if recipe.kind == "medmnist":
            return chestmnist_images(datasets_dir() / "medmnist", split=recipe.split, size=recipe.size,
                                     max_images=recipe.max_images or None, why_failed=download_failure_reason)
        if images_folder is None:
            raise CacheError(f"recipe {recipe.name!r} reads a folder of NIH ChestX-ray14 PNGs: pass that folder as "
                             "images_folder (the Chest X-ray page's “Build from a folder” does this)")
        return nih_images(images_folder, max_images=recipe.max_images or None)
    except (ChestMnistError, NihDataError, GalleryError) as exc:
        raise CacheError(str(exc)) from exc


def _domain_table(images: Sequence[DomainImage]) -> pd.DataFrame:
    table = image_metadata(images)
    table["domain"] = [image.domain for image in images]
    table["source_photo"] = [image.source_photo for image in images]
    table["crop"] = [image.crop.name for image in images]
    table["label"] = table["source_photo"]
    return table


def recipe_cache_path(recipe: CacheRecipe, model_name: str, folder: str | Path | None = None) -> Path:
    """Where the recipe's cache for ``model_name`` lives: ``<caches dir>/<recipe>-<model>.zarr``."""
    return Path(folder or caches_dir()) / f"{recipe.name}-{model_name}.zarr"


def ensure_recipe_cache(recipe: CacheRecipe, model: FeatureModel, layers: Sequence[str] | None = None, *,
                        folder: str | Path | None = None, progress: ProgressFn | None = None,
                        images_folder: str | Path | None = None) -> FeatureCache:
    """Open the recipe's cache for ``model``; build it first if it is missing or unfinished
    (an interrupted build resumes). ``layers`` default to the recipe's, else the model's defaults.
    ``images_folder``: the images of a ``nih`` recipe (see :func:`recipe_images`).

    Raises:
        CacheError: a recipe whose images are not on this machine, or a cache that cannot be built.
    """
    layers = list(layers or recipe.layers or model.spec.default_layers)
    path = recipe_cache_path(recipe, model.name, folder)
    if (path / "zarr.json").exists():
        try:
            return open_cache(path, model=model, layers=layers)
        except CacheIncompleteError:
            pass
    images, table = recipe_images(recipe, images_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    return build_cache(path, images, model, layers, dataset_name=recipe.name, description=recipe.description,
                       metadata=table, recipe=recipe.name, progress=progress)
