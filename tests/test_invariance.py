"""Invariance: transforms, the point correspondence (exact on synthetic grids), the sweep table
with gaps, the chart, claims on the real model, and the page (AppTest)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from featurelens.images import get_gallery_image, display_image
from featurelens.invariance import (SweepEvidence, SweepGaps, SweepMeanGreater, Transform, TransformError,
                                    apply_transform, invariance_chart, invariance_table, map_point, parse_transforms,
                                    sweep_features, transformed_views, unmap_point, valid_mask)
from featurelens.similarity import reference_cell
from tests.test_app import _navigation_app, _run  # noqa: F401  (the fixture runs every page through app.py)

N, BLOCK = 8, 16   # an 8×8 grid of 16-px blocks, each with its own value


def _grid_image(n: int = N, block: int = BLOCK) -> np.ndarray:
    """``(n·block, n·block)`` uint8: block (r, c) has value r·n + c + 1 (0 is left for padding)."""
    return np.kron(np.arange(1, n * n + 1, dtype=np.uint8).reshape(n, n), np.ones((block, block), np.uint8))


def _centre(r: int, c: int, n: int = N) -> tuple[float, float]:
    return ((c + 0.5) / n, (r + 0.5) / n)


def _value_at(image_hw: np.ndarray, xy: tuple[float, float]) -> int:
    h, w = image_hw.shape
    return int(image_hw[min(int(xy[1] * h), h - 1), min(int(xy[0] * w), w - 1)])


ROTATED_CELL = {90: lambda r, c: (N - 1 - c, r), 180: lambda r, c: (N - 1 - r, N - 1 - c),
                270: lambda r, c: (c, N - 1 - r)}


@pytest.mark.parametrize("degrees", [90, 180, 270, -90, 450])
def test_a_quarter_turn_maps_every_cell_exactly(degrees):
    image = _grid_image()
    t = Transform("rotate", float(degrees))
    rotated = apply_transform(image, t, order=0)
    assert np.array_equal(rotated, np.rot90(image, k=(degrees // 90) % 4))   # no padding, nothing lost
    expected = ROTATED_CELL[degrees % 360]
    for r in range(N):
        for c in range(N):
            mapped = map_point(t, _centre(r, c), (N * BLOCK, N * BLOCK))
            assert reference_cell(mapped, (N, N)) == expected(r, c)
            assert _value_at(rotated, mapped) == image[r * BLOCK, c * BLOCK]
            back = unmap_point(t, mapped, (N * BLOCK, N * BLOCK))
            assert back == pytest.approx(_centre(r, c), abs=1e-9)


@pytest.mark.parametrize("zoom, center", [(2, (0.5, 0.5)), (4, (0.5, 0.5)), (2, (0.0, 0.0)), (4, (1.0, 0.25)),
                                          (2, (0.375, 0.75))])
def test_an_integer_zoom_maps_every_cell_exactly(zoom, center):
    image = _grid_image()
    t = Transform("zoom", float(zoom), center)
    zoomed = apply_transform(image, t, order=0)
    side = N * BLOCK // zoom
    x0 = int(min(max(center[0] * N * BLOCK - side / 2, 0), N * BLOCK - side))
    y0 = int(min(max(center[1] * N * BLOCK - side / 2, 0), N * BLOCK - side))
    crop = image[y0:y0 + side, x0:x0 + side]
    assert np.array_equal(zoomed, np.kron(crop, np.ones((zoom, zoom), np.uint8)))   # the window, blown up exactly
    inside = 0
    for r in range(N):
        for c in range(N):
            mapped = map_point(t, _centre(r, c))
            in_window = x0 <= (c + 0.5) * BLOCK < x0 + side and y0 <= (r + 0.5) * BLOCK < y0 + side
            assert (mapped is not None) == in_window
            if mapped is None:
                continue
            inside += 1
            expected = (int(((r + 0.5) * BLOCK - y0) * zoom // BLOCK), int(((c + 0.5) * BLOCK - x0) * zoom // BLOCK))
            assert reference_cell(mapped, (N, N)) == expected
            assert _value_at(zoomed, mapped) == image[r * BLOCK, c * BLOCK]
            assert unmap_point(t, mapped) == pytest.approx(_centre(r, c), abs=1e-9)
    assert inside == (N // zoom) ** 2


def test_flip_mirrors_points_and_pixels():
    image = _grid_image()
    t = Transform("flip", 1.0)
    assert np.array_equal(apply_transform(image, t), image[:, ::-1])
    assert map_point(t, (0.2, 0.7)) == pytest.approx((0.8, 0.7))
    assert map_point(Transform("flip", 0.0), (0.2, 0.7)) == (0.2, 0.7)


def test_rotating_a_wide_image_sends_side_points_out_of_the_frame_and_pads_the_corners():
    wh = (400, 200)
    t = Transform("rotate", 90.0)
    assert map_point(t, (0.95, 0.5), wh) is None         # 190 px right of the centre: above the 200-px-high frame
    assert map_point(t, (0.6, 0.5), wh) == pytest.approx((0.5, 0.3))
    valid_hw = valid_mask(Transform("rotate", 45.0), (200, 400))
    assert valid_hw[0, 0] == 0 and valid_hw[100, 200] == 1      # the corners are padding, the centre is the photo
    assert unmap_point(Transform("rotate", 45.0), (0.01, 0.01), wh) is None


@pytest.mark.parametrize("kind, text, expected", [
    ("rotate", "0, 45, 90", (0.0, 45.0, 90.0)),
    ("rotate", "0;45 90 ,45", (0.0, 45.0, 90.0)),
    ("rotate", [-90, 720], (-90.0, 720.0)),
    ("zoom", "1, 1.5, 8", (1.0, 1.5, 8.0)),
    ("flip", "anything", (0.0, 1.0)),
])
def test_transform_lists_are_normalised(kind, text, expected):
    assert tuple(t.value for t in parse_transforms(kind, text)) == expected


@pytest.mark.parametrize("kind, text, message", [
    ("rotate", "", "the list is empty"),
    ("rotate", "45, ninety", "'ninety' is not a number"),
    ("rotate", "nan", "not a finite number"),
    ("zoom", "0.5", "zoom 0.5× is out of range"),
    ("zoom", "1, 9", "out of range"),
    ("rotate", ",".join(str(v) for v in range(13)), "at most 12"),
    ("spin", "1", "unknown transform 'spin'"),
])
def test_bad_transform_lists_say_what_to_type(kind, text, message):
    with pytest.raises(TransformError, match=message):
        parse_transforms(kind, text)
    with pytest.raises(TransformError, match="normalised point"):
        parse_transforms("zoom", "2", (1.5, 0.5))


def test_the_table_leaves_a_gap_not_a_zero_where_the_point_left_the_frame():
    rng = np.random.default_rng(0)
    feats_hwc = rng.normal(size=(N, N, 16)).astype(np.float32)
    transforms = parse_transforms("zoom", "1, 2, 4", (0.0, 0.0))
    # features that move exactly with the image: the window of the grid, blown up
    swept = [{"l": feats_hwc[:N // z, :N // z].repeat(z, axis=0).repeat(z, axis=1)}
             for z in (int(t.value) for t in transforms)]
    table = invariance_table({"l": feats_hwc}, swept, transforms, {"near": (0.05, 0.05), "far": (0.9, 0.9)},
                             image_wh=(N, N), valid_hws=[np.ones((N, N))] * 3)
    near, far = (table[table.reference == r].similarity.to_numpy() for r in ("near", "far"))
    assert near == pytest.approx([1.0, 1.0, 1.0])
    assert far[0] == pytest.approx(1.0) and np.isnan(far[1:]).all()
    assert (table.padding.dropna() == 0).all()
    padded = invariance_table({"l": feats_hwc}, swept, transforms, {"near": (0.05, 0.05)}, image_wh=(N, N),
                              valid_hws=[np.ones((N, N)), np.zeros((N, N)), np.ones((N, N))])
    assert np.isnan(padded.similarity[1]) and padded.similarity[2] == pytest.approx(1.0)   # on padding: a gap too
    chart = invariance_chart(table, "Zoom").to_dict()
    rows = next(iter(chart["datasets"].values()))
    assert [r["similarity"] for r in rows if r["reference"] == "far"][1:] == [None, None]   # a gap in the line
    assert chart["spec"]["layer"][0]["mark"]["type"] == "line"


@pytest.fixture(scope="module")
def coffee_sweep(lite0):
    display = display_image(get_gallery_image("coffee").load())
    transforms = parse_transforms("rotate", "0, 90, 180")
    return display, transforms, sweep_features(lite0, display, transforms, ["stage3", "stage7"])


def test_the_sweep_on_the_real_model_gives_one_at_the_identity_and_rings_where_the_point_went(coffee_sweep):
    display, transforms, swept = coffee_sweep
    wh = (display.shape[1], display.shape[0])
    table = invariance_table(swept.original, swept.feats, transforms, {"A": (0.47, 0.37)}, image_wh=wh,
                             valid_hws=[i.valid_hw for i in swept.images])
    assert table.shape == (6, 8)
    assert table[table["transform"] == "0°"].similarity.to_numpy() == pytest.approx(1.0, abs=1e-4)
    assert table.similarity.between(-1, 1.0001).all()
    views = transformed_views(swept.original["stage7"], [f["stage7"] for f in swept.feats], swept.images,
                              (0.47, 0.37), image_wh=wh)
    assert [v[0].shape for v in views] == [display.shape] * 3
    assert views[2][2] == pytest.approx((0.53, 0.63))   # 180°: the point across the centre


def test_a_sweep_claim_about_the_wrong_reference_is_false(lite0):
    evidence = SweepEvidence(lambda name: lite0, lambda name, image: display_image(get_gallery_image(image).load()))
    claim = SweepMeanGreater(model="efficientnet_lite0", image="coffee", layer="stage7", transform="rotate",
                             point=(0.47, 0.37), than_point=(0.38, 0.73), margin=0.2)
    assert claim.check(evidence).holds
    swapped = claim.model_copy(update={"point": claim.than_point, "than_point": claim.point}).check(evidence)
    assert not swapped.holds and "mean A" in swapped.measured
    gaps = SweepGaps(model="efficientnet_lite0", image="coffee", layer="stage7", transform="rotate",
                     point=(0.47, 0.37), gaps=(90.0,))
    assert not gaps.check(evidence).holds      # the crema stays in the frame at every angle


# ----------------------------------------------------------------------------- the page


def test_the_page_draws_a_chart_and_every_preset_runs():
    from featurelens.scenarios import load_scenario

    from tests.test_app import ROOT

    at = _run("invariance")
    assert not at.exception, [e.value for e in at.exception]
    assert any("corresponding cell" in m.value for m in at.markdown)
    assert len(at.get("vega_lite_chart")) == 1
    means = next(c.value for c in at.caption if c.value.startswith("Mean similarity of each reference"))
    a, b = (float(v) for v in re.findall(r"[AB] (-?\d\.\d\d)", means))
    assert b > a + 0.2, means   # the first preset's note: the crema (B) stays similar, the handle (A) does not
    for preset in load_scenario(ROOT / "scenarios" / "invariance.toml").presets:
        next(b for b in at.button if b.label == preset.name).click().run()
        assert not at.exception, (preset.name, [e.value for e in at.exception])
        assert at.radio(key="inv_kind").value == preset.extra["transform"]
        assert len(at.get("vega_lite_chart")) == 1
    assert _values(at).disabled      # the flip has no values to edit


def _values(at):
    """The sweep's values box (its key changes when the page sets the values: widgets.synced)."""
    return next(t for t in at.text_input if t.label == "Values (comma-separated)")


