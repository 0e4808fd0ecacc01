"""Behaviour of featurelens.cache: round trips, resume after SIGKILL, refusals that name the field."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from PIL import Image
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore, MemoryStore

from featurelens.caches import (CacheCorruptError, CacheError, CacheIncompleteError, CacheLockWarning,
                               CacheMismatchError, build_cache, image_metadata, open_cache)
from featurelens.images import GalleryImage, folder_images
from featurelens.models import FeatureModel, load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGENET = DATA / "imagenet-samples"

LAYERS = ["stage3", "stage5"]


@pytest.fixture(scope="module")
def model() -> FeatureModel:
    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="module")
def imagenet(shared_data) -> tuple[GalleryImage, ...]:
    return folder_images(IMAGENET)


@pytest.fixture(scope="module")
def small_cache_dict(model, imagenet) -> dict:
    """A finished 3-image cache (stage3, stage5; 2 images per chunk) in a dict-backed memory store."""
    store_dict: dict = {}
    build_cache(MemoryStore(store_dict), imagenet[:3], model, LAYERS, dataset_name="three", chunk_images=2)
    return store_dict


def _copy(store_dict: dict) -> MemoryStore:
    return MemoryStore(dict(store_dict))


def test_round_trip_in_memory_keeps_features_thumbnails_and_csv_metadata(model, imagenet):
    images = imagenet[:5]
    labels = pd.read_csv(IMAGENET / "labels.csv")
    table = image_metadata(images, root=IMAGENET, labels=labels)
    calls: list[tuple[int, int]] = []
    cache = build_cache(MemoryStore(), images, model, LAYERS, dataset_name="imagenet-5", description="five fish",
                        metadata=table, batch_size=3, chunk_images=3, recipe="imagenet-samples",
                        progress=lambda done, total: calls.append((done, total)))

    pils = [image.load() for image in images]
    expected = model.features(pils, LAYERS)
    for layer in LAYERS:
        stored = cache.features(layer)
        h, w, c = cache.layer_shape(layer)
        assert stored.shape == (5, h, w, c) == expected[layer].shape
        assert stored.dtype == np.float16 and stored.chunks == (3, h, w, c)
        assert stored.metadata.dimension_names == ("image", "y", "x", "channel")
        assert stored.attrs["layout"] == "NHWC" and stored.attrs["model"] == "efficientnet_lite0.in1k"
        assert stored.attrs["stride"] == model.layer(layer).stride == cache.layer_stride(layer)
        np.testing.assert_allclose(stored[:].astype(np.float32), expected[layer], rtol=1e-3, atol=1e-3)
    thumbs_nhwc_u8 = np.stack([np.asarray(p.resize((128, 128), Image.BICUBIC)) for p in pils])
    np.testing.assert_array_equal(cache.thumbnails[:], thumbs_nhwc_u8)
    assert cache.thumbnails.metadata.dimension_names == ("image", "y", "x", "rgb")

    meta = cache.metadata
    assert meta["id"].tolist() == [image.id for image in images] == list(cache.image_ids)
    assert meta["file"].tolist() == [Path(image.path).name for image in images]
    assert list(zip(meta["width"], meta["height"])) == [p.size for p in pils]
    assert meta["class_index"].tolist() == [0, 1, 2, 3, 4] and meta["class_index"].dtype == np.int64
    assert meta["class_name"].tolist()[:2] == ["tench", "goldfish"]
    assert (meta["load_error"] == "").all() and cache.loaded_n.all() and cache.skipped == {}

    attrs = cache.attrs
    assert attrs["featurelens_cache_format"] == 1 and attrs["complete"] is True
    assert attrs["model"] == "efficientnet_lite0.in1k" and attrs["weights_sha256"] == model.spec.weights_sha256
    assert attrs["preprocessing"] == model.spec.preprocessing and attrs["input_hw"] == [224, 224]
    assert attrs["layers"]["stage5"] == {"shape": [14, 14, 112], "stride": 16}
    assert attrs["dataset"] == {"name": "imagenet-5", "description": "five fish"}
    assert attrs["recipe"] == "imagenet-samples" and attrs["image_sources"] == [image.path for image in images]
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert "imagenet-5 — five fish" in cache.describe() and "stage5 14×14×112 stride 16" in cache.describe()


RESUME_SCRIPT = """
import sys
from featurelens.caches import build_cache
from featurelens.images import folder_images
from featurelens.models import load_model
build_cache(sys.argv[2], folder_images(sys.argv[1])[:12], load_model("efficientnet_lite0", device="cpu"),
            ["stage3", "stage5"], dataset_name="resume", batch_size=3, chunk_images=3)
