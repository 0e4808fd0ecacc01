"""The iWildCam recipe end to end through the real ``wilds`` package: WILDS downloads an archive
from a server on 127.0.0.1 (built from the real iWildCam fixture photos), the camera location
becomes the domain, and the images build a cache."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading

import pandas as pd
import pytest

from featurelens.caches import build_cache, recipe_images
from featurelens.scenarios import load_recipe
from tests.conftest import ROOT

wilds = pytest.importorskip("wilds", reason="the iWildCam recipe needs the wilds package (requirements.txt has it)")


def _archive(fixture) -> bytes:
    """A WILDS iWildCam 2.0 folder as a tar.gz: 4 frames of camera 128 and 4 IDFG frames."""
    meta = pd.read_csv(fixture / "metadata.csv")
    frames = [*meta[meta["source"] == "cct_location_128"]["file"][:4], *meta[meta["source"] == "idfg"]["file"][:4]]
    names = [f.split("/")[-1] for f in frames]
    table = pd.DataFrame({
        "split": ["train"] * 6 + ["val"] * 2, "filename": names, "y": [0, 0, 1, 1, 0, 1, 0, 1],
        "location_remapped": [0, 0, 0, 0, 1, 1, 1, 1], "sequence_remapped": list(range(8)),
        "datetime": ["2013-06-01 10:00:00.000"] * 8})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("metadata.csv", table.to_csv(index=False).encode()), ("RELEASE_v2.0.txt", b"v2.0")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for frame, name in zip(frames, names):
            tar.add(fixture / frame, arcname=f"train/{name}")
    return buffer.getvalue()


@pytest.fixture
def wilds_server(tmp_path, shared_data):
    served = tmp_path / "served"
    served.mkdir()
    (served / "archive.tar.gz").write_bytes(_archive(shared_data / "iwildcam"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/archive.tar.gz", (served / "archive.tar.gz").stat().st_size
    server.shutdown()


def test_iwildcam_recipe_downloads_through_wilds_and_uses_the_camera_as_domain(wilds_server, tmp_path, monkeypatch,
                                                                               lite0):
    from wilds.datasets.iwildcam_dataset import IWildCamDataset

    url, size = wilds_server
    monkeypatch.setattr(IWildCamDataset, "_versions_dict", {"2.0": {"download_url": url, "compressed_size": size}})
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    recipe = load_recipe(ROOT / "cache_recipes" / "iwildcam.toml")
    images, table = recipe_images(recipe)
    assert (tmp_path / "home" / "datasets" / "iwildcam_v2.0" / "metadata.csv").exists()
    assert len(images) == 6, "the 6 training frames, not the 2 validation ones"
    assert list(table["domain"]) == ["location 0"] * 4 + ["location 1"] * 2
    assert list(table["label"]) == ["0", "0", "1", "1", "0", "1"]
    assert images[0].load().size[0] == 512, "the real fixture frame, decoded by wilds"
    cache = build_cache(tmp_path / "iwildcam.zarr", images, lite0, ["stage7"], dataset_name="iwildcam", metadata=table)
    assert cache.n_images == 6 and list(cache.metadata["domain"]) == list(table["domain"])
    assert cache.loaded_n.all()
