"""Where FeatureLens keeps things (featurelens.config), and listing caches with their state."""

from __future__ import annotations

from featurelens.caches import build_cache, list_caches
from featurelens.config import caches_dir, weights_mirror
from featurelens.images import bundled_gallery
from featurelens.models import weights_cache_dir


def test_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    assert caches_dir() == tmp_path / "caches"
    assert weights_cache_dir() == tmp_path / "weights"
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", "http://classroom.local/weights/")
    assert weights_mirror() == "http://classroom.local/weights"
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", "  ")
    assert weights_mirror() is None


def test_list_caches_reports_ready_and_unfinished(tmp_path, lite0):
    images = bundled_gallery()[:2]
    build_cache(tmp_path / "two.zarr", images, lite0, ["stage7"], dataset_name="two")
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{not json")
    entries = {e.name: e for e in list_caches(tmp_path)}
    summary = entries["two"].summary.splitlines()
    assert entries["two"].ready and set(entries) == {"two", "broken"}
    assert "images:     2 (0 could not be loaded and hold zeros)" in summary
    assert any(line.startswith("layers:") and "stage7 7×7×320" in line for line in summary)
    assert not entries["broken"].ready and entries["broken"].problem
    assert list_caches(tmp_path / "missing") == []
