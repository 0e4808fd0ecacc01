"""Chest X-ray scenario: the NIH recipe on real NIH PNGs, grouped score statistics against
hand-computed values, the chest X-ray model's download and preprocessing, ChestMNIST through the
real medmnist package (served from 127.0.0.1), and the page with and without an X-ray cache."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import featurelens as fl
from featurelens.caches import CacheError, ensure_recipe_cache, open_cache, recipe_cache_path, recipe_images
from featurelens.models import WeightsCorruptError, WeightsUnavailableError, weights_cache_dir
from featurelens.scenarios import load_recipes, load_scenario
from featurelens.search import polygon_mask
from featurelens.xray import (GroupStatsError, NIH_FINDINGS, compare_by, compare_scores, example_query, expert_boxes,
                              finding_scores, nih_table_path)
from tests.conftest import ROOT, SHARED_DATA
from tests.test_app import _navigation_app, _run  # noqa: F401  (the fixture is autouse)

RECIPES = load_recipes(ROOT / "cache_recipes")
SCENARIO = load_scenario(ROOT / "scenarios" / "chest_xray.toml")
N_WITH, N_WITHOUT = 12, 24   # the fixture subset: images with and without Cardiomegaly


def xray_home(base: Path) -> Path:
    """A FeatureLens home holding the NIH recipe's Lite0 cache of a real subset of the fixture
    (the first 12 X-rays with Cardiomegaly, the 3 with an expert Cardiomegaly box among them, and
    the first 24 without), built once per test session under ``base`` (pytest's basetemp)."""
    home = base / "xray-home"
    folder = base / "xray-pngs"
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data fixtures are not present")
    labels = pd.read_csv(SHARED_DATA / "chestxray-nih" / "labels.csv").sort_values("file")
    boxed = ["00001369_000.png", "00009745_000.png", "00013125_000.png"]
    with_files = boxed + [f for f in labels.loc[labels["cardiomegaly"] == 1, "file"] if f not in boxed][:N_WITH - 3]
    without = list(labels.loc[labels["cardiomegaly"] == 0, "file"][:N_WITHOUT])
    if not folder.is_dir():
        folder.mkdir()
        for name in with_files + without:
            (folder / name).symlink_to(SHARED_DATA / "chestxray-nih" / name)
    ensure_recipe_cache(RECIPES["nih_chestxray"], fl.load_model("efficientnet_lite0", device="cpu"), ["stage7"],
                        folder=home / "caches", images_folder=folder)
    return home


@pytest.fixture(scope="module")
def xray_cache(tmp_path_factory):
    home = xray_home(tmp_path_factory.getbasetemp())
    return open_cache(next((home / "caches").glob("nih_chestxray-*.zarr")))


# --- the NIH recipe --------------------------------------------------------------------------

def test_nih_recipe_builds_a_cache_whose_findings_match_the_nih_table(xray_cache):
    table = xray_cache.metadata
    assert len(table) == N_WITH + N_WITHOUT and xray_cache.model_name == "efficientnet_lite0.in1k"
    nih = pd.read_csv(nih_table_path("Data_Entry_2017_v2020.csv.gz")).set_index("Image Index")
    fixture = pd.read_csv(SHARED_DATA / "chestxray-nih" / "labels.csv").set_index("file")
    for _, row in table.iterrows():
        source = nih.loc[row["file"]]
        findings = set(source["Finding Labels"].split("|"))
        for finding in NIH_FINDINGS:
            assert row[finding] == (finding in findings), (row["file"], finding)
        assert (row["view_position"], row["patient_age"], row["patient_sex"]) == (
            source["View Position"], source["Patient Age"], source["Patient Gender"]), row["file"]
        # and against the fixture's own table, written independently of this code
        assert row["Cardiomegaly"] == bool(fixture.loc[row["file"], "cardiomegaly"]), row["file"]
        assert row["No Finding"] == bool(fixture.loc[row["file"], "no_finding"]), row["file"]
        assert row["view_position"] == fixture.loc[row["file"], "view_position"], row["file"]
    assert table["Cardiomegaly"].dtype == bool and int(table["Cardiomegaly"].sum()) == N_WITH
    assert table["nih_labelled"].all()


def test_nih_recipe_refuses_a_folder_without_nih_file_names(tmp_path):
    Image.new("L", (64, 64)).save(tmp_path / "cat.png")
    with pytest.raises(CacheError, match="NIH ChestX-ray14 file name"):
        recipe_images(RECIPES["nih_chestxray"], tmp_path)
    with pytest.raises(CacheError, match="pass that folder as images_folder"):
        recipe_images(RECIPES["nih_chestxray"])


def test_expert_boxes_come_from_the_nih_box_list():
    (box,) = expert_boxes("00001369_000.png")
    x0, y0, x1, y1 = box.box_xyxy
    assert box.finding == "Cardiomegaly" and 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert (x0 + x1) / 2 > 0.5   # an enlarged heart reaches the image's right (the patient's left)
    assert expert_boxes("00000001_000.png") == ()


# --- grouped score statistics, by hand -------------------------------------------------------

def test_auc_interval_and_test_equal_hand_computed_values():
    # with = {3, 1}, without = {2, 0}: pairs (3,2) (3,0) (1,0) won, (1,2) lost → AUC 3/4, U = 3.
    # Exact two-sided p: U over the 6 ways to place 2 + 2 ranks is 0,1,2,2,3,4 → 2·P(U ≥ 3) = 2·2/6.
    # Bootstrap, each group resampled on its own (4 equally likely resamples each, 16 pairs):
    # AUC 0 with p 1/16, 0.5 with 4/16, 0.75 with 4/16, 1 with 7/16 → 2.5% and 97.5% quantiles 0 and 1.
    c = compare_scores([3, 1], [2, 0], n_resamples=4000)
    assert (c.auc, c.u_statistic, c.n_with, c.n_without) == (0.75, 3.0, 2, 2)
    assert c.p_value == pytest.approx(2 / 3)
    assert (c.ci_low, c.ci_high) == (0.0, 1.0)
    # perfectly separated: every resample has AUC 1; p = 2 / C(6, 3) = 0.1
    c = compare_scores([5, 6, 7], [1, 2, 3])
    assert (c.auc, c.ci_low, c.ci_high) == (1.0, 1.0, 1.0) and c.p_value == pytest.approx(0.1)
    # a tie counts half: (0.5 vs 0.7) 0, (0.5 vs 0.2) 1, (0.7 vs 0.7) ½ twice, (0.7 vs 0.2) 1 twice → 4/6
    c = compare_scores([0.5, 0.7, 0.7], [0.7, 0.2])
    assert c.auc == pytest.approx(4 / 6) and c.u_statistic == pytest.approx(4.0)
    assert c.ci_low <= c.auc <= c.ci_high and c.median_with == 0.7 and c.median_without == pytest.approx(0.45)
    assert "67% of the time" in c.sentence() and "3 images with, 2 without" in c.sentence()


def test_the_interval_is_reproducible_with_its_seed_and_moves_with_another():
    rng = np.random.default_rng(1)
    with_s, without_s = rng.normal(0.6, 0.1, 30), rng.normal(0.5, 0.1, 40)
    a, b = compare_scores(with_s, without_s, seed=3), compare_scores(with_s, without_s, seed=3)
    other = compare_scores(with_s, without_s, seed=4)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high) and (a.ci_low, a.ci_high) != (other.ci_low, other.ci_high)
    assert a.ci_low < a.auc < a.ci_high