def test_bad_values_give_one_sentence():
    at = _run("invariance")
    at.text_input(key="inv_values").set_value("0, ninety").run()
    assert not at.exception
    shown = [i.value.replace("\\", "") for i in at.info]           # Markdown-escaped: shown as typed
    assert shown == ["The transform values cannot be used: 'ninety' is not a number; type numbers separated by "
                     "commas, e.g. 0, 45, 90."]
    at.radio(key="inv_kind").set_value("zoom").run()
    assert not at.exception and _values(at).value == "1, 1.5, 2, 3, 4"


def test_an_upload_that_is_not_an_image_gives_one_sentence():
    at = _run("invariance")
    at.radio(key="inv_source").set_value("Upload").run()
    assert not at.exception and any("upload" in i.value.lower() for i in at.info)
    at.file_uploader(key="inv_upload").set_value(("`cat`_[x].png", b"\x89PNG but not really", "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(re.sub(r"\\(.)", r"\1", e.value) for e in at.error)   # Markdown-escaped: the name as typed
    assert "'`cat`_[x].png' is not an image" in shown
    assert "\\`cat\\`" in at.error[0].value   # escaped, so the browser shows the backticks, not code formatting


def test_a_hand_edited_link_is_read_with_warnings_not_errors():
    from streamlit.testing.v1 import AppTest

    from tests.test_app import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"images": "nosuchphoto", "layers": "stage7,stage99", "ref": "2,3", "mode": "spin",
                            "pin": "0:0.9,0.1"})
    at.run()
    at.switch_page("pages/invariance.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert "nosuchphoto" in warnings and "stage99" in warnings and "spin" in warnings
    assert at.multiselect(key="inv_layers").value == ["stage7"]
    assert at.session_state["inv_B"] == (0.9, 0.1)
