"""Catalogs of downloadable caches: one JSON file that any static web server can host.

A catalog is a JSON list with one entry per packed cache (``python -m featurelens cache pack
CACHE --out X.zip --catalog catalog.json`` writes the entry)::

    [
      {"name": "bundled_gallery", "url": "bundled_gallery.zip",
       "sha256": "<64 hex digits of the zip>", "size": 6291456,
       "model": "efficientnet_lite0.in1k", "layers": ["stage3", "stage7"], "images": 24,
       "description": "The bundled photos at two layers of EfficientNet-Lite0."}
    ]

``url`` is absolute (``https://…``, ``file://…``) or relative to the catalog's own location,
so a folder holding the catalog and its zips can be served as it is (``python -m http.server``).
``size`` is the zip's size in bytes. The schema is :class:`CatalogEntry`; :func:`load_catalog`
validates a file or URL against it and names the entry and field of the first problem.

>>> entry = CatalogEntry(name="lab1", url="lab1.zip", sha256="0" * 64, size=2048,
...                      model="efficientnet_lite0.in1k", layers=["stage3"], images=4)
>>> catalog = Catalog(entries=[entry], source="http://lab.local/caches/catalog.json")
>>> catalog.url(catalog.entry("lab1"))
'http://lab.local/caches/lab1.zip'
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..config import CACHE_CATALOG_ENV, cache_catalog
from .errors import CacheError

__all__ = ["CatalogError", "CatalogEntry", "Catalog", "load_catalog", "add_to_catalog"]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_FIELDS_HINT = ("each entry needs name, url, sha256 (64 hex digits), size (bytes), model, layers, images and "
                "description; `python -m featurelens cache pack CACHE --out X.zip --catalog CATALOG` writes one")
_REMOTE_SCHEMES = ("http", "https")
_TIMEOUT_S = 15


class CatalogError(CacheError):
    """A catalog that cannot be read or does not follow the schema, or a name it does not list."""


class CatalogEntry(BaseModel):
    """One downloadable cache: where its zip is, its checksum and size, and what it holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=_NAME_PATTERN, max_length=100)]
    """Installed as ``<caches folder>/<name>.zarr``: letters, digits, ``.``, ``_`` and ``-``."""
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    sha256: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-f]{64}$")]
    size: int = Field(ge=0)
    model: Annotated[str, StringConstraints(min_length=1)]
    layers: tuple[str, ...] = Field(min_length=1)
    images: int = Field(ge=0)
    description: str = ""


class Catalog(BaseModel):
    """The entries of one catalog and where it was read from (relative URLs resolve against it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entries: tuple[CatalogEntry, ...] = ()
    source: str = ""

    @model_validator(mode="after")
    def _names_are_unique(self) -> "Catalog":
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"the name {entry.name!r} appears twice; names must be unique")
            seen.add(entry.name)
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries)

    def entry(self, name: str) -> CatalogEntry:
        """The entry called ``name``; an unknown name raises :class:`CatalogError` listing the names."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        listed = ", ".join(self.names) or "no caches"
        raise CatalogError(f"the cache catalog {self.source or '(in memory)'} has no cache {name!r}; it lists "
                           f"{listed}. Pick one of those, give a URL, or set {CACHE_CATALOG_ENV} to another catalog")

    def url(self, entry: CatalogEntry) -> str:
        """``entry.url`` made absolute against the catalog's location."""
        return _absolute_url(entry.url, self.source)

    def with_entry(self, entry: CatalogEntry) -> "Catalog":
        """A copy with ``entry`` replacing the one of the same name, or appended."""
        entries = [entry if old.name == entry.name else old for old in self.entries]
        if entry.name not in self.names:
            entries.append(entry)
        return Catalog(entries=entries, source=self.source)

    def to_json(self) -> str:
        """The catalog file's text: a JSON list of entries."""
        return json.dumps([entry.model_dump(mode="json") for entry in self.entries], indent=2) + "\n"

    def to_frame(self) -> pd.DataFrame:
        """One row per entry for display: name, model, layers, images, size (MB), description, url."""
        rows = [{"name": e.name, "model": e.model, "layers": ", ".join(e.layers), "images": e.images,
                 "size (MB)": round(e.size / 2**20, 1), "description": e.description, "url": self.url(e)}
                for e in self.entries]
        columns = ["name", "model", "layers", "images", "size (MB)", "description", "url"]
        return pd.DataFrame(rows, columns=columns)


