"""Path checks for anything a visitor types or picks: a cache name is a name, never a path; a
folder must lie under one of the operator's roots; a label table is a CSV file under the chosen
image folder, read as a table and nothing else.

>>> check_cache_name("pacs-photos_v2")
'pacs-photos_v2'
>>> check_cache_name("../escape")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
featurelens.hosting.paths.UnsafePathError: cache name '../escape' is not allowed: use 1–64 letters, digits, ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

__all__ = ["CACHE_NAME_PATTERN", "UnsafePathError", "check_cache_name", "cache_path", "inside_roots",
           "label_tables", "read_label_table", "redact_paths"]

CACHE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A cache name: starts with a letter or digit; then letters, digits, ``_ . -``; at most 64 characters."""

LABEL_SUFFIXES = (".csv", ".csv.gz", ".tsv")
MAX_LABEL_BYTES = 64 * 2**20
MAX_LABEL_TABLES = 200


class UnsafePathError(ValueError):
    """A name or path a visitor gave points outside what they may reach."""


def check_cache_name(name: str) -> str:
    """``name`` stripped, if it is a plain cache name (:data:`CACHE_NAME_PATTERN`, no ``..``);
    raises :class:`UnsafePathError` otherwise."""
    name = name.strip()
    if name.endswith(".zarr"):
        name = name[: -len(".zarr")]
    if not CACHE_NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UnsafePathError(f"cache name {name!r} is not allowed: use 1–64 letters, digits, '_', '-' or '.', "
                              "starting with a letter or digit (a name, not a path)")
    return name


def cache_path(folder: Path, name: str) -> Path:
    """``folder/<name>.zarr`` for a checked name; the result is inside ``folder`` even through links.

    >>> cache_path(Path("/srv/caches"), "lab1")
    PosixPath('/srv/caches/lab1.zarr')
    """
    target = folder / f"{check_cache_name(name)}.zarr"
    if not target.resolve().is_relative_to(folder.resolve()):
        raise UnsafePathError(f"cache name {name!r} leads outside the caches folder")
    return target


def inside_roots(path: str | Path, roots: Iterable[Path]) -> Path:
    """``path`` resolved (links followed), if it is one of ``roots`` or lies under one; raises
    :class:`UnsafePathError` naming no server path otherwise.

    >>> inside_roots("/srv/data/cats/../dogs", [Path("/srv/data")])
    PosixPath('/srv/data/dogs')
    >>> inside_roots("/etc", [Path("/srv/data")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    featurelens.hosting.paths.UnsafePathError: that folder is not one this server offers; ...
    """
    resolved = Path(path).expanduser().resolve()
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return resolved
    raise UnsafePathError("that folder is not one this server offers; pick one of the listed image folders")


def label_tables(folder: Path, *, limit: int = MAX_LABEL_TABLES) -> list[str]:
    """The label tables (``*.csv``, ``*.csv.gz``, ``*.tsv``, no hidden parts) under ``folder``,
    as POSIX paths relative to it, sorted; at most ``limit`` of them."""
    found: list[str] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (path.name.lower().endswith(LABEL_SUFFIXES) and not any(p.startswith(".") for p in relative.parts)
                and path.is_file() and path.resolve().is_relative_to(folder.resolve())):
            found.append(relative.as_posix())
            if len(found) >= limit:
                break
    return found


def read_label_table(folder: Path, relative: str) -> pd.DataFrame:
    """The table ``folder/relative`` (one of :func:`label_tables`) as a data frame, read as CSV
    (TSV for ``.tsv``) and nothing else. Errors never quote the file's content.

    Raises:
        UnsafePathError: ``relative`` is not a label table under ``folder``.
        ValueError: the file is too large or is not a table.
    """
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.name.lower().endswith(LABEL_SUFFIXES) \
            or not path.is_file():
        raise UnsafePathError(f"{relative!r} is not a label table in the chosen folder")
    if path.stat().st_size > MAX_LABEL_BYTES:
        raise ValueError(f"label table {relative!r} is larger than {MAX_LABEL_BYTES // 2**20} MB")
    try:
        return pd.read_csv(path, sep="\t" if path.name.lower().endswith(".tsv") else ",")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, EOFError):
        raise ValueError(f"label table {relative!r} could not be read as a CSV table with a header row") from None


def redact_paths(text: str, labels: Mapping[Path, str]) -> str:
    """``text`` with every folder in ``labels`` (longest first) replaced by its label, so a
    message can be shown to a visitor without the server's paths.

    >>> redact_paths("cache at /srv/fl/caches/lab1.zarr", {Path("/srv/fl/caches"): "caches"})
    'cache at caches/lab1.zarr'
    """
    for folder in sorted(labels, key=lambda p: len(str(p)), reverse=True):
        for form in {str(folder), str(folder.resolve())}:
            text = text.replace(form, labels[folder])
    return text