@pytest.mark.parametrize("with_s, without_s, message", [
    ([], [0.2, 0.3], "No image with Cardiomegaly here"),
    ([0.4, 0.5], [], "No image without Cardiomegaly here"),
    ([0.9], [0.2, 0.3], "Only one image with Cardiomegaly"),
    ([0.9, 0.8], [0.3], "Only one image without Cardiomegaly"),
    ([0.9, float("nan")], [0.3, 0.1], "not numbers"),
])
def test_degenerate_groups_get_a_clear_message(with_s, without_s, message):
    with pytest.raises(GroupStatsError, match=message):
        compare_scores(with_s, without_s, finding="Cardiomegaly")


def test_all_ties_say_the_scores_cannot_tell_the_groups_apart():
    c = compare_scores([0.4, 0.4, 0.4], [0.4, 0.4])
    assert (c.auc, c.ci_low, c.ci_high, c.p_value) == (0.5, 0.5, 0.5, 1.0)
    assert "same score" in c.note


def test_grouping_by_a_confounder_keeps_going_past_a_group_too_small_to_compare():
    table = pd.DataFrame({"score": [0.9, 0.8, 0.3, 0.2, 0.7, 0.1, 0.6], "valid": True,
                          "Cardiomegaly": [True, True, False, False, True, False, False],
                          "view_position": ["PA", "PA", "PA", "PA", "AP", "AP", "AP"]})
    scores = finding_scores(table, "Cardiomegaly", by="view_position")
    (ap, ap_result), (pa, pa_result) = compare_by(scores, "Cardiomegaly")
    assert (ap, pa) == ("AP view", "PA view")
    assert isinstance(ap_result, str) and "Only one image with Cardiomegaly" in ap_result
    assert pa_result.auc == 1.0 and (pa_result.n_with, pa_result.n_without) == (2, 2)
    with pytest.raises(GroupStatsError, match="not a yes/no"):
        finding_scores(table, "view_position")


