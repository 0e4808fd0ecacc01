"""Few-shot segmentation: mark an object in a support image, find it in query images by
feature similarity (the blog post's baseline), with self-similarity when support = query."""

import streamlit as st

from featurelens.images import ImageLoadError, bundled_gallery
from featurelens.segmentation import (SEG_METHODS, EmptyMaskError, dice, draw_region, iou, mask_overlay, region_mask,
                                      segment)
from featurelens.similarity import render_overlay
from pages._ui.resources import image_report, load_gallery_image, load_upload, scenario
from pages._ui.masked_data import dataset_episode, dataset_folders
from pages._ui.search import query_canvas
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.widgets import hold, image_credit, image_picker, preset_buttons, scenario_page, set_synced, synced

ensure_app_shell()

SCENARIO = scenario("few_shot")
P = "fs"
MAX_QUERIES = 4
CANVAS_PX = 300   # a drawing canvas does not shrink: this fits its column from a 1024-px screen up
COLUMNS = [1.25, 1]   # support canvas, queries
SOURCES = {"gallery": "Gallery photos (draw a mask)", "dataset": "A dataset with masks on this server"}
THRESHOLDS = {"otsu": "Automatic (Otsu)", "natural": "Method's own", "manual": "Slider"}

model = scenario_page(SCENARIO)
gallery = {g.id: g for g in bundled_gallery()}
layer_names = [layer.name for layer in model.layers]
first = SCENARIO.presets[0]
st.session_state.setdefault(f"{P}_self", first.extra["query"] == first.image)
st.session_state.setdefault(f"{P}_queries", [] if first.extra["query"] == first.image else [first.extra["query"]])
st.session_state.setdefault(f"{P}_method", first.extra["method"])
st.session_state.setdefault(f"{P}_layers", [l for l in first.extra["layers"] if l in layer_names])
st.session_state.setdefault(f"{P}_threshold", first.extra.get("threshold", "otsu"))
st.session_state.setdefault(f"{P}_preset", first.name)
st.session_state.setdefault(f"{P}_drawing", 0)


def _apply_preset(preset) -> None:   # the pickers sit in popovers: set_synced shows the new values there
    set_synced(f"{P}_source", "Gallery")
    set_synced(f"{P}_gallery", preset.image)
    st.session_state[f"{P}_self"] = preset.extra["query"] == preset.image
    set_synced(f"{P}_queries", [] if preset.extra["query"] == preset.image else [preset.extra["query"]])
    set_synced(f"{P}_method", preset.extra["method"])
    set_synced(f"{P}_layers", [l for l in preset.extra["layers"] if l in layer_names])
    set_synced(f"{P}_threshold", preset.extra.get("threshold", "otsu"))
    st.session_state[f"{P}_preset"] = preset.name
    st.session_state[f"{P}_drawing"] += 1   # a fresh canvas with the preset's box


source = "gallery"
if dataset_folders():
    source = st.radio("Images", list(SOURCES), key=f"{P}_images_source", format_func=SOURCES.get, horizontal=True)
if source == "gallery":
    preset_buttons(SCENARIO, P, _apply_preset, "**Presets** — one click: support mask, query, method and layers",
                   showing=first)
preset = next((p for p in SCENARIO.presets if p.name == st.session_state[f"{P}_preset"]), first)

# Views first: the support canvas and the query masks right under the presets; the pickers and the
# method's settings fold into popovers of one row.
if source == "gallery":
    support_menu, query_menu, method_menu, self_col = st.columns([1, 1, 1, 1.25], vertical_alignment="center")
else:
    method_menu = st.columns([1, 3])[0]
hold({f"{P}_value": 0.5})
with method_menu.popover("Method & layers", icon=":material/tune:", width="stretch"):
    method = st.selectbox("Method", list(SEG_METHODS), key=synced(f"{P}_method"),
                          format_func=lambda k: SEG_METHODS[k].display_name,
                          help="\n\n".join(f"**{m.display_name}**: {m.description}" for m in SEG_METHODS.values()))
    layers = st.multiselect("Layers (several are fused)", layer_names, key=synced(f"{P}_layers"), max_selections=4,
                            format_func=model.layer_label)
    modes = [m for m in THRESHOLDS if m != "natural" or SEG_METHODS[method].natural_threshold is not None]
    if st.session_state.get(f"{P}_threshold") not in modes:
        set_synced(f"{P}_threshold", "otsu")
    mode = st.radio("Threshold", modes, key=synced(f"{P}_threshold"), format_func=THRESHOLDS.get, horizontal=True)
    manual = st.slider("Threshold value", -1.0, 1.0, step=0.01, key=f"{P}_value", disabled=mode != "manual",
                       help="Cells scoring above it are in the mask.")


