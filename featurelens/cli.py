"""The command line, in one place: ``python -m featurelens models | cache build | cache info``.

The only module of the core that prints. Build (re-running the same command resumes an
interrupted build)::

    python -m featurelens cache build --images photos/ --labels photos/labels.csv \\
        --model efficientnet_lite0 --out photos.zarr
    python -m featurelens cache build --bundled --model efficientnet_lite0 --layers stage3,stage5 --out bundled.zarr
    python -m featurelens cache info photos.zarr
    python -m featurelens cache repair photos.zarr     # recompute damaged chunks from the images' sources

Search (the images whose best region is most like a region of a query image, as in VFS)::

    python -m featurelens search photos.zarr --query cat.jpg --box 0.3,0.2,0.6,0.5 --top-k 10

Share (pack a zip and a catalog entry; install from a catalog, default $FEATURELENS_CACHE_CATALOG)::

    python -m featurelens cache pack photos.zarr --out site/photos.zip --catalog site/catalog.json
    python -m featurelens cache download photos
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
from tqdm import tqdm

from .caches import (CacheError, CacheLockWarning, add_to_catalog, build_cache, cluster_client, image_metadata,
                     install_cache, load_catalog, open_cache, pack_cache, repair_cache)
from .images import GalleryError, GalleryImage, ImageLoadError, bundled_gallery, folder_images, load_image
from .models import (UnknownLayerError, UnknownModelError, WeightsCorruptError, WeightsUnavailableError, get_spec,
                     list_models, load_model, weights_available)
from .search import SearchError, load_mask, parse_box, search_image

__all__ = ["build_parser", "main"]

_USER_ERRORS = (CacheError, GalleryError, UnknownModelError, UnknownLayerError, WeightsUnavailableError,
                WeightsCorruptError)


def _cmd_models(args: argparse.Namespace) -> int:
    for name in list_models(include=args.include):
        spec = get_spec(name)
        where = "offline" if weights_available(name) else "needs download"
        print(f"{name:28s} {where:15s} input {spec.input_hw[0]}×{spec.input_hw[1]}  {spec.description}")
        if not args.brief:
            for layer in spec.layers:
                default = "*" if layer.name in spec.default_layers else " "
                print(f"    {default} {layer.name:12s} {layer.label(spec.input_hw):28s} module {layer.module}")
    if not args.brief:
        print("\n* = in the model's standard layer set (used when --layers is not given)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m featurelens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list every model, whether it works offline, and its layers")
    models.add_argument("--include", default="*", help="glob on model names, e.g. 'efficientnet*'")
    models.add_argument("--brief", action="store_true", help="one line per model, no layers")
    models.set_defaults(func=_cmd_models)
    add_cache_commands(sub)
    _add_search(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def _add_search(sub: argparse._SubParsersAction) -> None:
    search = sub.add_parser("search", help="find the cached images with the region most like a region of a "
                            "query image (Visual Feature Search)",
                            description="Compute the query image's features with the cache's model, then rank "
                            "every cached image by the cosine similarity of its best window to the region.")
    search.add_argument("cache", help="the cache folder (or .zip)")
    search.add_argument("--query", required=True, metavar="IMAGE", help="the query image (any size)")
    region = search.add_mutually_exclusive_group(required=True)
    region.add_argument("--box", metavar="X0,Y0,X1,Y1", help="the region as fractions of the image's width and "
                        "height, e.g. 0.25,0.25,0.75,0.75")
    region.add_argument("--mask", metavar="MASK.png", help="the region as a mask image of the query's size "
                        "(white or opaque = inside; grey levels are partial)")
    search.add_argument("--layer", help="the layer to search (default: the cache's last layer)")
    search.add_argument("--top-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--unique-by", metavar="COLUMN", help="at most one result per value of this metadata column")
    search.add_argument("--columns", help="comma-separated metadata columns to print (default: the label-like ones)")
    search.add_argument("--include-self", action="store_true", help="keep the query image if the cache holds it")
    search.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    search.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    try:
        cache = open_cache(args.cache)
        image = load_image(args.query)
        mask = load_mask(args.mask) if args.mask else None
        box = parse_box(args.box) if args.box else None
        if args.top_k < 1:
            raise SearchError(f"--top-k must be at least 1, got {args.top_k}")
        result = search_image(cache, image, mask_hw=mask, box_xyxy=box, layer=args.layer, image_source=args.query,
                              top_k=args.top_k, unique_by=args.unique_by, include_self=args.include_self,
                              device=args.device)
        table = result.hits_table(columns=args.columns.split(",") if args.columns else None)
    except (*_USER_ERRORS, SearchError, ImageLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (grid_h, grid_w), (_, _, box_h, box_w) = result.grid_hw, result.box
    print(f"{cache.dataset_name}: {int(result.valid_n.sum())} images searched with {cache.model_name} "
          f"layer {result.layer} (grid {grid_h}×{grid_w}, window {box_h}×{box_w})")
    print(table.to_string(index=False) if len(table) else "no images to rank")
    return 0


def add_cache_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cache build`` and ``cache info`` to the ``python -m featurelens`` parser."""
    cache = subparsers.add_parser("cache", help="build and inspect feature caches (Zarr)")
    sub = cache.add_subparsers(dest="cache_command", required=True)
    _add_build(sub)
    info = sub.add_parser("info", help="summarise a cache: dataset, model, layers, shapes, problems")
    info.add_argument("path", help="the cache folder (or .zip)")
    info.add_argument("--verify", action="store_true", help="decode every chunk (slow for big caches); without it "
                      "each chunk only gets a quick check that it is whole")
    info.set_defaults(func=_cmd_info)
    repair = sub.add_parser("repair", help="decode every chunk and recompute the damaged (or unfinished) ones "
                            "from the images' recorded sources",
                            description="Recompute just the damaged chunks of a cache, with the model and batch "
                            "size it was built with, so they hold the same bytes as before the damage.")
    repair.add_argument("path", help="the cache folder")
    repair.add_argument("--images", metavar="DIR", help="folder holding images whose recorded sources are gone "
                        "(matched by id: the path relative to DIR)")
    repair.add_argument("--batch-size", type=int, help="images per forward pass (default: the build's)")
    repair.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    repair.set_defaults(func=_cmd_repair)
    _add_sharing(sub)