def load_catalog(source: str | os.PathLike | None = None) -> Catalog:
    """Read and validate a catalog from a path or an http(s) URL (default :func:`~featurelens.config.cache_catalog`).

    Raises:
        CatalogError: the catalog cannot be read, is not JSON, or breaks the schema; the
            message names the catalog, the entry and the field.
    """
    source = os.fspath(source) if source is not None else cache_catalog()
    data = _parse_json(_read(source), source)
    if not isinstance(data, list):
        raise CatalogError(f"the cache catalog {source} must be a JSON list of entries, got a JSON "
                           f"{type(data).__name__}; {_FIELDS_HINT}")
    try:
        return Catalog(entries=data, source=source)
    except ValidationError as exc:
        raise _schema_error(source, data, exc) from None


def add_to_catalog(path: str | os.PathLike, entry: CatalogEntry) -> Catalog:
    """Add ``entry`` to the catalog file at ``path`` (created if missing), replacing one of the same name."""
    path = Path(path)
    catalog = load_catalog(path) if path.exists() else Catalog(source=str(path))
    catalog = catalog.with_entry(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(catalog.to_json())
    os.replace(partial, path)
    return catalog


def _valid_name(name: str, what: str) -> str:
    """``name`` if it can name an installed cache (``<name>.zarr``), else a :class:`CatalogError`.

    >>> _valid_name("lab1_v2", "--name")
    'lab1_v2'
    """
    if not re.fullmatch(_NAME_PATTERN, name) or len(name) > 100:
        raise CatalogError(f"{what} {name!r} cannot name a cache: use letters, digits, '.', '_' and '-' "
                           "(starting with a letter or digit, at most 100 characters)")
    return name


def _entry_from(values: dict[str, Any], where: str) -> CatalogEntry:
    """A :class:`CatalogEntry` from plain values; a schema problem becomes a :class:`CatalogError`."""
    try:
        return CatalogEntry(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise CatalogError(f"{where}: field {field}: {error['msg']} (got {error.get('input')!r})") from None


def _schema_error(source: str, data: list, exc: ValidationError) -> CatalogError:
    """The first schema problem as one sentence naming the catalog, the entry and the field."""
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if part != "entries"]
    where = ""
    if loc and isinstance(loc[0], int):
        index = loc.pop(0)
        name = data[index].get("name") if isinstance(data[index], dict) else None
        where = f"entry {index + 1}" + (f" ({name!r})" if name else "") + ": "
    field = ".".join(str(part) for part in loc)
    if error["type"] == "missing":
        problem = f"missing required field {field!r}"
    elif field:
        problem = f"field {field}: {error['msg']} (got {error.get('input')!r})"
    else:
        problem = error["msg"].removeprefix("Value error, ")
    return CatalogError(f"the cache catalog {source}: {where}{problem}; {_FIELDS_HINT}")


def _read(source: str) -> bytes:
    """The bytes of a catalog file or http(s) URL; failures name it and say how to pick another."""
    hint = f"check the path or address, or set {CACHE_CATALOG_ENV} to a catalog file or URL this machine can reach"
    local = _local_path(source)
    try:
        if local is not None:
            return local.read_bytes()
        if urllib.parse.urlsplit(source).scheme not in _REMOTE_SCHEMES:
            raise CatalogError(f"the cache catalog {source} is neither a file nor an http(s) URL; {hint}")
        with urllib.request.urlopen(source, timeout=_TIMEOUT_S) as response:
            return response.read()
    except (OSError, ValueError) as exc:  # urllib's URLError and HTTPError are OSErrors
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"cannot read the cache catalog {source} ({type(exc).__name__}: {exc}); {hint}") from exc


def _parse_json(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CatalogError(f"the cache catalog {source} is not valid JSON ({exc}); {_FIELDS_HINT}") from None


def _local_path(location: str) -> Path | None:
    """The file a location names (a plain path or ``file://`` URL), or None for a remote URL.

    >>> _local_path("/srv/caches/lab1.zip"), _local_path("file:///srv/lab1.zip"), _local_path("http://x/y.zip")
    (PosixPath('/srv/caches/lab1.zip'), PosixPath('/srv/lab1.zip'), None)
    """
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if len(parts.scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(location).expanduser()
    return None


def _absolute_url(url: str, base: str) -> str:
    """``url`` resolved against the location ``base`` (a path or URL); local results are plain paths.

    >>> _absolute_url("lab1.zip", "http://lab.local/c/catalog.json"), _absolute_url("lab1.zip", "/srv/catalog.json")
    ('http://lab.local/c/lab1.zip', '/srv/lab1.zip')
    >>> _absolute_url("https://cdn.org/x.zip", "/srv/catalog.json")
    'https://cdn.org/x.zip'
    """
    if urllib.parse.urlsplit(url).scheme in (*_REMOTE_SCHEMES, "file") or not base:
        return url
    base_local = _local_path(base)
    if base_local is None:
        return urllib.parse.urljoin(base, url)
    target = _local_path(url)
    return str(target if target is not None and target.is_absolute() else base_local.parent / url)