def gallery_episode():
    """Support (picker + canvas) and queries of the gallery mode → ``(support report, mask, queries,
    query column)``; queries are ``(key, caption, image, truth_hw or None)``."""
    self_similarity = self_col.toggle("Self-similarity", key=f"{P}_self",
                                      help="The support image is also the query: which parts of it are like "
                                           "the marked object? Off: pick the queries under *Query images*.")
    with support_menu.popover("Support image", icon=":material/image:", width="stretch"):
        support_key, support_image = image_picker(P, default_id=first.image)
    with query_menu.popover("Query images", icon=":material/collections:", width="stretch"):
        query_ids = st.multiselect("Gallery images", list(gallery), key=synced(f"{P}_queries"), max_selections=MAX_QUERIES,
                                   format_func=lambda i: gallery[i].caption, disabled=self_similarity,
                                   help="Off while self-similarity is on.")
        uploads = st.file_uploader("Or add your own", accept_multiple_files=True, key=f"{P}_uploads",
                                   disabled=self_similarity)
    support_col, query_col = st.columns(COLUMNS)
    query_col.markdown("**Queries** — where the model finds the object")
    if support_image is None:
        support_col.info("No support image yet: open *Support image* above to upload one, or go back to the gallery.")
    if support_image is None or not layers:
        return None
    support_id = support_key.split(":", 1)[1] if support_key.startswith("gallery:") else None
    support_caption = gallery[support_id].caption if support_id else "your image"
    if self_similarity:
        query_ids, uploads = [], []
    queries = [(f"gallery:{i}", gallery[i].caption, load_gallery_image(i), i) for i in query_ids]
    if self_similarity:
        queries = [(support_key, f"{support_caption} (self-similarity)", support_image, support_id)]
    for upload in uploads or []:
        try:
            queries.append((*load_upload(upload), None))
        except ImageLoadError as exc:
            st.error(plain(str(exc)))   # names the visitor's file
    if len(queries) > MAX_QUERIES:
        st.warning(f"{MAX_QUERIES} query images at most: {', '.join(plain(q[1]) for q in queries[MAX_QUERIES:])} "
                   "left out.")
        queries = queries[:MAX_QUERIES]
    support = image_report(model.name, support_key, support_image)
    preset_box = tuple(preset.extra["support_region"]) if support_key == f"gallery:{preset.image}" else None
    with support_col:
        st.markdown(f"**Support:** {plain(support_caption)} — draw over the object")
        strokes = query_canvas(f"{P}_{st.session_state[f'{P}_drawing']}_{support_key}", support_image, preset_box,
                               image_key=support_key, width=CANVAS_PX)
        image_credit(support_key)
    drawn = strokes is not None and bool(strokes[..., 3].any())
    if drawn:
        mask_hw = region_mask(strokes)
    elif preset_box is not None:
        mask_hw = draw_region(preset_box, support.display_hwc_u8.shape[:2])
    else:
        mask_hw = None
    with_truth = []
    for key, caption, image, gallery_id in queries:
        truth = None
        if not drawn and preset_box is not None and gallery_id == preset.extra.get("query"):
            shown_hw = image_report(model.name, key, image).display_hwc_u8.shape[:2]
            truth = draw_region(preset.extra["query_region"], shown_hw)
        with_truth.append((key, caption, image, truth))
    return support, mask_hw, with_truth, query_col, "the preset's hand-drawn outline of the object"


def dataset_mode():
    """The dataset mode: ground-truth support mask, ground truth for every query."""
    episode = dataset_episode(P)
    if episode is None or not layers:
        return None
    support_entry, entries = episode
    support = image_report(model.name, support_entry.key, support_entry.image)
    support_col, query_col = st.columns(2)
    support_col.image(mask_overlay(support.display_hwc_u8, support_entry.mask_hw), width="stretch",
                      caption=f"Support: {plain(support_entry.caption)} with its ground-truth mask")
    queries = [(e.key, e.caption, e.image, e.mask_hw) for e in entries]
    return support, support_entry.mask_hw, queries, query_col, "the dataset's ground-truth mask"


episode = gallery_episode() if source == "gallery" else dataset_mode()
if not layers:
    st.info("Pick at least one layer; several layers are fused by averaging their score maps.")
    st.stop()
if episode is None:
    st.stop()
support, support_mask_hw, queries, query_col, truth_words = episode
if support_mask_hw is None or not support_mask_hw.any():
    st.info("The support mask is empty: draw over the object in the support image (or pick a preset).")
    st.stop()
if not queries:
    st.info("Pick at least one query image, or switch on self-similarity.")
    st.stop()

with query_col:
    for query_key, caption, query_image, truth_hw in queries:
        report = image_report(model.name, query_key, query_image)
        out_hw = truth_hw.shape if truth_hw is not None else report.display_hwc_u8.shape[:2]
        try:
            result = segment(support.feats_hwc, support_mask_hw, report.feats_hwc, method=method, layers=layers,
                             threshold=mode, value=manual, out_hw=out_hw)
        except EmptyMaskError as exc:
            st.info(str(exc))
            st.stop()
        if truth_hw is not None:  # above the images, so a projector shows the number the preset's note cites
            st.markdown(f"IoU **{iou(result.mask_hw, truth_hw):.2f}** · Dice **{dice(result.mask_hw, truth_hw):.2f}** "
                        f"against {truth_words}")
        left, right = st.columns(2) if len(queries) > 1 else (st.container(), st.container())
        left.image(mask_overlay(report.display_hwc_u8, result.mask_hw), width="stretch",
                   caption=f"{plain(caption)} · mask covers {result.coverage:.0%} (threshold {result.threshold:.2f})")
        right.image(render_overlay(report.display_hwc_u8, result.score_hw, scale="adaptive", upsample="bilinear"),
                    width="stretch", caption=f"Scores {result.score_hw.min():.2f} (dark) to "
                                         f"{result.score_hw.max():.2f} (bright: like the support's object)")
        if mode == "otsu" and SEG_METHODS[method].natural_threshold is None and result.score_hw.max() < 0.3:
            st.caption(f"No cell of {plain(caption)} is much like the support's object (best score "
                       f"{result.score_hw.max():.2f}); Otsu's threshold still splits the map in two.")
    st.caption(f"{SEG_METHODS[method].display_name} at {' + '.join(model.layer_label(l) for l in layers)}: "
               f"{SEG_METHODS[method].description}")