def _add_build(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="compute a model's features for a folder of images (resumable)",
                           description="Compute features into a Zarr cache. If the command is interrupted, "
                           "run it again unchanged: finished chunks are kept.")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="folder of images (searched recursively)")
    source.add_argument("--bundled", action="store_true", help="the offline gallery bundled with installed packages")
    build.add_argument("--labels", metavar="CSV", help="CSV with a 'file' column (path relative to --images, "
                       "or file name); its other columns join the metadata table")
    build.add_argument("--model", required=True, help="registry name (see `python -m featurelens models`)")
    build.add_argument("--layers", help="comma-separated layer names (default: the model's standard set)")
    build.add_argument("--out", required=True, metavar="PATH", help="cache folder to create or resume, or an fsspec "
                       "URL (s3://bucket/c.zarr, with s3fs installed)")
    build.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    build.add_argument("--chunk-images", type=int, help="images per stored chunk (default: about 4 MB chunks)")
    build.add_argument("--thumb-size", type=int, default=128, help="thumbnail side in pixels (default 128)")
    build.add_argument("--limit", type=int, help="only the first N images (sorted by path), for quick tries")
    build.add_argument("--name", help="dataset name (default: the folder name, or 'bundled')")
    build.add_argument("--description", default="", help="one line about the dataset")
    build.add_argument("--recipe", help="name of the cache recipe this build follows")
    build.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    cluster = build.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS", help="build on this Dask cluster (e.g. tcp://host:8786); "
                         "--out must be a folder or URL every worker can reach")
    cluster.add_argument("--workers", type=int, metavar="N", help="build on a local Dask cluster of N processes")
    build.add_argument("--repair", action="store_true", help="also decode every chunk of a finished cache and "
                       "recompute the damaged ones")
    build.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        images, root = _images(args)
        labels = _read_labels(args.labels) if args.labels else None
        table = image_metadata(images, root=root, labels=labels)
        model = load_model(args.model, device=args.device)
        with (_build_client(args) as client, _ProgressBar(args.name or _default_name(args)) as report,
              _lock_warnings_printed()):
            cache = build_cache(args.out, images, model, args.layers, dataset_name=args.name or _default_name(args),
                                description=args.description, metadata=table, batch_size=args.batch_size,
                                thumb_size=args.thumb_size, chunk_images=args.chunk_images, recipe=args.recipe,
                                build_command=_command(args), progress=report, client=client, repair=args.repair)
    except _USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for image_id in table.attrs.get("unlabelled", []):
        print(f"warning: no row of {args.labels} matches {image_id!r}; its label columns are empty", file=sys.stderr)
    for image_id, error in cache.skipped.items():
        print(f"warning: skipped {image_id!r} (stored as zeros): {error}", file=sys.stderr)
    print(f"cache ready at {args.out}: {cache.n_images} images, model {cache.model_name}, layers "
          f"{', '.join(cache.layers)}. Inspect it with `python -m featurelens cache info {args.out}`.")
    return 0


