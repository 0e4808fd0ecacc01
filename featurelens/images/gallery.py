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
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .loading import load_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "GalleryError",
    "GalleryImage",
    "UnknownImageIdError",
    "bundled_gallery",
    "folder_images",
    "get_gallery_image",
    "upload_to_image",
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


def folder_images(folder: str | Path, *, recursive: bool = True) -> tuple[GalleryImage, ...]:
    """The images in a plain folder, sorted by relative path.

    Files whose suffix (any case) is in :data:`IMAGE_EXTENSIONS` are listed; hidden
    files (names starting with ``.``) are skipped. Ids are POSIX paths relative to
    ``folder`` (``"cats/tabby.jpg"``), captions are file stems, sources are the
    paths and licenses are ``"unknown"``. Nothing is decoded here.

    Raises:
        GalleryError: the folder does not exist, is not a folder, or has no images.
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise GalleryError(f"image folder {str(root)!r} {what}; pass the path of a folder "
                           f"that holds image files")
    candidates = root.rglob("*") if recursive else root.iterdir()
    paths = sorted((path for path in candidates if _is_image_file(path, root)),
                   key=lambda path: path.relative_to(root).as_posix())
    if not paths:
        scope = "or its subfolders " if recursive else ""
        raise GalleryError(
            f"no image files in {str(root)!r} {scope}(looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add images or pick another folder")
    return tuple(GalleryImage(id=path.relative_to(root).as_posix(), caption=path.stem,
                              source=str(path), license="unknown", path=str(path))
                 for path in paths)


def _is_image_file(path: Path, root: Path) -> bool:
    """True for a visible file with an image suffix (no hidden folder on the way)."""
    parts = path.relative_to(root).parts
    return (path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
            and not any(part.startswith(".") for part in parts))


def upload_to_image(name: str, data: bytes) -> Image.Image:
    """Decode an uploaded file's bytes as an ``RGB`` PIL image.

    Raises:
        featurelens.images.loading.ImageLoadError: naming ``name`` and what to do.

    >>> upload_to_image("notes.jpg", b"not an image")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    featurelens.images.loading.ImageLoadError: 'notes.jpg' is not an image Pillow can read ...
    """
    return load_image(data, name=name)
