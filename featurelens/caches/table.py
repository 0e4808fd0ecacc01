"""The metadata table: one row per image (id, file, source, labels, …), stored as one 1-D array per column."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import zarr

from .errors import CacheError
from ..models.layouts import PER_IMAGE_N
from .format import _MEASURED, CacheImage, _new_array

__all__ = ["image_metadata"]

def image_metadata(images: Sequence[CacheImage], *, root: str | os.PathLike | None = None,
                   labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per image: ``id, file, source, caption, license, label, domain`` (+ ``labels``' columns).

    ``file`` is the path relative to ``root`` (POSIX), else the file name. Without ``labels``,
    ``label`` is the parent folder below ``root`` and ``domain`` the one above it
    (``art_painting/dog/1.jpg`` → dog, art_painting), else ``""``. ``labels`` (e.g. a CSV) needs a
    ``file`` column matched against ``file`` or the file name; its ``label``/``domain`` replace the
    folder ones, other clashing names get a ``csv_`` prefix, unmatched images get empty values,
    and their ids are listed in ``table.attrs["unlabelled"]``.
    """
    rows = [_base_row(image, root) for image in images]
    table = pd.DataFrame(rows, columns=["id", "file", "source", "caption", "license", "label", "domain"])
    return table if labels is None else _join_labels(table, labels)


def _base_row(image: CacheImage, root: str | os.PathLike | None) -> dict[str, str]:
    path = getattr(image, "path", None)
    file = _relative_file(path, root) if path else str(image.id)
    folders = PurePosixPath(file).parts[:-1] if root is not None else ()
    return {"id": str(image.id), "file": file, "source": str(getattr(image, "source", path or "")),
            "caption": str(getattr(image, "caption", "")), "license": str(getattr(image, "license", "")),
            "label": folders[-1] if folders else "", "domain": folders[-2] if len(folders) > 1 else ""}