def _build_client(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """A Dask client for ``--scheduler``/``--workers`` (see :func:`cluster_client`), else ``None``."""
    if args.scheduler is None and args.workers is None:
        return contextlib.nullcontext()
    return cluster_client(args.scheduler, args.workers, connect_timeout=10.0)


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        cache = open_cache(args.path)
        cache.verify(full=args.verify)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(cache.describe())
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    try:
        images = folder_images(args.images) if args.images else None
        with _ProgressBar(Path(args.path).name, notes=False) as report, _lock_warnings_printed():
            result = repair_cache(args.path, images, batch_size=args.batch_size, device=args.device, progress=report)
    except _USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for bad in result.damaged:
        print(f"repaired {bad.array} images {bad.start}..{bad.stop - 1} (chunk {bad.index}): {bad.reason}",
              file=sys.stderr)
    if result.recomputed:
        chunks = len({bad.index for bad in result.damaged})
        print(f"cache ready at {args.path}: recomputed {result.recomputed} of {result.cache.n_images} images"
              + (f" ({chunks} damaged chunk{'s' if chunks > 1 else ''})." if chunks else " (the build had not finished them)."))
    else:
        print(f"cache ready at {args.path}: every chunk decodes; nothing to repair.")
    return 0


@contextlib.contextmanager
def _lock_warnings_printed() -> Iterator[None]:
    """Print a taken-over build lock as one ``warning:`` line on stderr (other warnings as usual)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheLockWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, CacheLockWarning):
                    print(f"warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _images(args: argparse.Namespace) -> tuple[tuple[GalleryImage, ...], Path | None]:
    """The images to cache and the folder their relative paths start at (None for the bundled set)."""
    if args.limit is not None and args.limit < 1:
        raise CacheError(f"--limit must be at least 1, got {args.limit}")
    if args.bundled:
        images, root = bundled_gallery(), None
        if not images:
            raise GalleryError("no bundled images are installed (scikit-image, scikit-learn, matplotlib); "
                               "use --images DIR")
    else:
        root = Path(args.images).expanduser().resolve()
        images = folder_images(root)
    return images[:args.limit], root


def _default_name(args: argparse.Namespace) -> str:
    return "bundled" if args.bundled else Path(args.images).resolve().name


def _read_labels(path: str) -> pd.DataFrame:
    """The ``--labels`` CSV as a table; unreadable files become a :class:`CacheError`."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CacheError(f"cannot read the labels CSV {path!r} ({type(exc).__name__}: {exc}); "
                         "pass a comma-separated file with a 'file' column") from exc


def _command(args: argparse.Namespace) -> str:
    """The build command line, as quoted in the 'incomplete cache' message."""
    parts = ["python", "-m", "featurelens", "cache", "build"]
    parts += ["--bundled"] if args.bundled else ["--images", args.images]
    options = {"--labels": args.labels, "--model": args.model, "--layers": args.layers, "--out": args.out,
               "--batch-size": args.batch_size, "--chunk-images": args.chunk_images,
               "--thumb-size": args.thumb_size, "--limit": args.limit, "--name": args.name,
               "--description": args.description or None, "--recipe": args.recipe}
    for flag, value in options.items():
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