def test_region_polygons_cover_their_area():
    for region in SCENARIO.regions:
        xs, ys = np.array(region.polygon).T
        area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))   # shoelace
        mask = polygon_mask(region.polygon, (14, 14))
        assert mask.mean() == pytest.approx(area, abs=0.01), region.name
    heart, lung = (polygon_mask(r.polygon, (7, 7)) for r in SCENARIO.regions)
    assert heart[:, 4:].sum() > heart[:, :3].sum() and lung[:, :3].sum() > lung[:, 4:].sum()


# --- the chest X-ray model -------------------------------------------------------------------

def _xrv_file(folder: Path) -> tuple[str, torch.nn.Module]:
    """A release-format file (a whole pickled DenseNet, random weights) under the release name."""
    import torchxrayvision as xrv

    torch.manual_seed(0)
    net = xrv.models.DenseNet(weights=None).eval()
    name = fl.get_spec("densenet121.xrv_nih").weights_source.rsplit("/", 1)[-1]
    torch.save(net, folder / name)
    return name, net


@pytest.fixture
def weights_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_xray_model_downloads_once_checks_its_file_and_uses_xrv_preprocessing(weights_server, tmp_path, monkeypatch,
                                                                              shared_data):
    folder, base = weights_server
    served, net = _xrv_file(folder)
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", base)
    assert not fl.weights_available("densenet121.xrv_nih")
    model = fl.load_model("densenet121.xrv_nih", device="cpu")
    assert fl.weights_available("densenet121.xrv_nih") and not model.has_classifier
    local = weights_cache_dir() / served
    assert (local.parent / (served + ".sha256")).read_text().strip() == hashlib.sha256(local.read_bytes()).hexdigest()
    for key, tensor in net.state_dict().items():
        assert torch.equal(model.module.state_dict()[key], tensor), key
    # torchxrayvision's own preprocessing: grey, [0, 255] → [-1024, 1024] (xrv.datasets.normalize)
    import torchxrayvision as xrv

    xray = np.asarray(Image.open(shared_data / "chestxray-nih" / "00000001_000.png").resize((224, 224)))
    seen = {}
    hook = model.module.features.conv0.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    feats = model.features([np.stack([xray] * 3, axis=-1)], ["denseblock4"])
    hook.remove()
    expected = xrv.datasets.normalize(xray.astype(np.float32), 255)
    np.testing.assert_allclose(seen["x"][0, 0].numpy(), expected, atol=1e-3)
    assert feats["denseblock4"].shape == (1, 7, 7, 1024)
    (folder / served).unlink()   # the second load reads the local file, checked against its pin
    fl.load_model("densenet121.xrv_nih", device="cpu")
    with open(local, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(WeightsCorruptError, match="does not match its recorded sha256"):
        fl.load_model("densenet121.xrv_nih", device="cpu")
    assert not local.exists()


def test_xray_model_offline_says_why_and_names_the_offline_models(tmp_path, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsUnavailableError, match="chest X-ray model densenet121.xrv_nih") as info:
        fl.load_model("densenet121.xrv_nih", device="cpu")
    assert info.value.reason == f"nothing answers at 127.0.0.1:{port}"
    assert "efficientnet_lite0.in1k" in str(info.value)
    assert not any((tmp_path / "weights").glob("*.pt*"))


def test_xray_model_declares_true_shapes():
    from featurelens.models.xrv import xrv_module

    spec = fl.get_spec("densenet121.xrv_all")
    model = fl.FeatureModel(xrv_module(weights="densenet121-res224-all"), spec, torch.device("cpu"))
    feats = model.features([np.zeros((300, 300), np.uint8)], [layer.name for layer in spec.layers])
    for layer in spec.layers:
        assert feats[layer.name].shape[1:] == (*layer.grid_hw(spec.input_hw), layer.channels), layer


# --- ChestMNIST through the real medmnist package --------------------------------------------

def _npz(labels: pd.DataFrame, n: int) -> bytes:
    """A ChestMNIST-format npz at 64 px made of real fixture X-rays, labels from the fixture table."""
    rows = labels.iloc[:n]
    images = np.stack([np.asarray(Image.open(SHARED_DATA / "chestxray-nih" / f).resize((64, 64))) for f in rows["file"]])
    label_nk = np.zeros((n, 14), np.uint8)
    label_nk[:, 1] = rows["cardiomegaly"].to_numpy()   # medmnist's label 1 is cardiomegaly
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{split}_images": images for split in ("train", "val", "test")},
             **{f"{split}_labels": label_nk for split in ("train", "val", "test")})
    return buffer.getvalue()


