"""Few-shot segmentation: methods (one call shape, one registry), fusion, thresholds, IoU and
Dice, mask folders, a synthetic two-texture image and CamVid episodes on the real model, and
the page (AppTest)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from featurelens.models import analyse_image
from featurelens.scenarios import load_scenario
from featurelens.segmentation import (SEG_METHODS, EmptyMaskError, FewShotBetter, choose_threshold, class_names, dice,
                                      draw_region, find_masked_images, get_method, iou, list_methods, mask_overlay,
                                      masked_folders, read_mask, region_mask, segment)
from featurelens.similarity import ImageEvidence
from featurelens.images import get_gallery_image
from tests.conftest import ROOT
from tests.test_app import _navigation_app, _run  # noqa: F401  (the fixture runs every page through app.py)

S = 224
SCENARIO = load_scenario(ROOT / "scenarios" / "few_shot.toml")


def _two_textures(layout_hw: np.ndarray, seed: int = 0) -> np.ndarray:
    """``S×S×3`` uint8: coloured diagonal stripes where ``layout_hw`` is True, smooth green-grey
    noise elsewhere."""
    yy, xx = np.mgrid[0:S, 0:S]
    stripes = ((xx + yy) // 6 % 2).astype(np.float32)
    a_hwc = np.stack([200 * stripes + 30, np.full_like(stripes, 60), 200 * (1 - stripes) + 30], -1)
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=(S, S)), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    b_hwc = np.stack([noise * 120 + 60, noise * 160 + 60, noise * 90 + 40], -1)
    return np.where(layout_hw[..., None], a_hwc, b_hwc).astype(np.uint8)


@pytest.fixture(scope="module")
def textures(lite0):
    yy, xx = np.mgrid[0:S, 0:S]
    disk_hw = (xx - 120) ** 2 + (yy - 110) ** 2 < 65 ** 2
    left_hw = xx < S // 2
    support = analyse_image(lite0, _two_textures(left_hw, seed=1))
    query = analyse_image(lite0, _two_textures(disk_hw, seed=2))
    return support, left_hw, query, disk_hw


@pytest.mark.parametrize("method", list_methods())
def test_one_texture_is_recovered_from_another_layout_of_it(textures, method):
    """Support: stripes on the left half; query: stripes in a disk. Stage 2 finds the disk."""
    support, left_hw, query, disk_hw = textures
    result = segment(support.feats_hwc, left_hw, query.feats_hwc, method=method, layers=["stage2"], out_hw=(S, S))
    assert iou(result.mask_hw, disk_hw) > 0.9
    assert result.score_hw.shape == (S, S) and result.score_hw.dtype == np.float32
    assert result.layer_scores["stage2"].shape == (56, 56)


def test_foreground_vs_background_at_its_natural_threshold_and_fused_layers(textures):
    support, left_hw, query, disk_hw = textures
    natural = segment(support.feats_hwc, left_hw, query.feats_hwc, method="fg_bg", layers=["stage3"],
                      threshold="natural", out_hw=(S, S))
    assert natural.threshold == 0.0 and iou(natural.mask_hw, disk_hw) > 0.9
    fused = segment(support.feats_hwc, left_hw, query.feats_hwc, method="fg_bg", layers=["stage2", "stage3"],
                    out_hw=(S, S))
    assert iou(fused.mask_hw, disk_hw) > 0.9 and set(fused.layer_scores) == {"stage2", "stage3"}


@pytest.fixture(scope="module")
def photos(lite0):
    return {i: analyse_image(lite0, get_gallery_image(i).load()) for i in ("chelsea", "coffee")}


@pytest.mark.parametrize("method", list_methods())
def test_every_method_has_one_call_shape(photos, method):
    """Every registered method on the same real photos: a query-grid float32 map."""
    chelsea, coffee = photos["chelsea"], photos["coffee"]
    weights_hw = np.zeros((14, 14), np.float32)
    weights_hw[3:8, 3:8] = 1.0
    score_hw = get_method(method).fn(chelsea.feats_hwc["stage5"], weights_hw, coffee.feats_hwc["stage5"])
    assert score_hw.shape == (14, 14) and score_hw.dtype == np.float32 and np.isfinite(score_hw).all()
    assert SEG_METHODS[method].display_name and SEG_METHODS[method].description


def test_an_empty_mask_and_a_full_mask_give_one_sentence():
    feats = {"l": np.ones((4, 4, 3), np.float32)}
    with pytest.raises(EmptyMaskError, match="The support mask is empty: draw over the object"):
        segment(feats, np.zeros((8, 8)), feats, out_hw=(8, 8))
    with pytest.raises(EmptyMaskError, match="no background to compare with"):
        segment(feats, np.ones((8, 8)), feats, method="fg_bg", out_hw=(8, 8))
    with pytest.raises(KeyError, match="unknown segmentation method 'magic'.*list_methods"):
        get_method("magic")
    with pytest.raises(KeyError, match="no features for layers"):
        segment(feats, np.ones((8, 8)), feats, layers=["stage9"], out_hw=(8, 8))


@pytest.mark.parametrize("pred, truth, expected_iou, expected_dice", [
    ([1, 1, 0, 0], [0, 1, 1, 0], 1 / 3, 0.5),
    ([1, 1, 0, 0], [1, 1, 0, 0], 1.0, 1.0),
    ([0, 0, 0, 0], [0, 0, 0, 0], 1.0, 1.0),
    ([1, 1, 1, 1], [0, 0, 0, 1], 0.25, 0.4),
    ([0, 0, 0, 0], [0, 1, 0, 0], 0.0, 0.0),
])
def test_iou_and_dice(pred, truth, expected_iou, expected_dice):
    pred, truth = np.array(pred, bool), np.array(truth, bool)
    assert iou(pred, truth) == pytest.approx(expected_iou) and dice(pred, truth) == pytest.approx(expected_dice)


def test_thresholds_and_masks_of_every_kind():
    assert choose_threshold(np.ones((3, 3))) == 1.0                      # flat: nothing selected
    assert choose_threshold(np.zeros((2, 2)), "manual", 0.3) == 0.3
    with pytest.raises(ValueError, match="no natural threshold"):
        choose_threshold(np.zeros((2, 2)), "natural")
    strokes_hw4 = np.zeros((4, 4, 4), np.uint8)
    strokes_hw4[1, 2] = (255, 212, 0, 140)
    assert region_mask(strokes_hw4)[1, 2] == pytest.approx(140 / 255) and region_mask(strokes_hw4).sum() < 1
    assert region_mask(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert draw_region([[0, 0], [1, 0], [0, 1]], (4, 4)).sum() == 10      # 6 centres inside, 4 on the edge
    out = mask_overlay(np.zeros((8, 8, 3), np.uint8), np.eye(2, dtype=bool))
    assert out.shape == (8, 8, 3) and out[0, 0].any() and not out[0, 7].any()


def test_mask_folders_in_the_camvid_and_fss_layouts(shared_data, tmp_path):
    camvid = find_masked_images(shared_data / "camvid")
    assert len(camvid) == 101 and camvid[0].image_path.stem == camvid[0].mask_path.stem
    assert class_names(shared_data / "camvid")[8] == "Car"
    road = read_mask(camvid[0].mask_path, 3)
    assert road.shape == (360, 480) and 0.1 < road.mean() < 0.6
    fss = find_masked_images(shared_data / "fss1000-examples")
    assert [p.id for p in fss] == ["1", "2", "3", "4", "5"]
    tower = read_mask(fss[0].mask_path)                 # stored as 0/1 in RGB
    assert tower.shape == (224, 224) and 0.01 < tower.mean() < 0.1
    with pytest.raises(FileNotFoundError, match="JPEGImages/ \\+ SegmentationClass/"):
        find_masked_images(tmp_path)
    assert masked_folders([shared_data, tmp_path]) == [shared_data / "camvid", shared_data / "fss1000-examples"]


CAMVID_CLASSES = {0: "Sky", 1: "Building", 3: "Road", 8: "Car"}


def test_camvid_one_shot_episodes_beat_a_constant_mask(lite0, shared_data):
    """1-shot episodes (seeded) of four classes at stage 5, foreground vs background: the mean
    IoU beats the constant masks (whole image; all background scores 0) by far. The support's
    mask pasted unchanged on the query — a strong prior in one street sequence — is a different
    story: benchmarks/bench_fewshot.py reports it next to every method."""
    pairs = find_masked_images(shared_data / "camvid")
    labels = [np.asarray(Image.open(p.mask_path)) for p in pairs]
    rng = np.random.default_rng(0)
    episodes = []
    for c in CAMVID_CLASSES:
        frames = [i for i, lab in enumerate(labels) if (lab == c).mean() >= 0.01]
        episodes += [(c, *map(int, rng.choice(frames, 2, replace=False))) for _ in range(4)]
    used = sorted({i for _, s, q in episodes for i in (s, q)})
    feats = lite0.features([np.asarray(pairs[i].load_image()) for i in used], ["stage5"])
    by_frame = {i: {"stage5": feats["stage5"][n]} for n, i in enumerate(used)}
    ours, whole = {}, {}
    for c, s, q in episodes:
        support_hw, truth_hw = labels[s] == c, labels[q] == c
        result = segment(by_frame[s], support_hw, by_frame[q], method="fg_bg", threshold="natural",
                         out_hw=truth_hw.shape)
        ours.setdefault(c, []).append(iou(result.mask_hw, truth_hw))
        whole.setdefault(c, []).append(iou(np.ones_like(truth_hw), truth_hw))
    miou = {name: np.mean([np.mean(v) for v in table.values()]) for name, table in (("ours", ours), ("whole", whole))}
    assert miou["ours"] > miou["whole"] + 0.2, miou
    assert all(np.mean(ours[c]) > np.mean(whole[c]) for c in CAMVID_CLASSES), (ours, whole)


def test_a_few_shot_claim_with_the_wrong_method_is_false(lite0):
    evidence = ImageEvidence(lambda name, image: analyse_image(lite0, get_gallery_image(image).load()))
    claim = next(c for p in SCENARIO.presets for c in p.claims if isinstance(c, FewShotBetter))
    assert claim.check(evidence).holds
    swapped = claim.model_copy(update={"method": claim.than_method, "than_method": claim.method}).check(evidence)
    assert not swapped.holds and swapped.measured.startswith("IoU")


# ----------------------------------------------------------------------------- the page


def test_every_preset_shows_its_query_mask_and_iou():
    at = _run("few_shot")
    assert not at.exception, [e.value for e in at.exception]
    for preset in SCENARIO.presets:
        next(b for b in at.button if b.label == preset.name).click().run()
        assert not at.exception, (preset.name, [e.value for e in at.exception])
        scores = [m.value for m in at.markdown if m.value.startswith("IoU")]
        assert scores and "Dice" in scores[0], preset.name
        method = next(s for s in at.selectbox if s.label == "Method")   # a new key per preset (widgets.synced)
        assert method.value == at.session_state["fs_method"] == preset.extra["method"]


def test_no_mask_no_query_and_bad_uploads_give_one_sentence():
    at = _run("few_shot")
    at.selectbox(key="fs_gallery").set_value("rocket").run()      # no preset box on this photo, nothing drawn
    assert not at.exception
    assert [i.value for i in at.info] == ["The support mask is empty: draw over the object in the support image "
                                          "(or pick a preset)."]
    at.selectbox(key="fs_gallery").set_value("chelsea").run()
    at.toggle(key="fs_self").set_value(False).run()
    at.multiselect(key="fs_queries").set_value([]).run()
    assert not at.exception and at.info[0].value == "Pick at least one query image, or switch on self-similarity."
    at.file_uploader(key="fs_uploads").set_value([("notes.jpg", b"not a photo", "image/jpeg")]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "'notes.jpg' is not an image" in " ".join(e.value for e in at.error).replace("\\", "")
    at.multiselect(key="fs_layers").set_value([]).run()
    assert not at.exception and "Pick at least one layer" in at.info[0].value


def test_a_dataset_with_masks_on_the_server_scores_every_query_against_its_ground_truth(monkeypatch, shared_data):
    monkeypatch.setenv("FEATURELENS_DATA_ROOTS", str(shared_data))
    at = _run("few_shot")
    at.radio(key="fs_images_source").set_value("dataset").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="fs_folder").options[:2] == ["camvid", "fss1000-examples"]
    at.selectbox(key="fs_class").set_value(3).run()                      # Road
    assert not at.exception, [e.value for e in at.exception]
    scores = [m.value for m in at.markdown if m.value.startswith("IoU")]
    assert len(scores) == 1 and "the dataset's ground-truth mask" in scores[0]
    assert float(scores[0].split("**")[1]) > 0.5                         # the road of the next frame
    at.selectbox(key="fs_folder").set_value(at.selectbox(key="fs_folder").options[1]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown if m.value.startswith("IoU")]


def test_a_support_image_without_the_object_gives_one_sentence(monkeypatch, tmp_path):
    toy = tmp_path / "toy"
    (toy / "images").mkdir(parents=True)
    (toy / "masks").mkdir()
    for name, mask_hw in (("a", np.zeros((64, 64), np.uint8)), ("b", np.eye(64, dtype=np.uint8) * 255)):
        Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(toy / "images" / f"{name}.png")
        Image.fromarray(mask_hw).save(toy / "masks" / f"{name}.png")
    (toy / "images" / "c.png").write_bytes(b"not a png")                # a damaged file in the dataset
    Image.fromarray(np.eye(64, dtype=np.uint8)).save(toy / "masks" / "c.png")
    monkeypatch.setenv("FEATURELENS_DATA_ROOTS", str(tmp_path))
    at = _run("few_shot")
    at.radio(key="fs_images_source").set_value("dataset").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [i.value for i in at.info] == ["The support image a has no pixel of the object: pick another support "
                                          "image or class."]
    at.selectbox(key=f"fs_support_{toy}").set_value("b").run()      # a flat grey photo: nothing stands out
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown if m.value.startswith("IoU")]
    at.multiselect(key=f"fs_query_ids_{toy}_b").set_value(["a", "c"]).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.error[0].value.replace("\\", "")                     # Markdown-escaped: a path is shown as it is
    assert "cannot be read" in shown and "c.png' is not an image" in shown