class _ProgressBar:
    """Context manager giving a ``progress(done, total)`` callback that drives a tqdm bar on stderr."""

    def __init__(self, name: str, *, notes: bool = True):
        self._name = name
        self._notes = notes  # say "resuming" / "already complete" on the first call
        self._bar: tqdm | None = None

    def __enter__(self) -> Callable[[int, int], None]:
        return self._update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, done: int, total: int) -> None:
        if self._bar is None:  # first call: the build knows its size and how much is already done
            self._bar = tqdm(total=total, initial=done, desc=f"cache {self._name}", unit="img",
                             file=sys.stderr, dynamic_ncols=True)
            if not self._notes:
                pass
            elif 0 < done < total:
                self._bar.write(f"resuming: {done} of {total} images are already in the cache", file=sys.stderr)
            elif done == total:
                self._bar.write("the cache is already complete; nothing to compute", file=sys.stderr)
        self._bar.update(done - self._bar.n)


# --- sharing: cache pack | download | catalog ---------------------------------------------


def _add_sharing(sub: argparse._SubParsersAction) -> None:
    pack = sub.add_parser("pack", help="pack a finished cache into one .zip and print its catalog entry")
    pack.add_argument("path", help="the cache folder (or .zip)")
    pack.add_argument("--out", required=True, metavar="ZIP", help="the .zip to write")
    pack.add_argument("--name", help="catalog name (default: the zip's file stem)")
    pack.add_argument("--description", help="one line for the catalog (default: the dataset's description)")
    pack.add_argument("--url", help="the zip's URL in the catalog (default: its path relative to --catalog)")
    pack.add_argument("--catalog", metavar="JSON", help="add the entry to this catalog file (created if missing; "
                      "an entry of the same name is replaced)")
    pack.set_defaults(func=_cmd_pack)
    download = sub.add_parser("download", help="install a cache from a catalog (or a URL) into the caches folder",
                              description="Download a packed cache, check its sha256 and install it as "
                              "<caches folder>/NAME.zarr. The catalog is --catalog, else $FEATURELENS_CACHE_CATALOG, "
                              "else the project's cache_recipes/catalog.json.")
    download.add_argument("source", metavar="NAME|URL", help="a catalog entry's name, or the URL or path of a .zip")
    download.add_argument("--catalog", metavar="PATH|URL", help="catalog file or URL")
    download.add_argument("--name", help="install under this name")
    download.add_argument("--sha256", help="expected checksum when installing from a URL")
    download.add_argument("--into", metavar="DIR", help="caches folder (default: the app's)")
    download.add_argument("--force", action="store_true", help="replace a different cache installed under the name")
    download.set_defaults(func=_cmd_download)
    catalog = sub.add_parser("catalog", help="list the caches a catalog offers")
    catalog.add_argument("--catalog", metavar="PATH|URL", help="catalog file or URL (default as for download)")
    catalog.set_defaults(func=_cmd_catalog)


def _cmd_pack(args: argparse.Namespace) -> int:
    url = args.url
    if url is None and args.catalog:
        url = Path(os.path.relpath(Path(args.out).resolve(), Path(args.catalog).resolve().parent)).as_posix()
    try:
        entry = pack_cache(args.path, args.out, name=args.name, url=url, description=args.description)
        if args.catalog:
            add_to_catalog(args.catalog, entry)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry.model_dump(mode="json"), indent=2))
    where = f"; added to {args.catalog}" if args.catalog else ""
    print(f"packed {args.path} into {args.out} ({entry.size / 2**20:.1f} MB){where}", file=sys.stderr)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    bar: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bar or bar[0].total != (total or None):
            for old in bar:
                old.close()
            bar[:] = [tqdm(total=total or None, unit="B", unit_scale=True, desc=args.source, file=sys.stderr)]
        bar[0].update(done - bar[0].n)

    try:
        installed = install_cache(args.source, catalog=args.catalog, folder=args.into, name=args.name,
                                  sha256=args.sha256, force=args.force, progress=progress)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for old in bar:
            old.close()
    if installed.status == "unchanged":
        print(f"cache {installed.name} is already installed at {installed.path}; nothing changed")
    else:
        print(f"cache {installed.name} {installed.status} at {installed.path} (from {installed.url}). "
              f"Inspect it with `python -m featurelens cache info {installed.path}`.")
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.catalog)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"catalog {catalog.source}: {len(catalog.entries)} cache{'s' if len(catalog.entries) != 1 else ''}")
    if catalog.entries:
        print(catalog.to_frame().drop(columns="url").to_string(index=False))
    return 0
