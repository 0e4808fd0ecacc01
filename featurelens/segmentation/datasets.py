"""Folders of images with masks, in the common layouts:

- CamVid / generic: ``images/`` + ``masks/`` (or ``labels/``, ``annotations/``), same file stem,
  mask values are class indices (``classes.txt`` names them, line *i* = class *i*);
- FSS-1000: ``support/image/`` + ``support/label/`` (binary masks, 0/1 or 0/255, maybe RGB);
- Pascal VOC: ``JPEGImages/`` + ``SegmentationClass/`` (palette PNGs; 255 is "ignore").

:func:`find_masked_images` lists the pairs; :func:`read_mask` reads one class as a bool mask.
Only folders the caller names are read; nothing here downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..images import IMAGE_EXTENSIONS, load_image

__all__ = ["MaskedImage", "LAYOUTS", "find_masked_images", "masked_folders", "read_mask", "class_names",
           "IGNORE_VALUE"]

LAYOUTS: tuple[tuple[str, str], ...] = (("images", "masks"), ("images", "labels"), ("images", "annotations"),
                                        ("support/image", "support/label"), ("JPEGImages", "SegmentationClass"))
"""``(image folder, mask folder)`` pairs tried, relative to the dataset folder."""
IGNORE_VALUE = 255
"""The "ignore" value of VOC masks, never a class."""


@dataclass(frozen=True)
class MaskedImage:
    """An image file and its mask file (same stem)."""

    id: str
    image_path: Path
    mask_path: Path

    def load_image(self) -> Image.Image:
        """The image as RGB, checked like every image FeatureLens opens (size, truncation):
        raises :class:`~featurelens.images.ImageLoadError` with a sentence for people."""
        return load_image(self.image_path)


def find_masked_images(folder: str | Path) -> list[MaskedImage]:
    """Every image with a mask of the same stem in the first layout of :data:`LAYOUTS` that
    ``folder`` has, sorted by stem. Raises FileNotFoundError naming the layouts it looked for."""
    root = Path(folder)
    for image_dir, mask_dir in LAYOUTS:
        images, masks = root / image_dir, root / mask_dir
        if images.is_dir() and masks.is_dir():
            by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() == ".png"}
            pairs = [MaskedImage(p.stem, p, by_stem[p.stem]) for p in sorted(images.iterdir())
                     if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem in by_stem]
            if pairs:
                return pairs
    looked = ", ".join(f"{a}/ + {b}/" for a, b in LAYOUTS)
    raise FileNotFoundError(f"no images with masks in {root}: expected one of these layouts: {looked}, "
                            "with an image and its PNG mask sharing a file stem")


def read_mask(path: str | Path, value: int | None = None) -> np.ndarray:
    """``(H, W)`` bool: pixels equal to class ``value``, or (``value=None``, a binary mask)
    every non-zero pixel that is not :data:`IGNORE_VALUE` unless the mask is 0/255. RGB masks
    are read from their first channel."""
    array = np.asarray(Image.open(path))
    if array.ndim == 3:
        array = array[..., 0]
    if value is not None:
        return array == value
    if set(np.unique(array).tolist()) <= {0, 255}:
        return array == 255
    return (array > 0) & (array != IGNORE_VALUE)


def class_names(folder: str | Path) -> list[str]:
    """The names in ``classes.txt`` (line *i* = class *i*), or ``[]``."""
    path = Path(folder) / "classes.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def masked_folders(roots: Sequence[str | Path], max_folders: int = 200) -> list[Path]:
    """The folders among ``roots`` and their direct subfolders (at most ``max_folders`` looked
    at) that hold images with masks in one of :data:`LAYOUTS`, sorted by path."""
    found, looked = [], 0
    for root in roots:
        root = Path(root)
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        for folder in candidates:
            looked += 1
            if looked > max_folders:
                return sorted(found)
            if any((folder / image_dir).is_dir() and (folder / mask_dir).is_dir() for image_dir, mask_dir in LAYOUTS):
                try:
                    find_masked_images(folder)
                except (FileNotFoundError, OSError):
                    continue
                found.append(folder)
    return sorted(found)
