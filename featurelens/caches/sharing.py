"""Caches that travel: pack a finished cache into one zip, install one from a catalog.

A teacher builds a cache once, packs it (:func:`pack_cache`, ``python -m featurelens cache
pack``) and puts the zip and a catalog (:mod:`featurelens.caches.catalog`) on any static web
server; students install it (:func:`install_cache`, ``python -m featurelens cache download``,
or the Feature caches page). A zip also opens in place: ``open_cache("lab1.zip")``.

Installing downloads with pooch and checks the zip's sha256 before anything is extracted;
a zip member that is absolute, climbs out with ``..`` or is a link is refused before a byte
is written; the cache is extracted into a hidden folder next to its destination and renamed
into place only once it opens as complete, so a failure at any point installs nothing.
Interrupted downloads are retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Literal

import pooch
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import ZipStore

from ..config import CACHE_CATALOG_ENV, caches_dir
from .catalog import Catalog, CatalogEntry, _entry_from, _local_path, _valid_name, load_catalog
from .errors import CacheError
from .lock import LOCK_KEY
from .reader import open_cache
from .stores import StoreLike, _close, as_store

__all__ = ["CacheDownloadError", "CacheArchiveError", "CacheExistsError", "InstalledCache", "pack_cache",
           "install_cache"]

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``; total is 0 when the server does not say."""

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same cache always packs to the same bytes
_RETRIES = 2
_TIMEOUT_S = 30
_CHUNK_BYTES = 1 << 16


class CacheDownloadError(CacheError):
    """A cache could not be downloaded, or failed its checksum; nothing was installed."""


class CacheArchiveError(CacheError):
    """A zip is unsafe to extract (``..``, absolute or link members) or holds no usable cache; nothing was extracted."""


class CacheExistsError(CacheError):
    """A different cache is already installed under that name; replace it with ``force=True`` (``--force``)."""


@dataclass(frozen=True)
class InstalledCache:
    """Where :func:`install_cache` put a cache, where it came from, and what it did."""

    name: str
    path: Path
    url: str
    status: Literal["installed", "replaced", "unchanged"]


def _sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_cache(cache: StoreLike, out: str | os.PathLike, *, name: str | None = None, url: str | None = None,
               description: str | None = None) -> CatalogEntry:
    """Pack a finished cache into one zip that ``open_cache`` (zarr's ``ZipStore``) opens in place.

    Members are the store's keys at the zip's root, stored uncompressed (the chunks are already
    zstd-compressed) with a fixed timestamp, so packing the same cache twice gives the same bytes.
    The zip is written beside ``out`` and renamed into place when complete.

    Args:
        cache: the cache (any store-like); it must open as complete.
        out: the ``.zip`` to write (replaced if it exists).
        name: the catalog name (default: ``out``'s stem).
        url: the entry's URL (default: ``out``'s file name, relative to the catalog).
        description: one line for the catalog (default: the cache's dataset description or name).

    Returns:
        The catalog entry describing the zip (add it with :func:`add_to_catalog`).
    """
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise CacheError(f"pack writes a .zip file, got --out {str(out)!r}: name it e.g. {out.stem or 'cache'}.zip")
    with _opened_store(cache) as source:
        if isinstance(source, ZipStore) and Path(source.path).resolve() == out.resolve():
            raise CacheError(f"{out} is the cache being packed: choose another --out")
        opened = open_cache(source)  # refuses unfinished or damaged caches, saying how to fix them
        opened.verify(full=False)  # and cut or missing chunks (the zip's checksum would seal them in)
        dataset = opened.attrs["dataset"]
        entry_values = {"name": _valid_name(name or out.stem, "the name"), "url": url or out.name,
                        "model": opened.model_name, "layers": list(opened.layers), "images": opened.n_images,
                        "description": description if description is not None
                        else dataset.get("description") or dataset.get("name", "")}
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            _write_zip(source, partial)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return _entry_from({**entry_values, "sha256": _sha256(out), "size": out.stat().st_size},
                       "cannot describe the packed cache")


