"""The command line, in one place: ``python -m featurelens models | cache build | cache info``.

The only module of the core that prints. Build (re-running the same command resumes an
interrupted build)::

    python -m featurelens cache build --images photos/ --labels photos/labels.csv \\
        --model efficientnet_lite0 --out photos.zarr
    python -m featurelens cache build --bundled --model efficientnet_lite0 --layers stage3,stage5 --out bundled.zarr
    python -m featurelens cache info photos.zarr
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from .caches import CacheError, build_cache, image_metadata, open_cache
from .images import GalleryError, GalleryImage, bundled_gallery, folder_images
from .models import (UnknownLayerError, UnknownModelError, WeightsCorruptError, WeightsUnavailableError, get_spec,
                     list_models, load_model, weights_available)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def add_cache_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cache build`` and ``cache info`` to the ``python -m featurelens`` parser."""
    cache = subparsers.add_parser("cache", help="build and inspect feature caches (Zarr)")
    sub = cache.add_subparsers(dest="cache_command", required=True)
    _add_build(sub)
    info = sub.add_parser("info", help="summarise a cache: dataset, model, layers, shapes, problems")
    info.add_argument("path", help="the cache folder (or .zip)")
    info.add_argument("--verify", action="store_true", help="also decode every chunk (slow for big caches)")
    info.set_defaults(func=_cmd_info)


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
    build.add_argument("--out", required=True, metavar="PATH", help="cache folder to create or resume")
    build.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    build.add_argument("--chunk-images", type=int, help="images per stored chunk (default: about 4 MB chunks)")
    build.add_argument("--thumb-size", type=int, default=128, help="thumbnail side in pixels (default 128)")
    build.add_argument("--limit", type=int, help="only the first N images (sorted by path), for quick tries")
    build.add_argument("--name", help="dataset name (default: the folder name, or 'bundled')")
    build.add_argument("--description", default="", help="one line about the dataset")
    build.add_argument("--recipe", help="name of the cache recipe this build follows")
    build.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    build.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        images, root = _images(args)
        labels = _read_labels(args.labels) if args.labels else None
        table = image_metadata(images, root=root, labels=labels)
        model = load_model(args.model, device=args.device)
        with _ProgressBar(args.name or _default_name(args)) as report:
            cache = build_cache(args.out, images, model, args.layers, dataset_name=args.name or _default_name(args),
                                description=args.description, metadata=table, batch_size=args.batch_size,
                                thumb_size=args.thumb_size, chunk_images=args.chunk_images, recipe=args.recipe,
                                build_command=_command(args), progress=report)
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


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        cache = open_cache(args.path, verify=args.verify)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(cache.describe())
    return 0


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

    def __init__(self, name: str):
        self._name = name
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
            if 0 < done < total:
                self._bar.write(f"resuming: {done} of {total} images are already in the cache", file=sys.stderr)
            elif done == total:
                self._bar.write("the cache is already complete; nothing to compute", file=sys.stderr)
        self._bar.update(done - self._bar.n)
