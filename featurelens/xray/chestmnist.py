"""ChestMNIST (MedMNIST v2, Yang et al., Scientific Data 2023): NIH ChestX-ray14 resized to
28–224 px, 14 findings per image, through the ``medmnist`` package, which downloads one
``.npz`` file per size from Zenodo (checked with its MD5) when online.

Findings become boolean columns named as NIH names them (``Cardiomegaly``, ``Pleural_Thickening``,
…), so the same page works on both sets; ChestMNIST has no patient, view, age or sex columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from PIL import Image

__all__ = ["CHESTMNIST_FINDINGS", "ChestMnistError", "ChestMnistImage", "chestmnist_images"]

CHESTMNIST_FINDINGS = {"atelectasis": "Atelectasis", "cardiomegaly": "Cardiomegaly", "effusion": "Effusion",
                       "infiltration": "Infiltration", "mass": "Mass", "nodule": "Nodule", "pneumonia": "Pneumonia",
                       "pneumothorax": "Pneumothorax", "consolidation": "Consolidation", "edema": "Edema",
                       "emphysema": "Emphysema", "fibrosis": "Fibrosis", "pleural": "Pleural_Thickening",
                       "hernia": "Hernia"}
"""MedMNIST's label names → NIH's spelling (the column names)."""


class ChestMnistError(RuntimeError):
    """ChestMNIST could not be downloaded or read; the message says why and what to do."""


@dataclass(frozen=True)
class ChestMnistImage:
    """One ChestMNIST image (a row of the split's image array, decoded on ``load``)."""

    images_nhw: Any = field(repr=False, default=None)
    index: int = 0
    id: str = ""
    source: str = ""
    caption: str = ""
    license: str = "CC BY 4.0 (MedMNIST); images from the NIH Clinical Center ChestX-ray14 set"

    def load(self) -> Image.Image:
        return Image.fromarray(np.asarray(self.images_nhw[self.index], np.uint8)).convert("RGB")


def chestmnist_images(root: str | Path, *, split: str = "test", size: int = 128, max_images: int | None = None,
                      download: bool = True,
                      why_failed: Callable[[BaseException, str], str] | None = None,
                      ) -> tuple[tuple[ChestMnistImage, ...], pd.DataFrame]:
    """The images of one ChestMNIST split and their table (one boolean column per finding).

    Args:
        root: the folder that holds (or receives) ``chestmnist_<size>.npz``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: 28, 64, 128 or 224 pixels.
        max_images: keep the first ``max_images`` images of the split.
        download: let medmnist download the file when it is missing (its URL and MD5 come from
            ``medmnist.INFO``).
        why_failed: turns a download exception and the URL into a plain reason (e.g.
            :func:`featurelens.models.download_failure_reason`).

    Raises:
        ChestMnistError: medmnist is missing, or the download failed (the message says why, and
            how to get the file by hand).
    """
    try:
        import medmnist
    except ImportError as exc:
        raise ChestMnistError("ChestMNIST needs the medmnist package: pip install medmnist (it is in "
                              "requirements.txt)") from exc
    info = medmnist.INFO["chestmnist"]
    flag = "" if size == 28 else f"_{size}"
    url, fname = info[f"url{flag}"], f"chestmnist{flag}.npz"
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        dataset = medmnist.ChestMNIST(split=split, root=str(folder), size=size, download=download, mmap_mode="r")
    except Exception as exc:   # medmnist wraps torchvision's download errors in a bare RuntimeError
        if download:   # a partial, or complete but failing its MD5: never leave it behind
            (folder / fname).unlink(missing_ok=True)
        cause = exc.__cause__ or exc.__context__ or exc
        if "corrupted" in str(cause):   # torchvision: "File not found or corrupted." after the MD5 check
            reason = "the downloaded file fails its MD5 checksum (a damaged or different file), so it was removed"
        else:
            reason = why_failed(cause, url) if why_failed else f"{type(cause).__name__}: {cause}"
        raise ChestMnistError(f"ChestMNIST ({fname}) is not on this machine and could not be downloaded: {reason}. "
                              f"Load it again when online, or download {url.split('?')[0]} by hand into "
                              f"{folder}.") from exc
    labels = list(info["label"].values())
    n = dataset.imgs.shape[0] if max_images is None else min(max_images, dataset.imgs.shape[0])
    ids = [f"chestmnist_{size}/{split}/{i:06d}" for i in range(n)]
    images = tuple(ChestMnistImage(dataset.imgs, i, ids[i], f"{fname}:{split}_images[{i}]", f"{split} image {i}")
                   for i in range(n))
    table = pd.DataFrame({"id": ids, "file": ids, "source": [im.source for im in images],
                          "caption": [im.caption for im in images], "license": images[0].license if images else "",
                          "label": "", "domain": ""})
    label_nk = np.asarray(dataset.labels[:n]).astype(bool)
    for k, name in enumerate(labels):
        table[CHESTMNIST_FINDINGS.get(name, name)] = label_nk[:, k]
    table["No Finding"] = ~label_nk.any(axis=1)
    table["finding_labels"] = ["|".join(CHESTMNIST_FINDINGS.get(labels[k], labels[k]) for k in np.flatnonzero(row))
                               or "No Finding" for row in label_nk]
    return images, table