def install_cache(name_or_url: str, *, catalog: Catalog | str | os.PathLike | None = None,
                  folder: str | os.PathLike | None = None, name: str | None = None, sha256: str | None = None,
                  force: bool = False, progress: Progress | None = None) -> InstalledCache:
    """Download (or copy) a packed cache, check it, and install it as ``<folder>/<name>.zarr``.

    Args:
        name_or_url: a catalog entry's name, or the URL / path of a ``.zip`` made by :func:`pack_cache`.
        catalog: a :class:`Catalog` or its path / URL (default :func:`~featurelens.config.cache_catalog`);
            a URL is looked up in it only when it is given explicitly, to learn its checksum.
        folder: where caches live (default :func:`~featurelens.config.caches_dir`).
        name: install under this name instead of the entry's name (or the URL's file stem).
        sha256: the expected checksum for a URL without a catalog entry (catalog entries carry theirs).
        force: replace a different cache already installed under the name.
        progress: ``progress(done_bytes, total_bytes)`` while downloading.

    Raises:
        CatalogError: the catalog cannot be read or does not list the name.
        CacheDownloadError: the download failed (after retries) or its checksum is wrong.
        CacheArchiveError: the zip has unsafe members or holds no usable cache.
        CacheExistsError: a different cache is installed under the name and ``force`` is False.
    """
    if _looks_like_location(name_or_url):
        url, expected = name_or_url, sha256
        if catalog is not None:
            cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
            match = [e for e in cat.entries if cat.url(e) == url]
            expected = expected or (match[0].sha256 if match else None)
        default_name = PurePosixPath(urllib.parse.urlsplit(url).path).stem
    else:
        cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
        entry = cat.entry(name_or_url)
        url, expected, default_name = cat.url(entry), entry.sha256, entry.name
    target = _valid_name(name or default_name, "the name")
    folder = Path(folder) if folder is not None else caches_dir()
    folder.mkdir(parents=True, exist_ok=True)
    local = _local_path(url)
    if local is not None:
        zip_path = _check_local(local, expected, progress)
        return InstalledCache(target, folder / f"{target}.zarr", url, _extract(zip_path, folder, target, url, force))
    downloads = folder / ".downloads"
    try:
        zip_path = _download(url, expected, downloads, target, progress)
        try:
            status = _extract(zip_path, folder, target, url, force)
        finally:
            zip_path.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty: another download may be running
    return InstalledCache(target, folder / f"{target}.zarr", url, status)


# --- packing ------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened_store(cache: StoreLike) -> Iterator[Store]:
    """The store of ``cache`` read-only; one made here from a path is closed afterwards."""
    store = as_store(cache, read_only=True)
    try:
        yield store
    finally:
        if not isinstance(cache, Store):
            _close(store)


async def _keys(store: Store) -> list[str]:
    """The store's keys, without a build lock or a writer's unfinished temporary files."""
    return sorted([key async for key in store.list() if key != LOCK_KEY and not key.endswith(".partial")])


def _write_zip(store: Store, path: Path) -> None:
    """Every key of ``store`` as a member of a new zip at ``path``."""
    prototype = default_buffer_prototype()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key in sync(_keys(store)):
            buffer = sync(store.get(key, prototype=prototype))
            if buffer is None:  # listed but gone: the cache changed while packing
                raise CacheError(f"the cache's key {key!r} disappeared while packing; pack it again")
            info = zipfile.ZipInfo(key, date_time=_ZIP_DATE)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, buffer.to_bytes())


# --- installing ---------------------------------------------------------------------------


def _looks_like_location(text: str) -> bool:
    """A URL or a path to a zip, as opposed to a catalog name."""
    return "://" in text or text.lower().endswith(".zip") or "/" in text or os.sep in text


def _check_local(path: Path, expected: str | None, progress: Progress | None) -> Path:
    """A local zip, checked against ``expected`` before anything is extracted."""
    if not path.is_file():
        raise CacheDownloadError(f"no file at {path}: nothing was installed. The zip has not been published there; "
                                 f"check the path, or set {CACHE_CATALOG_ENV} to a catalog whose zips this machine "
                                 "can reach")
    size = path.stat().st_size
    actual = _sha256(path) if expected else ""
    if expected and actual != expected.lower():
        raise CacheDownloadError(f"{path} does not match its checksum (expected sha256 {expected}, got "
                                 f"{actual}): nothing was installed. The file is damaged or the "
                                 "catalog entry is out of date; pack it again or copy it again")
    if progress:
        progress(size, size)
    return path


def _download(url: str, expected: str | None, downloads: Path, target: str, progress: Progress | None) -> Path:
    """Download ``url`` with pooch (checksum checked, retried on network errors) into ``downloads``."""
    import requests  # pooch's own dependency; imported here like pooch does

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CacheDownloadError(f"cannot download {url}: only http(s) URLs, file:// URLs and paths are supported")
    fname = f"{target}-{(expected or 'unchecked')[:16]}.zip"
    (downloads / fname).unlink(missing_ok=True)  # never reuse an old file
    last: Exception | None = None
    for attempt in range(1 + _RETRIES):
        bar = _PoochProgress(progress) if progress else False
        try:
            with _quiet(pooch.get_logger()):
                return Path(pooch.retrieve(url, known_hash=f"sha256:{expected}" if expected else None, fname=fname,
                                           path=downloads, downloader=pooch.HTTPDownloader(
                                               progressbar=bar, timeout=_TIMEOUT_S, chunk_size=_CHUNK_BYTES)))
        except ValueError as exc:  # pooch's checksum mismatch; it has already deleted the file
            raise CacheDownloadError(
                f"the file at {url} does not match its checksum ({exc}): nothing was installed. The file "
                "on the server changed or was damaged; ask whoever publishes the catalog to pack it again and "
                "update the entry") from None
        except (requests.RequestException, OSError) as exc:
            last = exc
            status = getattr(getattr(exc, "response", None), "status_code", None) or 0
            if 400 <= status < 500:  # missing or forbidden: asking again will not help
                break
            if attempt < _RETRIES:
                time.sleep(0.5 * (attempt + 1))
    raise CacheDownloadError(
        f"could not download {url} ({type(last).__name__}: {last}): nothing was "
        f"installed. Check the address and the network, or set {CACHE_CATALOG_ENV} to a catalog this machine "
        "can reach (a folder with the catalog and its zips, served by `python -m http.server`, works)") from last


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Silence pooch's informational messages: the core reports through callbacks only."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_members(archive: zipfile.ZipFile, where: str) -> None:
    """Refuse, before extracting anything, any member that could land outside the cache folder."""
    for info in archive.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        unsafe = (not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts
                  or "\\" in name or stat.S_ISLNK(info.external_attr >> 16))
        if unsafe:
            raise CacheArchiveError(
                f"{where} contains the unsafe member {name!r} (an absolute path, a '..' component or a link could "
                "write outside the cache folder): nothing was extracted. Install only zips made by "
                "`python -m featurelens cache pack`, from people you trust")


def _extract(zip_path: Path, folder: Path, target: str, where: str, force: bool) -> str:
    """Check the zip, then extract it beside ``folder/target.zarr`` and rename it into place."""
    dest = folder / f"{target}.zarr"
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CacheArchiveError(f"{where} is not a readable zip ({exc}): nothing was installed. Install a zip "
                                "made by `python -m featurelens cache pack`") from None
    with archive:
        _check_members(archive, where)
        _check_cache(zip_path, where)
        incoming = json.loads(archive.read("zarr.json"))
        if dest.exists():
            same = _root_attrs(dest) == incoming
            if same and _opens(dest):
                return "unchanged"
            if not same and not force:
                raise CacheExistsError(
                    f"a different cache is already installed at {dest}: pass --force (force=True) to replace it, "
                    "or install this one under another name with --name")
        partial = folder / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            partial.mkdir()
            for info in archive.infolist():
                if info.is_dir():
                    continue
                path = partial.joinpath(*info.filename.split("/"))
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            open_cache(partial)
            status = "replaced" if dest.exists() else "installed"
            if dest.exists():
                old = folder / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(dest, old)
                os.replace(partial, dest)
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
            else:
                os.replace(partial, dest)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return status


def _check_cache(zip_path: Path, where: str) -> None:
    """The zip opens in place as a complete FeatureLens cache."""
    store = ZipStore(zip_path, mode="r", read_only=True)
    try:
        open_cache(store)
    except CacheError as exc:
        raise CacheArchiveError(f"{where} holds no usable FeatureLens cache: nothing was installed ({exc})") from None
    finally:
        store.close()


def _root_attrs(dest: Path) -> object:
    """The installed cache's root ``zarr.json`` (None when there is none or it is unreadable)."""
    try:
        return json.loads((dest / "zarr.json").read_bytes())
    except (OSError, ValueError):
        return None


def _opens(dest: Path) -> bool:
    try:
        open_cache(dest)
    except CacheError:
        return False
    return True


class _PoochProgress:
    """Adapter from pooch's tqdm-like progress protocol to ``progress(done, total)``."""

    def __init__(self, callback: Progress):
        self.callback, self.total, self.n = callback, 0, 0

    def update(self, step: int) -> None:
        self.n = min(self.n + step, self.total) if self.total else self.n + step
        self.callback(self.n, self.total)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass
