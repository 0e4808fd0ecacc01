"""Behaviour of `python -m featurelens cache build|info` (featurelens.cli), in-process and as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

from featurelens.cli import main
from featurelens.caches import open_cache
from featurelens.images import bundled_gallery
from featurelens.models import load_model

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"



def _build_args(out: Path, *extra: str) -> list[str]:
    return ["cache", "build", "--bundled", "--limit", "3", "--model", "efficientnet_lite0", "--layers", "stage5",
            "--out", str(out), "--batch-size", "3", *extra]


@pytest.fixture(scope="module")
def bundled_cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "bundled.zarr"
    assert main(_build_args(out)) == 0
    return out


def test_build_bundled_writes_a_cache_that_info_describes(bundled_cache, capsys):
    cache = open_cache(bundled_cache, model="efficientnet_lite0", layers=["stage5"])
    assert cache.image_ids == tuple(image.id for image in bundled_gallery()[:3])
    assert cache.metadata["caption"].tolist() == [image.caption for image in bundled_gallery()[:3]]
    assert cache.attrs["dataset"]["name"] == "bundled"
    command = cache.attrs["build_command"]
    assert command.startswith("python -m featurelens cache build --bundled --model efficientnet_lite0")

    assert main(["cache", "info", str(bundled_cache)]) == 0
    out = capsys.readouterr().out
    assert "model:      efficientnet_lite0.in1k" in out and "stage5 14×14×112 stride 16" in out
    assert "images:     3 (0 could not be loaded" in out and "thumbnails: 128×128 RGB" in out


def test_rerunning_a_finished_build_computes_nothing(bundled_cache, capsys):
    before = (bundled_cache / "zarr.json").stat().st_mtime_ns
    assert main(_build_args(bundled_cache)) == 0
    captured = capsys.readouterr()
    assert "already complete; nothing to compute" in captured.err and "cache ready" in captured.out
    assert (bundled_cache / "zarr.json").stat().st_mtime_ns == before


def test_build_into_a_cache_with_other_layers_fails_with_exit_1_and_the_reason(bundled_cache, capsys):
    args = _build_args(bundled_cache)
    args[args.index("stage5")] = "stage3,stage5"
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "error: cannot continue the cache" in err and "built with layers ['stage5']" in err
    assert "new --out path" in err


def test_build_from_a_folder_with_labels_csv_uses_default_layers(tmp_path, capsys, shared_data):
    out = tmp_path / "imagenet.zarr"
    code = main(["cache", "build", "--images", str(IMAGENET), "--labels", str(IMAGENET / "labels.csv"), "--limit", "2",
                 "--model", "efficientnet_lite0", "--out", str(out), "--name", "fish", "--description", "two fish"])
    assert code == 0, capsys.readouterr().err
    cache = open_cache(out)
    assert cache.layers == load_model("efficientnet_lite0", device="cpu").spec.default_layers
    meta = cache.metadata
    assert meta["file"].tolist() == ["n01440764_tench.JPEG", "n01443537_goldfish.JPEG"]
    assert meta["class_name"].tolist() == ["tench", "goldfish"] and meta["wnid"].tolist()[0] == "n01440764"
    assert cache.attrs["dataset"] == {"name": "fish", "description": "two fish"}
    assert "2/2" in capsys.readouterr().err  # the tqdm bar


@pytest.mark.parametrize("args, message", [
    (["--images", "/nonexistent/photos"], r"image folder '/nonexistent/photos' does not exist"),
    (["--bundled", "--labels", "/nonexistent/labels.csv"], r"cannot read the labels CSV '/nonexistent/labels.csv'"),
    (["--bundled", "--layers", "stage9"], r"has no layer 'stage9'"),
    (["--bundled", "--model", "efficientnet_lite9"], r"unknown model 'efficientnet_lite9'"),
])
def test_build_errors_print_one_line_and_exit_1(tmp_path, capsys, args, message):
    argv = ["cache", "build", *args, "--out", str(tmp_path / "x.zarr")]
    if "--model" not in args:
        argv += ["--model", "efficientnet_lite0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "x.zarr").exists()


def test_info_on_an_unfinished_cache_says_how_to_resume(bundled_cache, tmp_path, capsys):
    copy = tmp_path / "copy.zarr"
    subprocess.run(["cp", "-r", str(bundled_cache), str(copy)], check=True)
    zarr.open_group(copy, mode="r+").attrs["complete"] = False
    assert main(["cache", "info", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "is incomplete" in err and "Re-run the same build command to resume" in err
    assert "python -m featurelens cache build --bundled" in err


def test_cache_info_runs_as_a_module_in_a_subprocess(bundled_cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "featurelens", "cache", "info", str(bundled_cache)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("FeatureLens cache (format 1)") and "dataset:    bundled" in done.stdout


def test_rerunning_an_interrupted_build_resumes_and_says_so(tmp_path, capsys):
    out = tmp_path / "resume.zarr"
    args = _build_args(out, "--chunk-images", "2")
    assert main(args) == 0
    expected = open_cache(out).features("stage5")[:]
    root = zarr.open_group(out, mode="r+")  # undo the last chunk, as if the build had been killed there
    root["progress"][1] = 0
    root["features/stage5"][2:] = 0
    root.attrs["complete"] = False
    capsys.readouterr()

    assert main(args) == 0
    captured = capsys.readouterr()
    assert "resuming: 2 of 3 images are already in the cache" in captured.err and "cache ready" in captured.out
    cache = open_cache(out)
    assert cache.attrs["complete"] is True
    assert (cache.features("stage5")[:] == expected).all()
