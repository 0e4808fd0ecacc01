"""Behaviour of featurelens.gallery: bundled photos, folders and uploads."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from featurelens.images import (GalleryError, GalleryImage, UnknownImageIdError,
                                 bundled_gallery, folder_images, get_gallery_image,
                                 upload_to_image)
from featurelens.images import ImageLoadError, to_rgb_array


@pytest.fixture
def fresh_gallery_cache():
    bundled_gallery.cache_clear()
    yield
    bundled_gallery.cache_clear()


def test_every_bundled_image_loads_as_a_sensible_rgb_photo():
    images = bundled_gallery()
    assert len(images) >= 10
    for image in images:
        loaded = image.load()
        assert loaded.mode == "RGB", image.id
        assert 100 <= min(loaded.size) and max(loaded.size) <= 4000, (image.id, loaded.size)
        assert to_rgb_array(loaded).std() > 10, f"{image.id} looks blank"


def test_bundled_ids_are_unique_slugs_with_chelsea_then_coffee_first():
    ids = [image.id for image in bundled_gallery()]
    assert len(ids) == len(set(ids))
    assert ids[:2] == ["chelsea", "coffee"]
    assert all(image_id.replace("_", "").isalnum() and image_id.islower() for image_id in ids)
    assert {"astronaut", "china", "grace_hopper"} <= set(ids)


def test_bundled_entries_record_caption_source_and_license():
    for image in bundled_gallery():
        assert image.caption and image.license, image.id
        package_part = image.source[image.source.index("(") + 1:-1]
        assert Path(image.path).as_posix().endswith(package_part), image
        assert Path(image.path).is_file()
    chelsea = get_gallery_image("chelsea")
    assert chelsea.caption == "Chelsea the cat"
    assert chelsea.source == "scikit-image data (skimage/data/chelsea.png)"
    assert "CC0" in chelsea.license


def test_bundled_chelsea_is_the_real_skimage_photo():
    np.testing.assert_array_equal(to_rgb_array(get_gallery_image("chelsea").load()),
                                  data.chelsea())


def test_gallery_skips_packages_missing_from_the_install(monkeypatch, fresh_gallery_cache):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "sklearn" else real_find_spec(name, *args))
    ids = [image.id for image in bundled_gallery()]
    assert "china" not in ids and "flower" not in ids
    assert ids[:2] == ["chelsea", "coffee"]


def test_gallery_images_are_frozen_records():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_gallery_image("coffee").id = "tea"


def test_misspelt_id_suggests_the_close_match_and_lists_valid_ids():
    with pytest.raises(UnknownImageIdError,
                       match=r"'chelsa'; did you mean 'chelsea'\? valid ids: chelsea, coffee"):
        get_gallery_image("chelsa")


def test_unknown_id_is_a_key_error_that_names_bundled_gallery():
    with pytest.raises(KeyError, match=r"no bundled gallery image with id 'zebra'.*"
                                       r"see bundled_gallery\(\)") as caught:
        get_gallery_image("zebra")
    assert isinstance(caught.value, ValueError)
    assert "did you mean" not in str(caught.value)


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    chelsea, camera = Image.fromarray(data.chelsea()), Image.fromarray(data.camera())
    chelsea.save(tmp_path / "a_cat.png")
    camera.save(tmp_path / "B_CAMERA.JPG", quality=90)
    (tmp_path / "sub" / ".thumbs").mkdir(parents=True)
    chelsea.save(tmp_path / "sub" / "cat2.jpeg", quality=90)
    chelsea.save(tmp_path / "sub" / ".thumbs" / "hidden.png")
    chelsea.save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_images_lists_sorted_relative_ids_recursively(photo_folder):
    images = folder_images(photo_folder)
    assert [image.id for image in images] == ["B_CAMERA.JPG", "a_cat.png", "sub/cat2.jpeg"]
    assert [image.caption for image in images] == ["B_CAMERA", "a_cat", "cat2"]
    assert all(image.license == "unknown" and Path(image.source) == Path(image.path)
               for image in images)
    np.testing.assert_array_equal(to_rgb_array(images[1].load()), data.chelsea())
    assert images[0].load().size == (512, 512)


def test_folder_images_without_recursion_stays_at_top_level(photo_folder):
    ids = [image.id for image in folder_images(str(photo_folder), recursive=False)]
    assert ids == ["B_CAMERA.JPG", "a_cat.png"]


def test_folder_problems_are_explained(tmp_path):
    with pytest.raises(GalleryError, match=r"'.*missing' does not exist; pass the path"):
        folder_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GalleryError, match=r"is a file, not a folder"):
        folder_images(tmp_path / "notes.txt")
    with pytest.raises(GalleryError, match=r"no image files in .*\.jpg.*add images"):
        folder_images(tmp_path)


def test_upload_bytes_become_an_rgb_image_and_bad_uploads_name_the_file():
    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).save(buffer, "PNG")
    image = upload_to_image("coffee.png", buffer.getvalue())
    np.testing.assert_array_equal(to_rgb_array(image), data.coffee())
    with pytest.raises(ImageLoadError, match=r"'scan\.png' is empty.*upload the file again"):
        upload_to_image("scan.png", b"")
    with pytest.raises(ImageLoadError, match=r"'half\.png' could not be decoded"):
        upload_to_image("half.png", buffer.getvalue()[:40_000])


def test_gallery_image_can_describe_a_custom_file(tmp_path):
    path = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(path)
    record = GalleryImage(id="cat", caption="cat", source=str(path), license="CC0",
                          path=str(path))
    assert record.load().size == (451, 300)