"""


def _start_and_kill_after_first_chunk(out: Path) -> None:
    """Run the build in a subprocess and SIGKILL it once a chunk is marked done."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(IMAGENET), str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "progress" / "c" / "0").is_file():  # renamed into place: chunk 0 is done
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"build was not killed mid-way: {proc.stderr.read().decode()[-2000:]}"


def test_build_killed_with_sigkill_resumes_to_the_same_bytes(tmp_path, model, imagenet):
    killed, fresh = tmp_path / "killed.zarr", tmp_path / "fresh.zarr"
    _start_and_kill_after_first_chunk(killed)

    with pytest.raises(CacheIncompleteError, match=r"incomplete \('complete' is false\).*Re-run the same build"):
        open_cache(killed)
    done = np.flatnonzero(zarr.open_array(LocalStore(killed / "progress"), mode="r")[:])
    assert 1 <= len(done) < 4
    first_chunk = killed / "features" / "stage3" / "c" / "0" / "0" / "0" / "0"
    before = first_chunk.stat()

    calls: list[tuple[int, int]] = []
    args = dict(dataset_name="resume", batch_size=3, chunk_images=3)
    with pytest.warns(CacheLockWarning, match=r"took over the build lock .* is no longer running"):  # the killed build's
        resumed = build_cache(str(killed), imagenet[:12], model, LAYERS, **args,
                              progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (3 * len(done), 12), "finished chunks were recomputed"
    after = first_chunk.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    uninterrupted = build_cache(str(fresh), imagenet[:12], model, LAYERS, **args)
    for layer in LAYERS:
        np.testing.assert_array_equal(resumed.features(layer)[:], uninterrupted.features(layer)[:])
    np.testing.assert_array_equal(resumed.thumbnails[:], uninterrupted.thumbnails[:])
    pd.testing.assert_frame_equal(resumed.metadata, uninterrupted.metadata)
    ignore = {"created", "completed"}
    assert {k: v for k, v in resumed.attrs.items() if k not in ignore} == \
           {k: v for k, v in uninterrupted.attrs.items() if k not in ignore}


def _other_weights(model: FeatureModel) -> FeatureModel:
    spec = dataclasses.replace(model.spec, weights_sha256="0" * 64)
    return FeatureModel(model.module, spec, torch.device("cpu"))


@pytest.mark.parametrize("request_for, match", [
    (lambda m: {"model": "efficientnet_lite1"},
     r"built with model 'efficientnet_lite0\.in1k', you asked for 'efficientnet_lite1\.in1k'"
     r".*--model efficientnet_lite1"),
    (lambda m: {"model": _other_weights(m)}, r"built with weights_sha256 '579344248a93.*, you asked for '0000"),
    (lambda m: {"layers": ["stage3", "stage2"]}, r"has no layer 'stage2': it was built with layers stage3, stage5"),
    (lambda m: {"layers": "stage7"}, r"has no layer 'stage7'"),
    (lambda m: {"preprocessing": {**m.spec.preprocessing, "resample": "bilinear"}},
     r"built with preprocessing .*differs in 'resample': 'bicubic' vs 'bilinear'"),
], ids=["model", "weights", "layer", "layer-string", "preprocessing"])
def test_open_refuses_a_cache_built_for_something_else(small_cache_dict, model, request_for, match):
    with pytest.raises(CacheMismatchError, match=match):
        open_cache(_copy(small_cache_dict), **request_for(model))


def test_open_accepts_the_matching_model_layers_and_preprocessing(small_cache_dict, model):
    cache = open_cache(_copy(small_cache_dict), model=model, layers="stage5",
                       preprocessing=model.spec.preprocessing, verify=True)
    assert cache.layers == ("stage3", "stage5") and cache.n_images == 3 and cache.model_name == model.name
    with pytest.raises(CacheMismatchError, match=r"no layer 'stage9'.*stage3, stage5"):
        cache.features("stage9")


def _edit_attrs(store_dict: dict, edit) -> None:
    root = zarr.open_group(MemoryStore(store_dict), mode="r+")
    attrs = dict(root.attrs)
    edit(attrs)
    root.attrs.put(attrs)


def _set_bytes(store_dict: dict, key: str, data: bytes | None) -> None:
    assert key in store_dict, sorted(store_dict)
    if data is None:
        del store_dict[key]
    else:
        store_dict[key] = default_buffer_prototype().buffer.from_bytes(data)


DAMAGE = {
    "missing weights attribute": (lambda s: _edit_attrs(s, lambda a: a.pop("weights_sha256")),
                                  CacheCorruptError, r"no 'weights_sha256' attribute", False),
    "missing preprocessing attribute": (lambda s: _edit_attrs(s, lambda a: a.pop("preprocessing")),
                                        CacheCorruptError, r"no 'preprocessing' attribute", False),
    "not a cache": (lambda s: _edit_attrs(s, lambda a: a.pop("featurelens_cache_format")),
                    CacheError, r"no 'featurelens_cache_format' attribute", False),
    "newer format": (lambda s: _edit_attrs(s, lambda a: a.update(featurelens_cache_format=2)),
                     CacheError, r"featurelens_cache_format 2.*upgrade FeatureLens or rebuild", False),
    "unfinished": (lambda s: _edit_attrs(s, lambda a: a.update(complete=False)),
                   CacheIncompleteError, r"'complete' is false.*2 of 2 chunks \(3 of 3 images\).*Re-run", False),
    "deleted chunk": (lambda s: _set_bytes(s, "features/stage5/c/1/0/0/0", None),
                      CacheCorruptError, r"truncated: features/stage5 has 1 of 2 chunks", False),
    "deleted array": (lambda s: _set_bytes(s, "thumbnails/zarr.json", None),
                      CacheCorruptError, r"no readable array 'thumbnails'", False),
    "garbage chunk": (lambda s: _set_bytes(s, "features/stage3/c/0/0/0/0", b"\x00garbage" * 64),
                      CacheCorruptError, r"damaged: features/stage3 images 0\.\.1 cannot be decoded", True),
    "broken zarr.json": (lambda s: _set_bytes(s, "zarr.json", b'{"zarr_format": 3, "node_ty'),
                         CacheCorruptError, r"zarr\.json .* cannot be read", False),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_open_refuses_a_damaged_cache_naming_what_is_wrong(small_cache_dict, damage):
    harm, error, match, verify = DAMAGE[damage]
    store_dict = dict(small_cache_dict)
    harm(store_dict)
    with pytest.raises(error, match=match):
        open_cache(MemoryStore(store_dict), verify=verify)


def test_open_on_an_empty_store_says_how_to_build_one(tmp_path):
    with pytest.raises(CacheError, match=r"no FeatureLens cache at .*cache build .*--out"):
        open_cache(tmp_path / "nothing.zarr")


def test_build_refuses_to_mix_with_a_cache_of_other_layers_or_images(small_cache_dict, model, imagenet):
    with pytest.raises(CacheMismatchError,
                       match=r"built with layers \['stage3', 'stage5'\], this build asks for \['stage3'\]"):
        build_cache(_copy(small_cache_dict), imagenet[:3], model, ["stage3"], dataset_name="three", chunk_images=2)
    with pytest.raises(CacheMismatchError, match=r"built with n_images 3, this build asks for 4"):
        build_cache(_copy(small_cache_dict), imagenet[:4], model, LAYERS, dataset_name="three", chunk_images=2)
    with pytest.raises(CacheMismatchError, match=r"built with model 'efficientnet_lite0.in1k'"):
        build_cache(_copy(small_cache_dict), imagenet[:3], _renamed(model), LAYERS, dataset_name="three",
                    chunk_images=2)


def _renamed(model: FeatureModel) -> FeatureModel:
    return FeatureModel(model.module, dataclasses.replace(model.spec, name="efficientnet_lite0.other"),
                        torch.device("cpu"))


def test_build_of_a_finished_cache_with_the_same_arguments_computes_nothing(small_cache_dict, model, imagenet):
    calls: list[tuple[int, int]] = []
    cache = build_cache(_copy(small_cache_dict), imagenet[:3], model, LAYERS, dataset_name="three", chunk_images=2,
                        progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 3)] and cache.n_images == 3


def test_build_refuses_a_folder_that_is_not_a_cache(tmp_path, model, imagenet):
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(CacheError, match=r"is not empty and is not a FeatureLens cache"):
        build_cache(tmp_path, imagenet[:1], model, LAYERS, dataset_name="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unreadable_image_is_skipped_recorded_and_stored_as_zeros(tmp_path, model, imagenet):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    broken = GalleryImage(id="broken.jpg", caption="broken", source=str(bad), license="none", path=str(bad))
    images = [imagenet[0], broken, imagenet[1]]
    cache = build_cache(MemoryStore(), images, model, ["stage5"], dataset_name="with-bad", batch_size=3)

    assert list(cache.skipped) == ["broken.jpg"] and "broken.jpg" in cache.skipped["broken.jpg"]
    assert cache.loaded_n.tolist() == [True, False, True]
    feats = cache.features("stage5")[:]
    assert not feats[1].any() and not cache.thumbnails[1].any() and feats[0].any() and feats[2].any()
    meta = cache.metadata
    assert meta.loc[1, "width"] == 0 and meta.loc[0, "width"] > 0 and "not an image" in meta.loc[1, "load_error"]
    assert "1 could not be loaded" in cache.describe()


def test_image_metadata_reads_labels_from_folders_and_joins_a_csv(shared_data):
    root = DATA / "pacs"
    images = [image for image in folder_images(root) if image.id.endswith("pic_001.jpg")][:3]
    table = image_metadata(images, root=root)
    assert table["file"].tolist() == [image.id for image in images]
    assert [(r.domain, r.label) for r in table.itertuples()] == [tuple(i.id.split("/")[:2]) for i in images]

    csv = pd.read_csv(root / "labels.csv")
    joined = image_metadata(images, root=root, labels=csv)
    assert joined["class"].tolist() == table["label"].tolist() and joined.attrs["unlabelled"] == []
    partial = image_metadata(images, root=root, labels=csv[csv["file"] != images[0].id])
    assert partial.attrs["unlabelled"] == [images[0].id] and pd.isna(partial.loc[0, "class"])

    with pytest.raises(CacheError, match=r"no 'file' column \(its columns: domain, class\)"):
        image_metadata(images, root=root, labels=csv.drop(columns=["file"]))
    with pytest.raises(CacheError, match=r"no image matches a row of the labels table"):
        image_metadata(images, root=root, labels=csv.assign(file="elsewhere/" + csv["file"]))
    with pytest.raises(CacheError, match=r"more than once in 'file'"):
        image_metadata(images, root=root, labels=pd.concat([csv, csv.head(1)]))


def test_build_checks_its_arguments_before_writing(model, imagenet):
    store: dict = {}
    with pytest.raises(CacheError, match="no images to cache"):
        build_cache(MemoryStore(store), [], model, LAYERS, dataset_name="x")
    with pytest.raises(KeyError, match=r"no layer 'stage9'.*list_layers"):
        build_cache(MemoryStore(store), imagenet[:1], model, ["stage9"], dataset_name="x")
    with pytest.raises(CacheError, match=r"batch_size must be a positive integer, got 0"):
        build_cache(MemoryStore(store), imagenet[:1], model, LAYERS, dataset_name="x", batch_size=0)
    with pytest.raises(CacheError, match=r"metadata has 2 rows for 1 images"):
        build_cache(MemoryStore(store), imagenet[:1], model, LAYERS, dataset_name="x",
                    metadata=pd.DataFrame({"label": ["a", "b"]}))
    assert store == {}


@pytest.mark.parametrize("layers, expected", [
    ("stage3", ("stage3",)), ("stage3, stage5", ("stage3", "stage5")), (["stage5"], ("stage5",)),
    (("stage3", "stage5"), ("stage3", "stage5")), (" stage3 ,", ("stage3",)),
    ("", ValueError), (",", ValueError), ([], ValueError), ("stage3,stage3", ValueError),
])
def test_layer_arguments_are_normalised_in_one_place(layers, expected):
    from featurelens.models import parse_layer_names

    if expected is ValueError:
        with pytest.raises(ValueError, match=r"no layer names|repeat stage3"):
            parse_layer_names(layers)
    else:
        assert parse_layer_names(layers) == expected


@pytest.mark.parametrize("layers", ["", "stage7,stage7", []])
def test_open_cache_refuses_empty_or_repeated_layer_arguments(small_cache_dict, layers):
    with pytest.raises(CacheError, match=r"no layer names|repeat stage7"):
        open_cache(_copy(small_cache_dict), layers=layers)


@pytest.mark.parametrize("store_like, read_only, expected", [
    ("some/cache.zarr", False, "LocalStore"), (Path("cache.zarr"), True, "LocalStore"), ({}, False, "MemoryStore"),
    (MemoryStore(), True, "MemoryStore"), ("cache.zip", True, "ZipStore"), ("cache.ZIP", False, CacheError),
    (42, True, TypeError),
])
def test_store_likes_become_stores_in_one_place(tmp_path, store_like, read_only, expected):
    from featurelens.caches import as_store

    if isinstance(store_like, str) and store_like.endswith(".zip"):
        zarr.open_group(zarr.storage.ZipStore(tmp_path / "cache.zip", mode="w"), mode="w").store.close()
        store_like = str(tmp_path / "cache.zip")
    if isinstance(expected, type) and issubclass(expected, Exception):
        with pytest.raises(expected, match=r"zip entries cannot be replaced|expected a path, a dict or a zarr Store"):
            as_store(store_like, read_only=read_only)
    else:
        store = as_store(store_like, read_only=read_only)
        assert type(store).__name__ == expected and store.read_only == read_only


def test_a_zipped_cache_opens_and_reads_like_the_original(tmp_path, small_cache_dict):
    original = open_cache(_copy(small_cache_dict))
    with zipfile.ZipFile(tmp_path / "three.zip", "w") as archive:
        for key, buffer in small_cache_dict.items():
            archive.writestr(key, buffer.to_bytes())
    zipped = open_cache(tmp_path / "three.zip", layers=LAYERS, verify=True)
    np.testing.assert_array_equal(zipped.features("stage3")[:], original.features("stage3")[:])
    pd.testing.assert_frame_equal(zipped.metadata, original.metadata)
