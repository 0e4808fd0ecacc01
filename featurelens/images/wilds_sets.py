"""WILDS datasets (Koh et al., 2021) as cacheable images: the camera location of iWildCam (or
any WILDS metadata field) becomes the ``domain`` column, the class index the ``label``.

The ``wilds`` package downloads and reads the data (``pip install wilds``); it is imported only
when a WILDS set is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

__all__ = ["WildsImage", "wilds_images"]


@dataclass(frozen=True)
class WildsImage:
    """One image of a WILDS dataset (loaded lazily through the dataset object)."""

    dataset: Any = None
    index: int = 0
    id: str = ""
    source: str = ""
    caption: str = ""
    license: str = ""

    def load(self) -> Image.Image:
        return self.dataset.get_input(self.index).convert("RGB")


def _field(dataset: Any, name: str) -> list:
    fields = list(dataset.metadata_fields)
    if name not in fields:
        raise ValueError(f"WILDS dataset {dataset.dataset_name!r} has no metadata field {name!r}; it has {fields}")
    return dataset.metadata_array[:, fields.index(name)].tolist()


def wilds_images(dataset: str, root_dir: str | Path, *, split: str = "train", domain_field: str = "location",
                 max_images: int | None = None, download: bool = False) -> tuple[tuple[WildsImage, ...], pd.DataFrame]:
    """The images of one split of a WILDS dataset and their metadata table.

    Args:
        dataset: a WILDS name, e.g. ``"iwildcam"``.
        root_dir: where WILDS keeps (or downloads) its folders.
        split: ``"train"``, ``"val"``, ``"test"``, … (as the dataset defines them).
        domain_field: the metadata field used as ``domain`` (``location``: the camera trap).
        max_images: keep the first ``max_images`` images of the split (default all).
        download: let WILDS download the dataset if it is not in ``root_dir``.

    Returns:
        ``(images, table)``: the table has ``id, file, source, caption, license, label, domain``
        and one column per WILDS metadata field.

    Raises:
        ImportError: the ``wilds`` package is not installed (the message says how to install it).
        ValueError: unknown split or metadata field.
    """
    try:
        import wilds
    except ImportError as exc:
        raise ImportError("WILDS datasets need the wilds package: pip install wilds") from exc
    data = wilds.get_dataset(dataset=dataset, root_dir=str(root_dir), download=download)
    if split not in data.split_dict:
        raise ValueError(f"{dataset} has no split {split!r}; it has {', '.join(data.split_dict)}")
    indices = [int(i) for i in (data.split_array == data.split_dict[split]).nonzero()[0]][:max_images]
    files = [str(data._input_array[i]) for i in indices]
    domains = _field(data, domain_field)
    images = tuple(WildsImage(data, i, file, f"WILDS {dataset} {split}: {file}", file, "see the WILDS dataset page")
                   for i, file in zip(indices, files))
    table = pd.DataFrame({"id": files, "file": files, "source": [im.source for im in images], "caption": files,
                          "license": [im.license for im in images],
                          "label": [str(int(data.y_array[i])) for i in indices],
                          "domain": [f"{domain_field} {int(domains[i])}" for i in indices]})
    for field in data.metadata_fields:
        table[field] = [int(v) for v in (_field(data, field)[i] for i in indices)]
    return images, table
