"""Datasets of images with masks on the server (folders under ``FEATURELENS_DATA_ROOTS`` in the
CamVid, FSS-1000 or VOC layout): pick a folder, a class, a support image and query images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from featurelens.config import data_roots
from featurelens.images import ImageLoadError
from featurelens.segmentation import class_names, find_masked_images, masked_folders, read_mask

from .shell import plain, visitor_text

MAX_QUERIES = 4


@dataclass(frozen=True)
class MaskedEntry:
    """One image of a dataset: ``key`` (for the feature cache), ``caption``, the PIL ``image``
    and its ground-truth ``mask_hw`` (bool, the image's size) for the chosen class."""

    key: str
    caption: str
    image: object
    mask_hw: np.ndarray


@st.cache_resource(show_spinner=False, ttl=60)
def _folders(roots: tuple[str, ...]) -> list[str]:
    return [str(p) for p in masked_folders(roots)]


def dataset_folders() -> list[str]:
    """The folders with masks the operator offers (none without ``FEATURELENS_DATA_ROOTS``)."""
    roots = tuple(str(r) for r in data_roots())
    return _folders(roots) if roots else []


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(folder: str) -> dict:
    return {item.id: item for item in find_masked_images(folder)}


@st.cache_resource(show_spinner=False, max_entries=32)
def _entry(folder: str, item_id: str, value: int | None) -> MaskedEntry:
    item = _index(folder)[item_id]
    return MaskedEntry(f"dataset:{folder}:{item_id}", item.image_path.name, item.load_image(),
                       read_mask(item.mask_path, value))


def dataset_episode(prefix: str) -> tuple[MaskedEntry, list[MaskedEntry]] | None:
    """Widgets for a folder, a class, a support and queries → ``(support, queries)``, or None
    after saying what to change."""
    folders = dataset_folders()
    cols = st.columns([1.2, 1, 1.2, 2])
    folder = cols[0].selectbox("Dataset folder", folders, key=f"{prefix}_folder",
                               format_func=lambda f: visitor_text(f).rsplit("/", 1)[-1])
    try:
        ids = list(_index(folder))
    except (FileNotFoundError, OSError) as exc:
        st.error(plain(visitor_text(str(exc))))
        return None
    names = class_names(folder)
    value = cols[1].selectbox("Class", range(len(names)), format_func=names.__getitem__,
                              key=f"{prefix}_class") if names else None
    support_id = cols[2].selectbox("Support image", ids, key=f"{prefix}_support_{folder}")
    others = [i for i in ids if i != support_id]
    query_ids = cols[3].multiselect("Query images", others, default=others[:1], max_selections=MAX_QUERIES,
                                    key=f"{prefix}_query_ids_{folder}_{support_id}")
    what = f"class {plain(names[value])}" if names else "the object"
    try:
        support = _entry(folder, support_id, value)
        queries = [_entry(folder, q, value) for q in query_ids]
    except (ImageLoadError, OSError, ValueError) as exc:
        st.error(plain(visitor_text(f"This dataset has a file that cannot be read: {exc}")))
        return None
    if not support.mask_hw.any():
        st.info(f"The support image {plain(support_id)} has no pixel of {what}: pick another support image or class.")
        return None
    if not query_ids:
        st.info("Pick at least one query image of the dataset.")
        return None
    return support, queries