def _relative_file(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """``path`` relative to ``root`` as POSIX, else its file name."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).name


def _join_labels(table: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Add ``labels``' columns to ``table`` by matching its ``file`` column."""
    if "file" not in labels.columns:
        raise CacheError(f"the labels table has no 'file' column (its columns: {', '.join(map(str, labels.columns))}); "
                         "add one holding each image's path relative to the image folder, or its file name")
    keys = labels["file"].astype(str).str.strip().str.replace("\\", "/").str.removeprefix("./")
    repeated = keys[keys.duplicated()].unique().tolist()
    if repeated:
        raise CacheError(f"the labels table lists {', '.join(map(repr, repeated[:5]))} more than once in "
                         "'file'; keep one row per image")
    row_of = {key: i for i, key in enumerate(keys)}
    matched = [row_of.get(file, row_of.get(PurePosixPath(file).name)) for file in table["file"]]
    if all(m is None for m in matched):
        raise CacheError(f"no image matches a row of the labels table: images have files like {table['file'][0]!r}, "
                         f"the table's 'file' column holds values like {keys.iloc[0]!r}; use paths relative "
                         "to the image folder or plain file names")
    extra = labels.drop(columns=["file"]).reset_index(drop=True)
    extra = extra.reindex([-1 if m is None else m for m in matched]).reset_index(drop=True)
    renamed = {c: (str(c) if str(c) in ("label", "domain") or str(c) not in table.columns else f"csv_{c}")
               for c in extra.columns}
    joined = table.drop(columns=[c for c in ("label", "domain") if c in renamed.values()])
    joined = pd.concat([joined, extra.rename(columns=renamed)], axis=1)
    joined.attrs["unlabelled"] = [table["id"][i] for i, m in enumerate(matched) if m is None]
    return joined


def _static_table(images: Sequence[CacheImage], metadata: pd.DataFrame | None) -> pd.DataFrame:
    """The caller's metadata (or :func:`image_metadata`), checked, with ``id`` first."""
    ids = [str(image.id) for image in images]
    table = image_metadata(images) if metadata is None else metadata.reset_index(drop=True).copy()
    table.columns = [str(c) for c in table.columns]
    if len(table) != len(ids):
        raise CacheError(f"metadata has {len(table)} rows for {len(ids)} images; give one row per image, in order")
    clash = [c for c in _MEASURED if c in table.columns]
    if clash:
        raise CacheError(f"metadata columns {clash} are measured by the build; rename or drop them")
    if "id" in table.columns and table["id"].astype(str).tolist() != ids:
        raise CacheError("metadata's 'id' column does not list the images' ids in order; sort it like the images")
    table["id"] = ids
    return table[["id", *[c for c in table.columns if c != "id"]]]


def _column_kind(values: pd.Series) -> str:
    """How a column is stored: ``bool``, ``int64``, ``float64`` or ``str``."""
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return "bool"
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        return "int64"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "float64"
    return "str"


def _column_values(values: pd.Series, kind: str) -> np.ndarray:
    """A column as the 1-D numpy array that is stored (missing strings become ``""``)."""
    if kind == "str":
        return np.array(["" if pd.isna(v) else str(v) for v in values], dtype=str)
    return values.to_numpy(dtype=kind, na_value=np.nan) if kind == "float64" else values.to_numpy(dtype=kind)


def _array_names(columns: list[str]) -> list[str]:
    """Safe, unique zarr node names for column names."""
    names: list[str] = []
    for column in columns:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", column) or "column"
        name = f"col_{name}" if name.startswith((".", "__")) else name
        while name in names or name in _MEASURED:
            name += "_"
        names.append(name)
    return names


def _metadata_attrs(table: pd.DataFrame) -> dict[str, Any]:
    """Columns (name, array, kind) in display order and a digest of the static values."""
    columns = list(table.columns)
    kinds = [_column_kind(table[c]) for c in columns]
    specs = [{"name": c, "array": f"metadata/{a}", "kind": k} for c, a, k in zip(columns, _array_names(columns), kinds)]
    measured = [{"name": c, "array": f"metadata/{c}", "kind": "str" if c == "load_error" else "int64"}
                for c in _MEASURED]
    names = [spec["name"] for spec in specs]
    at = 1 + names.index(next(name for name in ("source", "file", "id") if name in names))
    digest = hashlib.sha256(json.dumps({s["name"]: _column_values(table[s["name"]], s["kind"]).tolist()
                                        for s in specs}).encode()).hexdigest()
    return {"columns": specs[:at] + measured[:2] + specs[at:] + measured[2:], "sha256": digest}


def _write_table(root: zarr.Group, columns: Sequence[Mapping[str, Any]], table: pd.DataFrame, n: int, k: int) -> None:
    """Static columns now (one chunk each); measured ones chunked like the images (``k``), filled per chunk."""
    for spec in columns:
        dtype = str if spec["kind"] == "str" else np.dtype(spec["kind"])
        if spec["name"] in _MEASURED:
            _new_array(root, spec["array"], (n,), dtype, PER_IMAGE_N.dims, k, {"column": spec["name"]})
        else:
            array = _new_array(root, spec["array"], (n,), dtype, PER_IMAGE_N.dims, n, {"column": spec["name"]})
            array[:] = _column_values(table[spec["name"]], spec["kind"])


def _read_table(root: zarr.Group, attrs: Mapping[str, Any],
                array: Callable[[str], zarr.Array] | None = None) -> pd.DataFrame:
    """The metadata table back as a DataFrame, columns in their stored order (arrays opened with
    ``array(path)`` when given, e.g. to check chunks)."""
    data = {}
    for spec in attrs["metadata"]["columns"]:
        values = np.asarray((array(spec["array"]) if array else root[spec["array"]])[:])
        data[spec["name"]] = values.astype(object).tolist() if spec["kind"] == "str" else values
    return pd.DataFrame(data)

