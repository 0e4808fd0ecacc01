"""Getting weight files: from installed packages (offline) or downloaded with a checksum.

A download that fails says why in plain words, whatever the network library raised
(:func:`download_failure_reason`), and how to get the file (:func:`how_to_get_weights`):

>>> download_failure_reason(ConnectionRefusedError(111, "Connection refused"), "http://127.0.0.1:9/x.pth")
'nothing answers at 127.0.0.1:9'
>>> download_failure_reason(TimeoutError("timed out"), "https://download.pytorch.org/models/x.pth")
'download.pytorch.org did not answer within 30 s (a slow or blocked network?)'
"""

from __future__ import annotations

import errno
import functools
import hashlib
import re
import socket
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pooch

from ..config import weights_dir, weights_mirror

__all__ = ["WeightsUnavailableError", "WeightsCorruptError", "weights_cache_dir", "fetch_weights", "file_sha256",
           "download_failure_reason", "how_to_get_weights", "known_download_bytes", "MIRROR_ENV", "DOWNLOAD_TIMEOUT_S"]

MIRROR_ENV = "FEATURELENS_WEIGHTS_MIRROR"
"""The environment variable naming a server that holds the weight files (a classroom without internet)."""

DOWNLOAD_TIMEOUT_S = 30
"""Seconds a weights server may stay silent before the download gives up."""


class WeightsUnavailableError(RuntimeError):
    """The weights could not be obtained (offline, server down, package missing). The message
    says why in plain words and how to get them. For a failed download, ``reason`` is the why
    alone (:func:`download_failure_reason`), ``remedy`` the way to get the file
    (:func:`how_to_get_weights`) and ``url`` the address tried; all three are empty otherwise.
    The network library's own exception is chained (``__cause__``), for a log, not for people."""

    def __init__(self, message: str, *, reason: str = "", remedy: str = "", url: str = ""):
        super().__init__(message)
        self.reason, self.remedy, self.url = reason, remedy, url


class WeightsCorruptError(RuntimeError):
    """The weights file or its tensors do not match what the model expects."""


