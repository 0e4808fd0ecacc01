"""Cache integrity (issue 8): damaged chunks refused on read, in search and in the listing, and
repaired to the same bytes; root attributes validated as one record; one build per cache at a
time; an interrupted setup says that re-running resumes it. All on real caches of real photos."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from featurelens.caches import (CacheAttributesError, CacheBusyError, CacheCorruptError, CacheError,
                                CacheIncompleteError, CacheLockWarning, CacheMismatchError, build_cache, list_caches,
                                open_cache, repair_cache)
from featurelens.caches import as_store
from featurelens.caches.lock import LOCK_KEY, build_lock
from featurelens.cli import main
from featurelens.images import bundled_gallery, folder_images
from featurelens.search import query_from_features, search

ROOT = Path(__file__).resolve().parents[1]
LAYER = "stage3"
ARGS = dict(dataset_name="four", chunk_images=2, batch_size=2)
CHUNK_1 = f"features/{LAYER}/c/1/0/0/0"  # images 2 and 3


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four real photos in a folder of their own (so a test can take their files away)."""
    folder = tmp_path_factory.mktemp("photos")
    for image in bundled_gallery()[:4]:
        shutil.copy(image.path, folder / Path(image.path).name)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, photos, lite0) -> Path:
    """A finished 4-image cache (2 chunks of 2 images) of the photos, built once."""
    out = tmp_path_factory.mktemp("built") / "four.zarr"
    build_cache(out, folder_images(photos), lite0, [LAYER], **ARGS)
    return out


@pytest.fixture
def cache_dir(tmp_path, built) -> Path:
    """A fresh copy of the built cache, alone in a caches folder."""
    shutil.copytree(built, tmp_path / "four.zarr")
    return tmp_path / "four.zarr"


