"""Generated domains, recipe images and the canvas → mask conversion (pure core functions)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from featurelens.caches import CacheError, recipe_images
from featurelens.images import CROPS, DOMAINS, domain_shift_images, get_gallery_image, render_domain
from featurelens.scenarios import ScenarioError, load_recipe
from featurelens.search import SearchError, canvas_mask, draw_window, grid_mask, mask_outline, top_overlap
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return get_gallery_image("chelsea").load()


def test_every_domain_keeps_size_changes_pixels_and_is_deterministic(cat):
    photo = np.asarray(cat, np.float32)
    for name in DOMAINS:
        out = render_domain(cat, name, seed=3)
        assert out.mode == "RGB" and out.size == cat.size, name
        again = np.asarray(render_domain(cat, name, seed=3), np.float32)
        assert np.array_equal(np.asarray(out, np.float32), again), f"{name} is not deterministic"
        change = np.abs(np.asarray(out, np.float32) - photo).mean()
        assert (change == 0) == (name == "photo"), (name, change)


def test_sketch_and_grayscale_have_no_colour_and_blur_removes_detail(cat):
    for name in ("sketch", "grayscale"):
        rgb = np.asarray(render_domain(cat, name), np.int16)
        assert np.abs(rgb[..., 0] - rgb[..., 1]).max() == 0 and np.abs(rgb[..., 1] - rgb[..., 2]).max() == 0
    gray = np.asarray(cat.convert("L"), np.float32)
    blurred = np.asarray(render_domain(cat, "blur").convert("L"), np.float32)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(gray, axis=1)).mean()
    sketch = np.asarray(render_domain(cat, "sketch").convert("L"), np.float32)
    assert sketch.mean() > gray.mean() + 40, "a pencil sketch is mostly white paper"


def test_unknown_domain_is_named():
    with pytest.raises(ValueError, match="unknown domain 'oil'.*sketch"):
        render_domain(Image.new("RGB", (8, 8)), "oil")
    with pytest.raises(ValueError, match="unknown domains"):
        domain_shift_images(domains=["photo", "oil"])


def test_domain_images_cover_photo_crop_domain_with_unique_ids():
    images = domain_shift_images()
    n_photos = len({image.source_photo for image in images})
    assert n_photos >= 10 and len(images) == n_photos * len(CROPS) * len(DOMAINS) >= 280
    assert len({image.id for image in images}) == len(images)
    crop = next(i for i in images if i.crop.name == "left" and i.domain == "photo" and i.source_photo == "chelsea")
    full = get_gallery_image("chelsea").load()
    assert crop.load().size == (round(0.7 * full.width), round(0.9 * full.height) - round(0.1 * full.height))
    big = next(i for i in images if i.source_photo == "retina" and i.crop.name == "full" and i.domain == "noise")
    assert max(big.load().size) == 640, "large photos are rendered at 640 px"


def test_generated_recipe_table_has_domain_and_source_photo():
    recipe = load_recipe(ROOT / "cache_recipes" / "domain_shift.toml")
    images, table = recipe_images(recipe)
    assert list(table["id"]) == [image.id for image in images]
    assert set(table["domain"]) == set(recipe.domains)
    assert (table["label"] == table["source_photo"]).all()
    assert table.groupby("source_photo").size().eq(len(recipe.domains) * recipe.crops).all()


def test_folder_recipe_images_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text('name = "pacs"\ntitle = "PACS"\ndescription = "d"\nkind = "folder"\nlicense = "l"\n'
                    'model = "efficientnet_lite0"\n')
    with pytest.raises(CacheError, match="cache build"):
        recipe_images(load_recipe(path))
    path.write_text(path.read_text().replace('kind = "folder"', 'kind = "generated"'))
    with pytest.raises(ScenarioError, match="needs domains"):
        load_recipe(path)


def test_canvas_mask_is_the_drawn_fraction_of_each_cell():
    rgba = np.zeros((70, 70, 4), np.uint8)
    rgba[10:45, 0:35, 3] = 200                      # rows 10..44, cols 0..34 on a 70 px canvas
    mask_hw = canvas_mask(rgba, (7, 7))             # 10 px per cell
    expected = grid_mask(rgba[..., 3] > 0, (7, 7))
    assert np.allclose(mask_hw, expected)
    assert mask_hw[1, 0] == 1.0 and mask_hw[4, 3] == 0.25 and mask_hw[2, 3] == 0.5 and mask_hw[4, 4] == 0 and mask_hw[0, 0] == 0
    assert np.isclose(mask_hw.sum() * 100, 35 * 35)


def test_canvas_mask_refuses_nothing_drawn_and_wrong_shapes():
    with pytest.raises(SearchError, match="nothing drawn"):
        canvas_mask(None, (7, 7))
    with pytest.raises(SearchError, match="nothing drawn"):
        canvas_mask(np.zeros((10, 10, 4), np.uint8), (7, 7))
    with pytest.raises(SearchError, match=r"\(h, w, 4\)"):
        canvas_mask(np.ones((10, 10, 3), np.uint8), (7, 7))


def test_draw_window_and_mask_outline_mark_the_right_pixels(cat):
    boxed = np.asarray(draw_window(cat, (100, 50, 200, 150), width=3)).astype(int)
    assert tuple(boxed[100, 101]) == (255, 212, 0) and tuple(boxed[100, 100]) == (0, 0, 0)
    assert np.array_equal(boxed[100, 99], np.asarray(cat)[100, 99]), "outside the window is untouched"
    assert np.array_equal(boxed[100, 150], np.asarray(cat)[100, 150]), "inside the window is untouched"
    mask_hw = np.zeros((3, 3)); mask_hw[1, 1] = 1
    shown = np.asarray(mask_outline(cat, mask_hw), np.float32)
    photo = np.asarray(cat, np.float32)
    centre, corner = (cat.height // 2, cat.width // 2), (5, 5)
    assert shown[corner].sum() < 0.6 * photo[corner].sum(), "outside the mask is dimmed"
    assert shown[centre].sum() > 0.7 * photo[centre].sum(), "the mask stays bright"


def test_top_overlap():
    assert top_overlap(["a", "b"], ["b", "a"]) == (["a", "b"], 1.0)
    assert top_overlap(["a", "b"], ["c", "d"]) == ([], 0.0)
    with pytest.raises(SearchError):
        top_overlap(["a"], ["a", "b"])


def test_drawn_strokes_win_over_the_preset_box():
    from featurelens.search import box_mask, drawn_or_region_mask

    rgba = np.zeros((70, 70, 4), np.uint8)
    assert np.array_equal(drawn_or_region_mask(rgba, (7, 7), (0.0, 0.0, 0.5, 0.5)), box_mask((0, 0, 0.5, 0.5), (7, 7)))
    rgba[60:, 60:, 3] = 255
    assert drawn_or_region_mask(rgba, (7, 7), (0.0, 0.0, 0.5, 0.5))[6, 6] == 1.0
    assert drawn_or_region_mask(None, (7, 7), (0.0, 0.0, 0.5, 0.5))[0, 0] == 1.0
    with pytest.raises(SearchError, match="nothing drawn"):
        drawn_or_region_mask(None, (7, 7))
