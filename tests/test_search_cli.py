"""``python -m featurelens search``: a table of the best matches for a box or a mask on a query
image, and clear one-line errors (exit code 2, no traceback) for every wrong input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from featurelens.cli import main

ROOT_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory):
    """Four PACS photos of dogs and four of guitars, a labels CSV, and their cache (layers stage7, head)."""
    root = tmp_path_factory.mktemp("photos")
    labels = pd.read_csv(shared_data / "pacs" / "labels.csv")
    chosen = labels[(labels["domain"] == "photo") & labels["class"].isin(["dog", "guitar"])].groupby("class").head(4)
    for file in chosen["file"]:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / "pacs" / file, root / file)
    chosen.to_csv(root / "labels.csv", index=False)
    cache = root / "cache.zarr"
    assert main(["cache", "build", "--images", str(root), "--labels", str(root / "labels.csv"),
                 "--model", "efficientnet_lite0", "--layers", "stage7,head", "--out", str(cache),
                 "--device", "cpu"]) == 0
    return {"root": root, "cache": cache, "dog": root / chosen["file"].iloc[0]}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["search", *argv, "--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


def _table(out: str) -> pd.DataFrame:
    """The printed table (after the summary line); the window column holds one space: ``"r,c h×w"``."""
    header, *lines = out.splitlines()[1:]
    rows = [parts[:3] + [" ".join(parts[3:5])] + parts[5:] for parts in (line.split() for line in lines)]
    return pd.DataFrame(rows, columns=header.split())


def test_box_search_prints_ranked_matches_and_leaves_the_query_image_out(photos, capsys):
    code, out, err = _run(capsys, str(photos["cache"]), "--query", str(photos["dog"]), "--box", "0.2,0.2,0.8,0.8",
                          "--top-k", "5")
    assert code == 0, err
    assert ": 7 images searched with efficientnet_lite0.in1k layer head (grid 7×7, window 5×5)" in out.splitlines()[0]
    table = _table(out)
    assert list(table.columns) == ["rank", "id", "score", "window", "label", "domain", "class"]
    assert list(table["rank"]) == ["1", "2", "3", "4", "5"]
    assert "photo/dog/" + photos["dog"].name not in set(table["id"])
    assert list(table["class"][:3]) == ["dog"] * 3                     # the other three dogs come first
    scores = table["score"].astype(float)
    assert scores.is_monotonic_decreasing and scores.between(-1, 1).all()
    assert set(table["window"]) <= {f"{r},{c} 5×5" for r in range(3) for c in range(3)}


def test_mask_search_matches_the_same_box_and_include_self_ranks_the_query_first(photos, capsys, tmp_path):
    width, height = Image.open(photos["dog"]).size
    mask = np.zeros((height, width), np.uint8)
    mask[round(0.2 * height):round(0.8 * height), round(0.2 * width):round(0.8 * width)] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, out, err = _run(capsys, str(photos["cache"]), "--query", str(photos["dog"]), "--mask",
                          str(tmp_path / "mask.png"), "--layer", "stage7", "--include-self", "--unique-by", "class",
                          "--columns", "class")
    assert code == 0, err
    table = _table(out)
    assert list(table.columns) == ["rank", "id", "score", "window", "class"]
    assert table["id"][0] == "photo/dog/" + photos["dog"].name
    assert float(table["score"][0]) == pytest.approx(1, abs=1e-3)
    assert sorted(table["class"]) == ["dog", "guitar"]                  # one hit per class


@pytest.mark.parametrize("args,message", [
    (["--box", "0.2,0.2,0.1,0.8"], "must satisfy 0 <= x0 < x1 <= 1"),
    (["--box", "0.2,0.2"], "four comma-separated fractions"),
    (["--box", "0,0,1,1", "--layer", "stage3"], "no layer 'stage3'; it holds stage7, head"),
    (["--box", "0,0,1,1", "--unique-by", "colour"], "'colour' is not a metadata column"),
    (["--box", "0,0,1,1", "--top-k", "0"], "--top-k must be at least 1"),
    (["--mask", "MISSING.png"], "cannot read the mask image"),
    (["--mask", "EMPTY.png"], "the query mask is empty"),
    (["--mask", "SMALL.png"], "the mask has shape (30, 40) but the query image is 227×227 pixels"),
])
def test_wrong_input_is_one_clear_line_and_exit_code_2(photos, capsys, tmp_path, args, message):
    Image.new("L", (227, 227)).save(tmp_path / "EMPTY.png")
    Image.new("L", (40, 30), 255).save(tmp_path / "SMALL.png")
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    code, out, err = _run(capsys, str(photos["cache"]), "--query", str(photos["dog"]), *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_missing_cache_or_query_image_is_reported(photos, capsys, tmp_path):
    code, _, err = _run(capsys, str(tmp_path / "nowhere.zarr"), "--query", str(photos["dog"]), "--box", "0,0,1,1")
    assert code == 2 and "no FeatureLens cache" in err
    code, _, err = _run(capsys, str(photos["cache"]), "--query", str(tmp_path / "nope.jpg"), "--box", "0,0,1,1")
    assert code == 2 and "image file not found" in err


def test_the_module_entry_point_exits_2_without_a_traceback(photos):
    done = subprocess.run([sys.executable, "-m", "featurelens", "search", str(photos["cache"]), "--query",
                           str(photos["dog"]), "--box", "0.5,0.5,0.5,0.9", "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT_DIR, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: box (0.5, 0.5, 0.5, 0.9) must satisfy")