def test_chestmnist_recipe_downloads_through_medmnist_and_checks_the_md5(weights_server, tmp_path, monkeypatch,
                                                                         shared_data):
    import medmnist

    folder, base = weights_server
    labels = pd.read_csv(shared_data / "chestxray-nih" / "labels.csv").sort_values("cardiomegaly", ascending=False)
    data = _npz(labels, 8)
    (folder / "chestmnist_64.npz").write_bytes(data)
    info = {**medmnist.INFO["chestmnist"], "url_64": f"{base}/chestmnist_64.npz",
            "MD5_64": hashlib.md5(data).hexdigest()}
    monkeypatch.setitem(medmnist.INFO, "chestmnist", info)
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    recipe = RECIPES["chestmnist"].model_copy(update={"size": 64, "max_images": 6})
    images, table = recipe_images(recipe)
    assert len(images) == 6 and images[0].load().size == (64, 64)
    assert table["Cardiomegaly"].tolist() == [bool(v) for v in labels["cardiomegaly"][:6]]
    assert table["Cardiomegaly"].dtype == bool and "Pleural_Thickening" in table
    assert (tmp_path / "home" / "datasets" / "medmnist" / "chestmnist_64.npz").is_file()

    monkeypatch.setitem(medmnist.INFO, "chestmnist", {**info, "MD5_64": "0" * 32})   # another file: refused
    (tmp_path / "home" / "datasets" / "medmnist" / "chestmnist_64.npz").unlink()
    with pytest.raises(CacheError, match="fails its MD5 checksum"):
        recipe_images(recipe)
    assert not (tmp_path / "home" / "datasets" / "medmnist" / "chestmnist_64.npz").exists()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setitem(medmnist.INFO, "chestmnist", {**info, "url_64": f"http://127.0.0.1:{port}/x.npz"})
    with pytest.raises(CacheError, match=f"could not be downloaded: nothing answers at 127.0.0.1:{port}"):
        recipe_images(recipe)


# --- the page ----------------------------------------------------------------------------------

def test_offline_page_without_an_xray_cache_shows_the_ways_in(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    at = _run("chest_xray")
    assert not at.exception, [e.value for e in at.exception]
    infos = " ".join(i.value for i in at.info)
    assert "no chest X-ray cache for **efficientnet_lite0.in1k**" in infos
    assert [t.label for t in at.tabs] == ["Build from a folder you have", "Install a prebuilt cache",
                                          "Download ChestMNIST"]
    assert "photo model trained on ImageNet" in at.warning[0].value and "never seen a chest X-ray" in at.warning[0].value
    assert at.text_input(key="cx_folder") is not None and at.button(key="cx_mnist") is not None


def test_page_with_the_fixture_cache_compares_heart_and_lung(tmp_path_factory, xray_cache, monkeypatch):
    monkeypatch.setenv("FEATURELENS_HOME", str(xray_home(tmp_path_factory.getbasetemp())))
    at = _run("chest_xray")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cx_query").value == "00001369_000.png"   # the first Cardiomegaly X-ray with a box
    assert at.radio(key="cx_region").options == ["heart", "right lung", "expert box: Cardiomegaly"]
    assert any(m.value.startswith(f"**Top 10 of {N_WITH + N_WITHOUT - 1} X-rays**") for m in at.markdown)
    assert at.subheader[0].value == "X-rays with vs without Cardiomegaly"
    both = at.dataframe[-1].value
    assert both[""].tolist() == ["heart", "right lung"]
    assert both["with"].tolist() == [N_WITH - 1] * 2 and both["without"].tolist() == [N_WITHOUT] * 2
    assert all(0 <= auc <= 1 for auc in both["AUC"])
    at.radio(key="cx_by").set_value("view (PA: from the back, AP: from the front)").run()
    assert not at.exception and {"AP view", "PA view"} <= set(at.dataframe[0].value[""])


def test_the_example_query_has_the_finding_and_its_expert_box_when_one_exists():
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "Cardiomegaly": [False, True, True, False],
                          "file": ["00000001_000.png", "00000002_000.png", "sub/00001369_000.png", "00000003_000.png"]})
    assert expert_boxes("00001369_000.png") and not expert_boxes("00000002_000.png")
    assert example_query(table, "Cardiomegaly") == "c"                  # b has the finding, c also its box
    assert example_query(table.drop(index=2), "Cardiomegaly") == "b"    # no box: the first with the finding
    assert example_query(table, "Hernia") == "a"                        # no such column: the first image
