"""Shared by the browser benchmarks: the browser tests' helpers (server start, idle wait)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def browser_helpers():
    """The browser tests' conftest (server start, idle wait), loaded under its own name."""
    path = ROOT / "tests" / "browser" / "conftest.py"
    spec = importlib.util.spec_from_file_location("featurelens_browser_conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the conftest registers itself as ``browser_helpers``
    spec.loader.exec_module(module)
    return module