def _flip_bits(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {"flipped bits": _flip_bits, "cut in half": _cut_in_half}
NAMES_IMAGES_AND_FIX = (r"damaged: features/stage3 images 2\.\.3 cannot be decoded \(chunk 1: 'coffee\.png', "
                        r"'rocket\.jpg';.*Repair it .*`python -m featurelens cache repair .*four\.zarr`")


def _query(cache):
    feats_hwc = cache.features(LAYER)[0].astype(np.float32)  # chunk 0 is intact
    mask_hw = np.zeros(feats_hwc.shape[:2], np.float32)
    mask_hw[10:14, 10:14] = 1
    return query_from_features(feats_hwc, mask_hw, model=cache.model_name, layer=LAYER, image_index=0)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_chunk_is_refused_on_read_in_search_and_in_the_listing(cache_dir, damage):
    DAMAGE[damage](cache_dir / CHUNK_1)
    cache = open_cache(cache_dir)  # opening checks presence only: reads find the damage
    assert isinstance(cache.features(LAYER), zarr.Array)  # still a zarr array: search streams it chunk by chunk
    np.testing.assert_array_equal(cache.features(LAYER)[:2].shape, (2, 28, 28, 40))
    with pytest.raises(CacheCorruptError, match=NAMES_IMAGES_AND_FIX) as raised:
        cache.features(LAYER)[:]
    assert [(bad.array, bad.index, bad.start, bad.stop) for bad in raised.value.damaged] == [(f"features/{LAYER}", 1, 2, 4)]
    with pytest.raises(CacheCorruptError, match=NAMES_IMAGES_AND_FIX):
        search(cache, _query(cache), device="cpu")
    with pytest.raises(CacheCorruptError, match=NAMES_IMAGES_AND_FIX):
        cache.verify()

    (entry,) = list_caches(cache_dir.parent)
    assert (entry.status, entry.ready) == ("damaged", False)
    assert entry.problem.startswith("damaged: ") and "chunk 1: 'coffee.png'" in entry.problem
    assert "images:     4" in entry.summary


def test_a_cut_chunk_is_found_by_the_listing_and_cache_info_without_any_read(cache_dir, capsys):
    _cut_in_half(cache_dir / "thumbnails/c/0/0/0/0")
    (entry,) = list_caches(cache_dir.parent)
    assert entry.status == "damaged" and "thumbnails images 0..1" in entry.problem and "cut off" in entry.problem
    assert main(["cache", "info", str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the cache at") and "cache repair" in err and "Traceback" not in err


def test_repair_recomputes_just_the_damaged_chunk_to_the_original_bytes(cache_dir, lite0):
    damaged, intact = cache_dir / CHUNK_1, cache_dir / f"features/{LAYER}/c/0/0/0/0"
    original = damaged.read_bytes()
    before = intact.stat()
    _flip_bits(damaged)
    with pytest.raises(CacheCorruptError):  # found by a read: the listing remembers it in this process
        open_cache(cache_dir).features(LAYER)[:]
    assert list_caches(cache_dir.parent)[0].status == "damaged"

    result = repair_cache(cache_dir, model=lite0)
    assert damaged.read_bytes() == original
    assert (intact.stat().st_ino, intact.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [(bad.array, bad.index) for bad in result.damaged] == [(f"features/{LAYER}", 1)] and result.recomputed == 2
    result.cache.verify()
    assert list_caches(cache_dir.parent)[0].status == "ready"
    assert not (cache_dir / LOCK_KEY).exists()


def test_build_with_repair_and_the_cli_repair_command_fix_a_cut_chunk(cache_dir, photos, lite0, capsys):
    damaged = cache_dir / CHUNK_1
    original = damaged.read_bytes()
    _cut_in_half(damaged)
    build_cache(cache_dir, folder_images(photos), lite0, [LAYER], **ARGS, repair=True)
    assert damaged.read_bytes() == original

    _cut_in_half(damaged)
    assert main(["cache", "repair", str(cache_dir)]) == 0
    captured = capsys.readouterr()
    assert "recomputed 2 of 4 images" in captured.out and "repaired features/stage3 images 2..3" in captured.err
    assert damaged.read_bytes() == original
    assert main(["cache", "repair", str(cache_dir)]) == 0 and "nothing to repair" in capsys.readouterr().out


def test_repair_says_when_the_images_are_gone_and_takes_them_from_a_folder(cache_dir, photos, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(photos, moved)
    attrs = dict(zarr.open_group(cache_dir, mode="r").attrs)
    attrs["image_sources"] = [str(tmp_path / "gone" / Path(s).name) for s in attrs["image_sources"]]
    zarr.open_group(cache_dir, mode="r+").attrs.put(attrs)
    _flip_bits(cache_dir / CHUNK_1)

    assert main(["cache", "repair", str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot repair") and err.count("\n") == 1
    assert "'coffee.png' (" in err and "--images DIR" in err
    assert main(["cache", "repair", str(cache_dir), "--images", str(moved)]) == 0
    open_cache(cache_dir).verify()


BAD_ATTRS = {
    "image_ids=5": ({"image_ids": 5}, r"image_ids = 5 \(Input should be a valid array\)"),
    "layers as a list": ({"layers": ["stage3"]}, r"layers = \['stage3'\] \(Input should be an object\)"),
    "chunk_images=0": ({"chunk_images": 0}, r"chunk_images = 0 \(Input should be greater than 0\)"),
    "n_images as text": ({"n_images": "4"}, r"n_images = '4' \(Input should be a valid integer\)"),
    "complete as text": ({"complete": "yes"}, r"complete = 'yes' \(Input should be a valid boolean\)"),
    "layer shape": ({"layers": {"stage3": {"shape": [28, 28], "stride": 8}}}, r"layers\.stage3\.shape"),
    "thumbnail_hw": ({"thumbnail_hw": [0, 128]}, r"thumbnail_hw\[0\] = 0 \(Input should be greater than 0\)"),
    "dtype": ({"dtype": "float32"}, r"dtype = 'float32' \(Input should be 'float16' or 'int8'\)"),
    "metadata as a list": ({"metadata": []}, r"metadata = \[\] \(Input should be an object\)"),
    "too few ids": ({"image_ids": ["a"]}, r"image_ids has 1 entries but n_images is 4"),
    "chunk_images > n": ({"chunk_images": 9}, r"chunk_images 9 is more than n_images 4"),
}


def _edit_attrs(path: Path, changes: dict) -> None:
    root = zarr.open_group(path, mode="r+")
    root.attrs.put({**dict(root.attrs), **changes})


@pytest.mark.parametrize("case", list(BAD_ATTRS))
def test_attributes_of_the_wrong_type_or_range_are_refused_naming_the_field(cache_dir, case, capsys):
    changes, match = BAD_ATTRS[case]
    _edit_attrs(cache_dir, changes)
    with pytest.raises(CacheAttributesError, match=match):
        open_cache(cache_dir)
    assert main(["cache", "info", str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the cache at") and err.count("\n") == 1 and "restore the attribute" in err
    (entry,) = list_caches(cache_dir.parent)
    assert entry.status == "unreadable" and entry.problem.startswith("unreadable: ")


def test_a_build_refuses_to_resume_a_cache_with_invalid_attributes(cache_dir, photos, lite0):
    _edit_attrs(cache_dir, {"chunk_images": 0, "complete": False})
    with pytest.raises(CacheAttributesError, match=r"chunk_images = 0"):
        build_cache(cache_dir, folder_images(photos), lite0, [LAYER], **ARGS)
    assert not (cache_dir / LOCK_KEY).exists()


def test_the_listing_marks_what_it_cannot_read_and_never_raises(tmp_path, cache_dir):
    folder = cache_dir.parent
    (folder / "list-attrs.zarr").mkdir()
    (folder / "list-attrs.zarr" / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": ["not", "a", "mapping"]}))
    (folder / "not-json.zarr").mkdir()
    (folder / "not-json.zarr" / "zarr.json").write_bytes(b"\x89PNG\r\n\x1a\n binary")
    (folder / "empty.zarr").mkdir()
    (folder / "a-file.zarr").write_text("a file, not a folder")
    (folder / "junk.zip").write_bytes(b"not a zip")
    (folder / "foreign.zarr").mkdir()
    zarr.open_group(folder / "foreign.zarr", mode="w").attrs["something"] = "else"

    entries = {entry.name: entry for entry in list_caches(folder)}
    assert entries["four"].status == "ready" and entries["four"].problem == ""
    for name in ("list-attrs", "not-json", "empty", "a-file", "junk.zip", "foreign"):
        assert entries[name].status == "unreadable" and not entries[name].ready, name
        assert entries[name].problem.startswith("unreadable: ") and len(entries[name].problem) > 20, name
    assert "BadZipFile" in entries["junk.zip"].problem
    assert "not a FeatureLens cache" in entries["foreign"].problem


HOLDER = """
import json, os, socket, sys, time, uuid
from datetime import datetime, timezone
now = datetime.now(timezone.utc).isoformat(timespec="seconds")
os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(os.path.join(sys.argv[1], sys.argv[2]), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now, "heartbeat": now,
                         "token": uuid.uuid4().hex}).encode())
os.close(fd)
print("held", flush=True)
time.sleep(600)
"""


def _hold_lock(path: Path) -> subprocess.Popen:
    """A second process that holds the cache's build lock, as a running build does, until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), LOCK_KEY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_one_build_at_a_time_and_a_dead_builders_lock_is_taken_over(tmp_path, photos, lite0):
    out = tmp_path / "shared.zarr"
    holder = _hold_lock(out)
    try:
        with pytest.raises(CacheBusyError, match=rf"being built by pid {holder.pid} on .* since .*one build per cache"):
            build_cache(out, folder_images(photos)[:1], lite0, ["stage5"], dataset_name="one")
        with pytest.raises(CacheBusyError, match=rf"pid {holder.pid}"):
            repair_cache(out)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_KEY]  # the refused builds wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)

    with pytest.warns(CacheLockWarning, match=rf"from pid {holder.pid} .*: pid {holder.pid} is no longer running"):
        cache = build_cache(out, folder_images(photos)[:1], lite0, ["stage5"], dataset_name="one")
    assert cache.n_images == 1 and not (out / LOCK_KEY).exists()


def test_a_second_build_in_the_same_process_is_refused_too(cache_dir, photos, lite0):
    with build_lock(as_store(cache_dir, read_only=False), str(cache_dir)):
        with pytest.raises(CacheBusyError, match=rf"pid {os.getpid()} on .*\(this process\)"):
            build_cache(cache_dir, folder_images(photos), lite0, ["stage5"], **ARGS)
    assert not (cache_dir / LOCK_KEY).exists()


def test_the_lock_is_released_when_a_build_fails(cache_dir, photos, lite0):
    with pytest.raises(CacheMismatchError, match=r"built with layers \['stage3'\], this build asks for \['stage5'\]"):
        build_cache(cache_dir, folder_images(photos), lite0, ["stage5"], **ARGS)
    assert not (cache_dir / LOCK_KEY).exists()


def test_a_lock_from_another_host_is_refused_until_its_heartbeat_is_old(cache_dir, photos, lite0):
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    lock = {"pid": 1, "host": "elsewhere", "started": now, "heartbeat": now, "token": "theirs"}
    (cache_dir / LOCK_KEY).write_text(json.dumps(lock))
    with pytest.raises(CacheBusyError, match=r"pid 1 on elsewhere"):
        build_cache(cache_dir, folder_images(photos), lite0, [LAYER], **ARGS)
    (cache_dir / LOCK_KEY).write_text(json.dumps({**lock, "heartbeat": "2020-01-01T00:00:00+00:00"}))
    with pytest.warns(CacheLockWarning, match=r"no heartbeat from elsewhere"):
        build_cache(cache_dir, folder_images(photos), lite0, [LAYER], **ARGS)


def test_a_build_killed_during_setup_says_that_re_running_resumes_it(tmp_path, photos, lite0):
    out = tmp_path / "setup.zarr"
    root = zarr.open_group(out, mode="w")  # what _create has written before the attributes
    root.create_array(f"features/{LAYER}", shape=(4, 28, 28, 40), chunks=(2, 28, 28, 40), dtype="float16")
    with pytest.raises(CacheIncompleteError, match=r"stopped during setup.*Re-run the same build command to resume it"):
        open_cache(out)
    (entry,) = list_caches(tmp_path)
    assert entry.status == "incomplete" and "Re-run the same build command" in entry.problem
    cache = build_cache(out, folder_images(photos), lite0, [LAYER], **ARGS)
    assert cache.n_images == 4 and list_caches(tmp_path)[0].status == "ready"


def test_a_resumed_build_recomputes_a_damaged_finished_chunk(cache_dir, photos, lite0):
    original = (cache_dir / CHUNK_1).read_bytes()
    _flip_bits(cache_dir / CHUNK_1)
    root = zarr.open_group(cache_dir, mode="r+")
    root["progress"][0] = 0  # chunk 0 unfinished, chunk 1 finished but damaged
    root.attrs["complete"] = False
    calls: list[tuple[int, int]] = []
    build_cache(cache_dir, folder_images(photos), lite0, [LAYER], **ARGS, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 4) and (cache_dir / CHUNK_1).read_bytes() == original


def test_a_cache_with_errors_in_its_zarr_json_is_an_attributes_error(cache_dir):
    (cache_dir / "zarr.json").write_text("{not json")
    with pytest.raises(CacheError, match=r"zarr\.json .* cannot be read"):
        open_cache(cache_dir)
