"""Shared fixtures: the real offline model (loaded once) and real photos."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


_PYTEST_MAIN = sys.modules["__main__"]


@pytest.fixture(scope="session")
def lite0():
    import featurelens as fl

    return fl.load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def chelsea_hwc_u8() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="session")
def coffee_hwc_u8() -> np.ndarray:
    return data.coffee()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data fixtures are not present")
    return SHARED_DATA


IMAGE_NAMES = ("chelsea", "coffee", "astronaut")
GRID_LAYERS = {56: "stage2", 28: "stage3", 14: "stage4", 7: "stage6"}  # grid side at 224 px → layer


@pytest.fixture(scope="session")
def real(lite0) -> dict:
    """Real photos resized to 224×224 (uint8), their block features ``{grid: (3, g, g, C)}``
    (these have negative values) and the non-negative head features ``(3, 7, 7, 1280)``."""
    from PIL import Image

    images = {n: np.asarray(Image.fromarray(getattr(data, n)()).resize((224, 224), Image.BILINEAR))
              for n in IMAGE_NAMES}
    feats = lite0.features(list(images.values()), [*GRID_LAYERS.values(), "head"])
    return {"images": images, "feats": {g: feats[layer] for g, layer in GRID_LAYERS.items()}, "head": feats["head"]}


_ENVIRON = dict(os.environ)


def restore_environ() -> None:
    """Give back the environment a ``distributed.LocalCluster`` changes in this process
    (``OMP_NUM_THREADS=1`` and friends, meant for its workers), so later tests' subprocesses
    keep their threads; pytest's own ``PYTEST_*`` variables are left alone."""
    for key in set(os.environ) - set(_ENVIRON):
        if not key.startswith("PYTEST_"):
            del os.environ[key]
    os.environ.update({key: value for key, value in _ENVIRON.items() if not key.startswith("PYTEST_")})


@contextlib.contextmanager
def local_cluster(**kwargs):
    """A loopback ``distributed.LocalCluster`` (no dashboard) that restores the environment."""
    import distributed

    # Streamlit's AppTest runs each script as a fake ``__main__`` and leaves it installed; a spawned
    # worker would re-run that script (for ``AppTest.from_function``, a temporary file that fails
    # outside AppTest), so workers start from pytest's own ``__main__``.
    sys.modules["__main__"] = _PYTEST_MAIN
    loopback = {"host": "127.0.0.1"} if kwargs.get("processes", True) else {}   # threads: inproc://
    with distributed.LocalCluster(dashboard_address=None, **loopback, **kwargs) as cluster:
        restore_environ()
        yield cluster
    restore_environ()
