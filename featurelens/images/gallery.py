"""Image galleries: real photos bundled with installed packages, plain folders, uploads.

:func:`bundled_gallery` lists photos that ship inside scikit-image
(``skimage/data``), scikit-learn (``sklearn/datasets/images``) and matplotlib
(``mpl-data/sample_data``), so the app works offline with nothing to download.
Package folders are found from the installed packages (without importing them);
files missing from this install are skipped. Each entry records where it came from
and its license.

>>> [image.id for image in bundled_gallery()[:2]]
['chelsea', 'coffee']
>>> get_gallery_image("chelsea").load().size
(451, 300)
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image

from .loading import load_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "GalleryError",
    "GalleryImage",
    "UPLOAD_MAX_SIDE",
    "UnknownImageIdError",
    "UploadedImage",
    "bundled_gallery",
    "folder_images",
    "get_gallery_image",
    "upload_to_image",
    "uploaded_images",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""File suffixes (lower case) that :func:`folder_images` treats as images."""


class GalleryError(ValueError):
    """A gallery could not be built (missing folder, no images, unknown id)."""


class UnknownImageIdError(GalleryError, KeyError):
    """:func:`get_gallery_image` was asked for an id the gallery does not have."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class GalleryImage:
    """One gallery picture: a stable id, a caption, provenance and a file path."""

    id: str
    caption: str
    source: str
    license: str
    path: str

    def load(self) -> Image.Image:
        """Decode the file as an ``RGB`` PIL image (see :func:`featurelens.images.load_image`)."""
        return load_image(self.path, name=f"{self.id} ({self.path})")


@dataclass(frozen=True)
class UploadedImage:
    """An image a visitor uploaded, kept as its encoded bytes until :meth:`load` (fits
    :class:`~featurelens.caches.CacheImage`): ``id`` is the file name, ``source`` says "upload"."""

    id: str
    data: bytes = field(repr=False)

    @property
    def source(self) -> str:
        return f"upload:{self.id}"

    def load(self) -> Image.Image:
        return upload_to_image(self.id, self.data)


def uploaded_images(files: Sequence[tuple[str, bytes]]) -> tuple[UploadedImage, ...]:
    """``(file name, bytes)`` pairs → images with unique ids (a repeated name gets ``~2``, ``~3``).

    >>> [image.id for image in uploaded_images([("a.jpg", b"1"), ("a.jpg", b"2"), ("b.png", b"3")])]
    ['a.jpg', 'a.jpg~2', 'b.png']
    """
    seen: dict[str, int] = {}
    images = []
    for name, data in files:
        name = Path(name).name or "upload"
        seen[name] = seen.get(name, 0) + 1
        images.append(UploadedImage(name if seen[name] == 1 else f"{name}~{seen[name]}", data))
    return tuple(images)


# (id, package, folder inside the package, file name, caption, license).
# Licenses are as stated by each package's data docstrings/README.
_BUNDLED: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("chelsea", "skimage", "data", "chelsea.png", "Chelsea the cat",
     "CC0 (photo: Stefan van der Walt)"),
    ("coffee", "skimage", "data", "coffee.png", "Cup of coffee",
     "CC0 (photo: Rachel Michetti, courtesy of Pikolo Espresso Bar)"),
    ("astronaut", "skimage", "data", "astronaut.png", "Astronaut Eileen Collins",
     "Public domain (NASA)"),
    ("rocket", "skimage", "data", "rocket.jpg", "Falcon 9 rocket launch",
     "Public domain (SpaceX)"),
    ("camera", "skimage", "data", "camera.png", "Photographer with a camera (grayscale)",
     "CC0 (photo: Lav Varshney)"),
    ("coins", "skimage", "data", "coins.png", "Greek coins from Pompeii (grayscale)",
     "No known copyright restrictions (Brooklyn Museum)"),
    ("clock", "skimage", "data", "clock_motion.png", "Motion-blurred wall clock (grayscale)",
     "Public domain (photo: Stefan van der Walt)"),
    ("hubble", "skimage", "data", "hubble_deep_field.jpg", "Hubble eXtreme Deep Field",
     "Public domain (NASA)"),
    ("retina", "skimage", "data", "retina.jpg", "Human retina (fundus photograph)",
     "CC0 1.0 (Mikael Häggström, Wikimedia Commons)"),
    ("ihc", "skimage", "data", "ihc.png", "Stained colonic glands (immunohistochemistry)",
     "No known copyright restrictions (CMMI)"),
    ("brick", "skimage", "data", "brick.png", "Brick wall texture (grayscale)",
     "CC0 (CC0Textures)"),
    ("gravel", "skimage", "data", "gravel.png", "Gravel texture (grayscale)",
     "CC0 (CC0Textures)"),
    ("china", "sklearn", "datasets/images", "china.jpg", "Pagoda at the Summer Palace, Beijing",
     "CC BY 2.0 (Flickr user danielbuechele)"),
    ("flower", "sklearn", "datasets/images", "flower.jpg", "Orange dahlia",
     "CC BY 2.0 (Flickr user vultilion)"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data", "grace_hopper.jpg",
     "Portrait of Grace Hopper",
     "Public domain (U.S. Navy photograph; matplotlib's sample-data README states no license)"),
)


_DISPLAY_NAMES = {"skimage": "scikit-image", "sklearn": "scikit-learn",
                  "matplotlib": "matplotlib"}


@functools.cache
def bundled_gallery() -> tuple[GalleryImage, ...]:
    """The offline gallery: Chelsea the cat, coffee, then the other bundled photos.

    Only files present in this install are listed (a missing package or file is
    skipped). Nothing is decoded here; call :meth:`GalleryImage.load`.
    """
    images = []
    for image_id, package, folder, file_name, caption, license_ in _BUNDLED:
        package_dir = _package_dir(package)
        if package_dir is None:
            continue
        path = package_dir / folder / file_name
        if path.is_file():
            images.append(GalleryImage(
                id=image_id, caption=caption, license=license_, path=str(path),
                source=f"{_DISPLAY_NAMES[package]} data ({package}/{folder}/{file_name})"))
    return tuple(images)


def _package_dir(package: str) -> Path | None:
    """The installed folder of ``package`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def get_gallery_image(image_id: str) -> GalleryImage:
    """The bundled gallery entry called ``image_id``.

    Raises:
        UnknownImageIdError: (a ``KeyError`` and ``ValueError``) naming close matches
            and every valid id.

    >>> get_gallery_image("chelsea").caption
    'Chelsea the cat'
    """
    gallery = bundled_gallery()
    for image in gallery:
        if image.id == image_id:
            return image
    valid = [image.id for image in gallery]
    close = difflib.get_close_matches(str(image_id), valid, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise UnknownImageIdError(
        f"no bundled gallery image with id {image_id!r}; {hint}valid ids: "
        f"{', '.join(valid) or '(none: no bundled images are installed)'} "
        f"(see bundled_gallery())")


MAX_FOLDER_ENTRIES = 200_000
"""How many files and folders :func:`folder_images` looks at before it gives up."""

UPLOAD_MAX_SIDE = 1024
"""Longest side of an uploaded image after :func:`upload_to_image` (twice the display size)."""


def folder_images(folder: str | Path, *, recursive: bool = True,
                  max_entries: int = MAX_FOLDER_ENTRIES, max_seconds: float = 5.0) -> tuple[GalleryImage, ...]:
    """The images in a plain folder, sorted by relative path.

    Files whose suffix (any case) is in :data:`IMAGE_EXTENSIONS` are listed; hidden
    files and folders (names starting with ``.``) are skipped and links to folders are not
    followed. Ids are POSIX paths relative to ``folder`` (``"cats/tabby.jpg"``), captions
    are file stems, sources are the paths and licenses are ``"unknown"``. Nothing is decoded
    here. The walk stops after ``max_entries`` files and folders or ``max_seconds``, so naming
    ``/`` cannot tie up a server.

    Raises:
        GalleryError: the folder does not exist, is not a folder, has no images, or holds
            more than ``max_entries`` entries (or takes longer than ``max_seconds`` to list).
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise GalleryError(f"image folder {str(root)!r} {what}; pass the path of a folder "
                           f"that holds image files")
    paths = sorted(_walk_images(root, recursive, max_entries, max_seconds), key=lambda path: path.relative_to(root).as_posix())
    if not paths:
        scope = "or its subfolders " if recursive else ""
        raise GalleryError(
            f"no image files in {str(root)!r} {scope}(looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add images or pick another folder")
    return tuple(GalleryImage(id=path.relative_to(root).as_posix(), caption=path.stem,
                              source=str(path), license="unknown", path=str(path))
                 for path in paths)


def _walk_images(root: Path, recursive: bool, max_entries: int, max_seconds: float) -> list[Path]:
    found, seen, deadline = [], 0, time.monotonic() + max_seconds
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")] if recursive else []
        seen += len(subfolders) + len(files)
        if seen > max_entries or time.monotonic() > deadline:
            raise GalleryError(f"{str(root)!r} is too large to list here (over {max_entries:,} files and "
                               f"folders, or over {max_seconds:g} s); pick the folder of one image set")
        found += [Path(folder, name) for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
                  and Path(folder, name).is_file()]
    return found


def upload_to_image(name: str, data: bytes, *, max_side: int | None = UPLOAD_MAX_SIDE) -> Image.Image:
    """Decode an uploaded file's bytes as an ``RGB`` PIL image, downscaled at once (aspect kept)
    so its longest side is at most ``max_side``: models see a few hundred pixels and views
    at most :data:`~featurelens.images.loading.DISPLAY_PX`, so a 7000 × 7000 upload never stays
    in memory at full size. ``max_side=None`` keeps the decoded size.

    Raises:
        featurelens.images.loading.ImageLoadError: naming ``name`` and what to do.

    >>> upload_to_image("notes.jpg", b"not an image")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    featurelens.images.loading.ImageLoadError: 'notes.jpg' is not an image Pillow can read ...
    """
    image = load_image(data, name=name)
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image
