"""Cache builds on a Dask cluster (loopback only): the same bytes as a single-process build,
surviving a dead worker, resuming after the whole cluster stops, and a clear error when the
scheduler cannot be reached."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr

distributed = pytest.importorskip("distributed")

from featurelens.caches import CacheError, build_cache, cluster_client, open_cache  # noqa: E402
from featurelens.cli import main  # noqa: E402
from featurelens.images import bundled_gallery  # noqa: E402
from tests.conftest import local_cluster, restore_environ  # noqa: E402

MODEL, LAYERS, CHUNK = "efficientnet_lite0", ["stage3", "stage7"], 3
@pytest.fixture(autouse=True)
def _environ_kept():
    yield
    restore_environ()


@pytest.fixture(scope="module")
def images():
    gallery = bundled_gallery()[:12]
    if len(gallery) < 6:
        pytest.skip("too few bundled images installed")
    return gallery


def _build(path, images, client=None, progress=None):
    return build_cache(str(path), images, MODEL, LAYERS, dataset_name="demo", chunk_images=CHUNK,
                       batch_size=CHUNK, client=client, progress=progress)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, images):
    """The uninterrupted single-process build."""
    path = tmp_path_factory.mktemp("single") / "cache.zarr"
    _build(path, images)
    return path


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(n_workers=2, threads_per_worker=1, processes=True) as local:
        yield local


def _assert_same_cache(path: Path, reference: Path) -> None:
    """Every array equal, and the same metadata table."""
    cache, expected = open_cache(str(path)), open_cache(str(reference))
    for layer in LAYERS:
        assert np.array_equal(cache.features(layer)[:], expected.features(layer)[:]), layer
    assert np.array_equal(cache.thumbnails[:], expected.thumbnails[:])
    assert cache.metadata.equals(expected.metadata)
    got, want = zarr.open_group(str(path), mode="r"), zarr.open_group(str(reference), mode="r")
    for name, array in want.arrays():
        assert np.array_equal(got[name][:], array[:]), name
    for group_name, group in want.groups():
        for name, array in group.arrays():
            assert np.array_equal(got[f"{group_name}/{name}"][:], array[:]), f"{group_name}/{name}"


def test_cluster_build_equals_single_process_build(tmp_path, images, reference, cluster):
    calls = []
    with distributed.Client(cluster) as client:
        _build(tmp_path / "c.zarr", images, client, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, len(images)) and calls[-1] == (len(images), len(images))
    assert len(calls) == 1 + -(-len(images) // CHUNK)
    _assert_same_cache(tmp_path / "c.zarr", reference)


def test_cluster_build_into_an_fsspec_url_equals_single_process_build(tmp_path, images, reference, cluster):
    """Workers open the store themselves from its URL (here fsspec's file://; s3:// the same way)."""
    url = (tmp_path / "u.zarr").as_uri()
    with distributed.Client(cluster) as client:
        _build(url, images, client)
    _assert_same_cache(tmp_path / "u.zarr", reference)
    cache = open_cache(url)
    assert cache.n_images == len(images) and "file://" in repr(cache)


def test_build_survives_a_dead_worker(tmp_path, images, reference, cluster):
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        killed = []

        def kill_one(done: int, total: int) -> None:
            if 0 < done < total and not killed:
                victim = sorted(client.scheduler_info()["workers"])[0]
                killed.append(victim)
                try:
                    client.run(os._exit, 1, workers=[victim], wait=False)
                except Exception:
                    pass

        _build(tmp_path / "k.zarr", images, client, progress=kill_one)
        assert killed
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the tests that follow
    _assert_same_cache(tmp_path / "k.zarr", reference)


def test_build_resumes_after_the_whole_cluster_stops(tmp_path, images, reference, cluster):
    path = tmp_path / "r.zarr"
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=":0")
    client = distributed.Client(local)

    def stop(done: int, total: int) -> None:
        if done > 0:
            client.close()
            local.close()

    with pytest.raises(CacheError, match="run the same build again"):
        _build(path, images, client, progress=stop)
    done_before = np.asarray(zarr.open_group(str(path), mode="r")["progress"][:])
    assert 0 < done_before.sum() < len(done_before)
    chunk_dirs = [path / "features" / LAYERS[0] / "c" / str(i) for i in np.flatnonzero(done_before)]
    mtimes = {f: f.stat().st_mtime_ns for d in chunk_dirs for f in d.rglob("*") if f.is_file()}
    assert mtimes
    calls = []
    with distributed.Client(cluster) as fresh:  # another cluster than the stopped one
        _build(path, images, fresh, progress=lambda done, total: calls.append(done))
    assert calls[0] == int(done_before.sum()) * CHUNK  # the finished chunks are reported as done up front
    assert {f: f.stat().st_mtime_ns for f in mtimes} == mtimes  # and never rewritten
    _assert_same_cache(path, reference)


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(CacheError, match=r"tcp://127\.0\.0\.1:9 "):
        with cluster_client("tcp://127.0.0.1:9", connect_timeout=2):
            pass


def test_cluster_build_needs_a_folder_or_a_url(images, cluster):
    with distributed.Client(cluster) as client, pytest.raises(CacheError, match="folder path or a URL"):
        build_cache({}, images[:3], MODEL, LAYERS, dataset_name="demo", client=client)


def test_a_url_of_an_unknown_scheme_says_what_to_install(images):
    with pytest.raises(CacheError, match=r"'nosuch://bucket/c\.zarr'.*install the package for its scheme"):
        open_cache("nosuch://bucket/c.zarr")
    with pytest.raises(CacheError, match=r"no FeatureLens cache at file:///"):
        open_cache("file:///nonexistent-featurelens/c.zarr")


def test_cli_builds_on_a_scheduler(tmp_path, cluster, capsys):
    out = tmp_path / "cli.zarr"
    code = main(["cache", "build", "--bundled", "--limit", "4", "--model", MODEL, "--layers", "stage3",
                 "--chunk-images", "2", "--device", "cpu", "--out", str(out), "--scheduler", cluster.scheduler_address])
    assert code == 0, capsys.readouterr().err
    assert open_cache(str(out)).n_images == 4
