"""Getting weight files: from installed packages (offline) or downloaded with a checksum."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Callable

import pooch

from ..config import weights_dir

__all__ = ["WeightsUnavailableError", "WeightsCorruptError", "weights_cache_dir", "fetch_weights", "file_sha256"]


class WeightsUnavailableError(RuntimeError):
    """The weights could not be obtained (offline, server down, package missing)."""


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


def fetch_weights(url: str, *, cache_dir: Path | None = None, sha256: str | None = None,
                  offline_hint: str = "", progress: Callable[[int, int], None] | None = None) -> Path:
    """Download ``url`` into the weights cache (once) and return the file's path.

    The file is checked against ``sha256`` when given, else against the hash prefix in its
    name (``resnet18-f37072fd.pth``). A failed or corrupt download leaves no file behind:
    pooch writes to a temporary file and moves it into place only when complete.
    """
    cache_dir = Path(cache_dir) if cache_dir else weights_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fname = url.rsplit("/", 1)[-1]
    target = cache_dir / fname
    try:
        downloader = pooch.HTTPDownloader(progressbar=_PoochProgress(progress) if progress else False,
                                          timeout=30)
        path = Path(pooch.retrieve(url, known_hash=None, fname=fname, path=cache_dir, downloader=downloader))
    except Exception as exc:  # network errors come in many types (requests, OSError, …)
        _remove_partial(cache_dir, fname)
        raise WeightsUnavailableError(
            f"could not download weights from {url}: {type(exc).__name__}: {exc}. "
            f"{offline_hint}".strip()) from exc
    expected = sha256 or _expected_prefix(url)
    if expected and not file_sha256(path).startswith(expected):
        target.unlink(missing_ok=True)
        raise WeightsCorruptError(f"downloaded weights {fname} fail their checksum (expected sha256 "
                                  f"{expected}…); the file was removed, try again.")
    return path


def _remove_partial(cache_dir: Path, fname: str) -> None:
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