def weights_cache_dir() -> Path:
    """Where downloaded weights live: ``$FEATURELENS_HOME/weights`` or ``~/.cache/featurelens/weights``."""
    return weights_dir()


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (memoised on path, mtime and size)."""
    stat = Path(path).stat()
    return _sha256_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _expected_prefix(url: str) -> str | None:
    """torchvision/torch.hub convention: ``name-<sha256 prefix>.pth``."""
    match = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", url.rsplit("/", 1)[-1])
    return match.group(1) if match else None


@functools.lru_cache(maxsize=1)
def _torchvision_file_sizes() -> dict[str, int]:
    """``{url: bytes}`` for every weights file torchvision describes (its ``_file_size`` metadata, MiB)."""
    import torchvision

    sizes = {}
    for name in torchvision.models.list_models():
        try:
            enum = torchvision.models.get_model_weights(name)
        except (KeyError, ValueError):
            continue
        for weights in enum:
            mib = weights.meta.get("_file_size")
            if mib:
                sizes[weights.url] = int(mib * 2**20)
    return sizes


def known_download_bytes(url: str) -> int | None:
    """The size of the weights file at ``url`` if known before downloading it (torchvision's
    metadata knows its own files; the file name decides, so a mirror's copy counts too), else None.

    >>> round(known_download_bytes("https://download.pytorch.org/models/resnet50-0676ba61.pth") / 1e6)
    103
    >>> known_download_bytes("http://lab.local/weights/unknown.pth") is None
    True
    """
    fname = url.rsplit("/", 1)[-1]
    return next((size for known, size in _torchvision_file_sizes().items() if known.rsplit("/", 1)[-1] == fname), None)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception inside it: causes, contexts and exceptions carried as
    arguments or attributes (requests wraps urllib3's ``MaxRetryError``, whose ``reason`` is the cause)."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None),
                 *(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))]
        todo = [item for item in todo if isinstance(item, BaseException)]


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "code", None)
    return status if isinstance(status, int) and 100 <= status < 600 else None


def _is_name_lookup(exc: BaseException) -> bool:
    return isinstance(exc, socket.gaierror) or type(exc).__name__ == "NameResolutionError"


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, socket.timeout)) or "Timeout" in type(exc).__name__


def _is_disk(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT)


def _is_connection(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError) or type(exc).__name__ in {
        "ConnectionError", "NewConnectionError", "MaxRetryError", "URLError", "ProtocolError", "SSLError"}


def _status_reason(status: int, fname: str, host: str) -> str:
    if status == 404:
        return f"{host} has no file {fname} (HTTP 404)"
    if status in (401, 403):
        return f"{host} refused access to {fname} (HTTP {status})"
    if status >= 500:
        return f"{host} had an error (HTTP {status}); try again later"
    return f"{host} answered HTTP {status} instead of the file"


def download_failure_reason(exc: BaseException, url: str) -> str:
    """Why downloading ``url`` failed, in plain words, for any exception a download raises
    (requests, urllib3, urllib, socket, OS errors): a missing file, a timeout, an unknown server
    name, an unreachable server, a full or read-only disk; anything else is named by its type."""
    host, fname = urlsplit(url).netloc or url, url.rsplit("/", 1)[-1]
    found = list(_chain(exc))
    status = next((s for s in map(_http_status, found) if s), None)
    if status:
        return _status_reason(status, fname, host)
    if any(map(_is_name_lookup, found)):
        return f"the server name {urlsplit(url).hostname} could not be looked up (is this machine online?)"
    if any(map(_is_timeout, found)):
        return f"{host} did not answer within {DOWNLOAD_TIMEOUT_S} s (a slow or blocked network?)"
    if any(map(_is_disk, found)):
        return f"the file could not be saved (disk full or folder not writable: {weights_cache_dir()})"
    if any(map(_is_connection, found)):
        return f"nothing answers at {host}"
    return f"the download stopped ({type(exc).__name__})"


def how_to_get_weights(url: str) -> str:
    """The way to get the file at ``url``: download it when online, or serve it from a mirror
    (``$FEATURELENS_WEIGHTS_MIRROR``); when that mirror was the one tried, check it."""
    fname, mirror = url.rsplit("/", 1)[-1], weights_mirror()
    if mirror and url.startswith(mirror):
        return (f"Check that the server in {MIRROR_ENV} ({mirror}) is running and holds {fname}, "
                f"or unset {MIRROR_ENV} to download it from the official site when online.")
    return (f"Load the model again when online (the file downloads once), "
            f"or set {MIRROR_ENV} to a server that holds {fname}.")


def fetch_weights(url: str, *, cache_dir: Path | None = None, sha256: str | None = None,
                  offline_hint: str = "", progress: Callable[[int, int], None] | None = None,
                  what: str = "") -> Path:
    """Download ``url`` into the weights cache (once) and return the file's path.

    The file is checked against ``sha256`` when given, else against the hash prefix in its
    name (``resnet18-f37072fd.pth``). A failed or corrupt download leaves no file behind:
    pooch writes to a temporary file and moves it into place only when complete.
    A failure raises :class:`WeightsUnavailableError` whose message names ``what`` (default:
    the file), says why in plain words, how to get the file, and ends with ``offline_hint``.
    """
    cache_dir = Path(cache_dir) if cache_dir else weights_cache_dir()
    fname = url.rsplit("/", 1)[-1]
    target = cache_dir / fname
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        downloader = pooch.HTTPDownloader(progressbar=_PoochProgress(progress) if progress else False,
                                          timeout=DOWNLOAD_TIMEOUT_S)
        path = Path(pooch.retrieve(url, known_hash=None, fname=fname, path=cache_dir, downloader=downloader))
    except Exception as exc:  # network errors come in many types (requests, urllib3, OSError, …)
        _remove_partial(cache_dir, fname)
        reason, remedy = download_failure_reason(exc, url), how_to_get_weights(url)
        subject = what or f"The weights file {fname}"
        raise WeightsUnavailableError(
            f"{subject[0].upper()}{subject[1:]} {'are' if what else 'is'} not on this machine and could not be "
            f"downloaded: {reason}. {remedy} {offline_hint}".strip(), reason=reason, remedy=remedy, url=url) from exc
    expected = sha256 or _expected_prefix(url)
    if expected and not file_sha256(path).startswith(expected):
        target.unlink(missing_ok=True)
        raise WeightsCorruptError(f"the downloaded file {fname} fails its checksum (expected sha256 {expected}…), "
                                  f"so it was removed: {urlsplit(url).netloc or 'the server'} holds a damaged or "
                                  "different file. Try again; if it fails again, replace the file on that server.")
    return path


def _remove_partial(cache_dir: Path, fname: str) -> None:
    if not cache_dir.is_dir():
        return
    for leftover in cache_dir.glob(f"*{fname}*"):
        if leftover.name != fname:
            leftover.unlink(missing_ok=True)


class _PoochProgress:
    """Adapter from pooch's tqdm-like progress protocol to ``callback(done, total)``."""

    def __init__(self, callback: Callable[[int, int], None]):
        self.callback, self.total, self.n = callback, 0, 0

    def update(self, step: int) -> None:
        self.n += step
        self.callback(self.n, self.total)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass
