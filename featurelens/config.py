"""Where FeatureLens keeps things, and the environment variables that change it.

This module only knows folders and settings; it imports nothing else from FeatureLens.

| variable | meaning | default |
|---|---|---|
| ``FEATURELENS_HOME`` | root of everything FeatureLens writes | ``~/.cache/featurelens`` |
| ``FEATURELENS_WEIGHTS_MIRROR`` | base URL serving weight files (a classroom server) | unset: the official URLs |

>>> import os; os.environ["FEATURELENS_HOME"] = "/tmp/fl-doc"
>>> str(caches_dir()), str(weights_dir())
('/tmp/fl-doc/caches', '/tmp/fl-doc/weights')
>>> del os.environ["FEATURELENS_HOME"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["featurelens_home", "caches_dir", "weights_dir", "weights_mirror"]


def featurelens_home() -> Path:
    """``$FEATURELENS_HOME`` or ``~/.cache/featurelens``."""
    home = os.environ.get("FEATURELENS_HOME")
    return Path(home) if home else Path.home() / ".cache" / "featurelens"


def caches_dir() -> Path:
    """The folder the app builds feature caches into (``<home>/caches``)."""
    return featurelens_home() / "caches"


def weights_dir() -> Path:
    """Where downloaded weights live (``<home>/weights``)."""
    return featurelens_home() / "weights"


def weights_mirror() -> str | None:
    """``$FEATURELENS_WEIGHTS_MIRROR`` without a trailing slash, or None."""
    mirror = os.environ.get("FEATURELENS_WEIGHTS_MIRROR", "").strip()
    return mirror.rstrip("/") or None
