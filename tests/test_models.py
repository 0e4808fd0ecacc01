"""Models: real offline weights, layer shapes, one-pass extraction, downloads, wrapping."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import featurelens as fl
from featurelens.models import ModelSpec, UnknownLayerError, UnknownModelError, registered, torchvision_builder
from featurelens.models import WeightsCorruptError, WeightsUnavailableError, fetch_weights, file_sha256
from featurelens.models import capture, lite_package_weights, resolve_device, tokens_nlc_to_nhwc

OFFLINE = fl.list_models(offline_only=True)


def test_offline_default_predicts_cat_and_espresso(lite0, chelsea_hwc_u8, coffee_hwc_u8):
    cat, coffee = lite0.classify([chelsea_hwc_u8, coffee_hwc_u8], topk=5)
    assert cat[0].index in range(281, 286), cat[0]
    assert coffee[0].label in ("espresso", "cup"), coffee[0]
    assert cat[0].probability > 0.5


@pytest.mark.parametrize("name", OFFLINE)
def test_every_offline_model_declares_true_shapes(name, chelsea_hwc_u8):
    model = fl.load_model(name, device="cpu")
    layer_names = [layer.name for layer in model.layers]
    feats = model.features([chelsea_hwc_u8], layer_names)
    for layer in model.layers:
        assert feats[layer.name].shape == (1, *layer.grid_hw(model.input_hw), layer.channels), layer
    top = model.classify([chelsea_hwc_u8])[0][0]
    if "random" in name:   # untrained: no better than chance at the cat
        assert top.index not in range(281, 286) and top.probability < 0.2, top
    else:
        assert top.index in range(281, 286), top


def test_random_init_model_is_the_same_on_every_load(chelsea_hwc_u8):
    a, b = (fl.load_model("efficientnet_lite0_random", device="cpu") for _ in range(2))
    trained = fl.load_model("efficientnet_lite0", device="cpu")
    fa, fb, ft = (m.features([chelsea_hwc_u8], ["stage5"])["stage5"] for m in (a, b, trained))
    assert np.array_equal(fa, fb)
    assert not np.allclose(fa, ft, atol=1e-2)


def test_two_layers_in_one_pass_equal_separate_passes(lite0, chelsea_hwc_u8, coffee_hwc_u8):
    images = [chelsea_hwc_u8, coffee_hwc_u8]
    together = lite0.features(images, ["stage3", "head"])
    alone3 = lite0.features(images, ["stage3"])["stage3"]
    alone_head = lite0.features(images, ["head"])["head"]
    np.testing.assert_allclose(together["stage3"], alone3, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(together["head"], alone_head, rtol=1e-5, atol=1e-5)
    assert together["stage3"].dtype == np.float32 and together["stage3"].flags.c_contiguous


def test_batching_does_not_change_features(lite0, chelsea_hwc_u8, coffee_hwc_u8):
    images = [chelsea_hwc_u8, coffee_hwc_u8, chelsea_hwc_u8[::-1]]
    batched = lite0.features(images, ["stage5"], batch_size=3)["stage5"]
    single = lite0.features(images, ["stage5"], batch_size=1)["stage5"]
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)


def test_corrupted_state_dict_fails_loudly(tmp_path):
    state = torch.load(lite_package_weights(0), map_location="cpu", weights_only=True)
    key = "_blocks.3._depthwise_conv.weight"
    state[key] = state[key][:, :, :2, :2].clone()
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsCorruptError, match=r"_blocks\.3\._depthwise_conv\.weight"):
        fl.load_model("efficientnet_lite0", weights_path=bad)
    del state["_fc.bias"]
    torch.save(state, bad)
    with pytest.raises(WeightsCorruptError, match="tensors"):
        fl.load_model("efficientnet_lite0", weights_path=bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsCorruptError, match="cannot read"):
        fl.load_model("efficientnet_lite0", weights_path=bad)


def test_registry_names_and_errors():
    assert fl.resolve_model_name("efficientnet_lite0") == "efficientnet_lite0.in1k"
    assert "efficientnet_lite0.random_init" in OFFLINE
    assert [n for n in OFFLINE if n.endswith(".in1k")][:3] == ["efficientnet_lite0.in1k", "efficientnet_lite1.in1k", "efficientnet_lite2.in1k"]
    assert {"resnet50.tv_in1k", "googlenet.tv_in1k", "vgg16.tv_in1k"} <= set(fl.list_models())
    with pytest.raises(UnknownModelError, match="Did you mean .*efficientnet_lite0.in1k"):
        fl.get_spec("efficientnet_lite")
    with pytest.raises(UnknownLayerError, match="Did you mean stage4.*list_layers"):
        fl.get_spec("efficientnet_lite0").layer("stage_4")
    assert fl.get_spec("googlenet").layer("mixed4d").module == "inception4d"
    assert fl.get_spec("resnet50").layer("conv5_x").channels == 2048


def test_layer_labels_are_readable(lite0):
    assert lite0.layer_label("stage4") == "stage 4 · 14×14×80"
    assert lite0.layer_label("head") == "head · 7×7×1280"


def test_misspelt_module_path_names_close_matches_and_list_layers(lite0):
    with pytest.raises(KeyError, match=r"blocks\.3.*list_layers"):
        with capture(lite0.module, ["block.3"]):
            pass


def test_extraction_leaves_the_model_as_it_found_it(lite0):
    module = lite0.module
    module.train()
    try:
        with pytest.raises(RuntimeError):
            with capture(module, ["blocks.2", "bn2"]):
                assert not module.training
                module(torch.zeros(1, 3, 5))  # wrong rank: the forward pass raises
        assert module.training
        assert all(not m._forward_hooks for m in module.modules())
    finally:
        module.eval()
    lite0.features([np.zeros((32, 32, 3), np.uint8)], ["stage1"])
    assert all(not m._forward_hooks for m in module.modules()) and not module.training


@pytest.fixture()
def local_server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    (tmp_path / "srv").mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path / "srv", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _serve_resnet18(folder: Path) -> str:
    import torchvision

    torch.manual_seed(0)
    path = folder / "tmp.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    name = f"resnet18-{file_sha256(path)[:8]}.pth"
    path.rename(folder / name)
    return name


def test_load_model_downloads_weights_once_from_a_mirror(local_server, tmp_path, monkeypatch):
    """load_model's download path end to end: registry record → builder → pooch download from the
    mirror → hash-prefix check → strict load → features; a second load reads the file, not the server."""
    folder, base = local_server
    served = _serve_resnet18(folder)
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", base)
    url = f"https://download.invalid/models/{served}"  # only the mirror can serve it
    record = ModelSpec(**{**fl.get_spec("resnet18").__dict__, "name": "resnet18.mirror_test", "weights_source": url,
                          "weights_sha256": served.split("-")[1][:8], "builder": torchvision_builder("resnet18", url)})
    with registered(record):
        assert not fl.weights_available("resnet18.mirror_test")
        model = fl.load_model("resnet18.mirror_test", device="cpu")
        assert fl.weights_available("resnet18.mirror_test")
        (folder / served).unlink()  # the server forgets the file: the next load must use the local copy
        again = fl.load_model("resnet18.mirror_test", device="cpu")
    assert "resnet18.mirror_test" not in fl.list_models()
    feats = model.features([np.zeros((64, 64, 3), np.uint8)], ["conv2_x", "conv5_x"])
    assert feats["conv2_x"].shape == (1, 56, 56, 64) and feats["conv5_x"].shape == (1, 7, 7, 512)
    assert (tmp_path / "home" / "weights" / served).is_file()
    for name, tensor in model.module.state_dict().items():
        assert torch.equal(tensor, again.module.state_dict()[name]), name


def test_offline_seed_model_names_offline_models_and_leaves_no_file(local_server, tmp_path, monkeypatch):
    folder, base = local_server
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURELENS_WEIGHTS_MIRROR", base + "/missing")
    with pytest.raises(WeightsUnavailableError, match="efficientnet_lite0.in1k"):
        fl.load_model("resnet50")
    assert not fl.weights_available("resnet50")
    assert list((tmp_path / "home" / "weights").iterdir()) == []


def test_corrupt_download_is_removed(local_server, tmp_path):
    folder, base = local_server
    (folder / "resnet18-deadbeef.pth").write_bytes(b"x" * 1000)
    with pytest.raises(WeightsCorruptError, match="checksum"):
        fetch_weights(f"{base}/resnet18-deadbeef.pth", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_wrap_any_module_with_vit_tokens():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, reg_tokens=4,
                            class_token=True)
    model = fl.wrap_module(vit, name="vit.tiny", layers=["blocks.2", "blocks.11", "patch_embed"])
    assert model.num_prefix_tokens == 5
    feats = model.features([np.zeros((224, 224, 3), np.uint8)], ["blocks.2", "patch_embed"])
    assert feats["blocks.2"].shape == (1, 14, 14, 192)
    assert model.layer("blocks.11").stride == 16


def test_wrapped_vit_tokens_keep_spatial_order():
    tokens_nlc = torch.arange(2 * (1 + 6) * 3, dtype=torch.float32).reshape(2, 7, 3)
    grid = tokens_nlc_to_nhwc(tokens_nlc, num_prefix_tokens=1, grid_hw=(2, 3))
    assert torch.equal(grid[1, 1, 2], tokens_nlc[1, 1 + 5])
    with pytest.raises(ValueError, match="square"):
        tokens_nlc_to_nhwc(tokens_nlc, num_prefix_tokens=0)


def test_device_is_chosen_automatically():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type in (expected, "mps")


@pytest.mark.parametrize("name", [n for n in fl.list_models() if not fl.get_spec(n).offline])
def test_online_models_declare_true_shapes_and_paper_names(name):
    """The architecture (random weights: no download) really has each declared layer with
    the declared channels and stride."""
    import torchvision

    spec = fl.get_spec(name)
    kwargs = {"aux_logits": False, "init_weights": False} if spec.arch == "googlenet" else {}
    module = torchvision.models.get_model(spec.arch, weights=None, **kwargs)
    model = fl.FeatureModel(module, spec, torch.device("cpu"))
    feats = model.features([np.zeros((224, 224, 3), np.uint8)], [layer.name for layer in spec.layers])
    for layer in spec.layers:
        assert feats[layer.name].shape[1:] == (*layer.grid_hw(spec.input_hw), layer.channels), layer


def test_models_cli_lists_offline_and_online_models(capsys):
    from featurelens.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0.in1k" in out and "offline" in out
    assert "stage 4 · 14×14×80" in out and "mixed4d" in out
    assert main(["models", "--brief", "--include", "resnet*"]) == 0
    brief = capsys.readouterr().out.splitlines()
    assert len(brief) == 2 and all(line.startswith("resnet") for line in brief)


def test_registry_refuses_duplicates_and_inconsistent_specs():
    from featurelens.models import LayerSpec, ModelSpec, register_model

    spec = fl.get_spec("efficientnet_lite0")
    with pytest.raises(ValueError, match="already registered"):
        register_model(lambda: spec)
    with pytest.raises(ValueError, match="never decrease"):
        ModelSpec(**{**spec.__dict__, "name": "x.y", "layers": tuple(reversed(spec.layers))})
    with pytest.raises(ValueError, match="default layers"):
        ModelSpec(**{**spec.__dict__, "name": "x.y", "default_layers": ("stage9",)})
    with pytest.raises(ValueError, match="positive"):
        LayerSpec("bad", "blocks.0", 0, 2)
