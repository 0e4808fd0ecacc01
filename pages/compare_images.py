"""Compare images: one click on any image updates the similarity overlay on all of them (ISO),
the blog post's two-image view, and NMF parts shared across the images."""

import numpy as np
import streamlit as st

from featurelens.images import bundled_gallery, ImageLoadError
from featurelens.similarity import (NEGATIVE_HANDLING, describe_metric_choice, hover_state, nmf_parts, part_colors,
                                    reference_cell, reference_vector, render_parts, ViewState, Bounds, checked_int)
from pages._ui.resources import image_report, load_gallery_image, load_upload, scenario, view_assets
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.presentation import PRESENT_VIEW_HEIGHT, layer_keys, preset_stepper, presenting
from pages._ui.similarity_view import consume_commit, similarity_views
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.widgets import figure_caption, overlay_controls, precision_control, preset_buttons, scenario_page

ensure_app_shell()

SCENARIO = scenario("compare_images")
P = "cmp"
MODES = {"all": "All images", "pair": "Two images", "parts": "NMF parts"}
COLS_PER_ROW = 4
NORMAL_VIEW_HEIGHT = "max(120px, calc(100vh - 610px))"  # a row of views fits under the controls at 1280×720
PARTS_K, DEFAULT_K = (2, 10), 4  # the range of the "Parts (k)" slider, and its start


@st.cache_data(show_spinner="Factorising features into parts…", max_entries=16)
def _parts(model_name: str, image_keys: tuple[str, ...], layer: str, k: int, negative: str, _feats):
    return nmf_parts(_feats, k, negative=negative)


model = scenario_page(SCENARIO, view_in_link=True)
present = presenting()
gallery = {g.id: g for g in bundled_gallery()}
layer_names = [layer.name for layer in model.layers]
default_layer = SCENARIO.layers[0] if SCENARIO.layers and SCENARIO.layers[0] in layer_names else model.spec.default_layers[-1]
first_point = next((p.point for p in SCENARIO.presets if p.point), (0.5, 0.5))
defaults = ViewState(images=tuple(SCENARIO.images), layers=(default_layer,), ref=first_point, mode="all",
                     parts=DEFAULT_K)
bounds = Bounds(images=set(gallery), channels={l.name: l.channels for l in model.layers}, min_images=2,
                max_images=8, max_layers=1, parts=PARTS_K, modes=tuple(MODES), hidden=("pin", "channel"))
url = load_view_from_url(P, defaults, bounds)
if url is not None:
    st.session_state[f"{P}_images"] = list(url.images)
    st.session_state[f"{P}_layer"] = url.layers[0]
    st.session_state[f"{P}_ref"] = (url.ref_image, url.ref)
    st.session_state[f"{P}_mode"] = url.mode
    st.session_state[f"{P}_k"] = url.parts
    st.session_state[f"{P}_part"] = url.part
st.session_state.setdefault(f"{P}_images", list(defaults.images))
st.session_state.setdefault(f"{P}_layer", default_layer)
st.session_state.setdefault(f"{P}_ref", (0, defaults.ref))
st.session_state.setdefault(f"{P}_mode", "all")
st.session_state.setdefault(f"{P}_k", DEFAULT_K)


def _apply_preset(preset) -> None:
    st.session_state[f"{P}_images"] = list(preset.extra.get("images", [preset.image]))
    if preset.layer:
        st.session_state[f"{P}_layer"] = preset.layer
    if preset.point:
        st.session_state[f"{P}_ref"] = (0, preset.point)
    st.session_state[f"{P}_mode"] = preset.extra.get("mode", "all")


if present:  # presets stepped by keys, layers by digits, everything else in one "Controls" popover
    preset_stepper(SCENARIO, P, _apply_preset)
    keys_col, controls_col = st.columns([5, 1], vertical_alignment="center")
    with keys_col:   # the lesson's layers (all of them would not fit a 1024 px projector); Controls has every one
        shown = {*model.spec.default_layers, *SCENARIO.layers, *(p.layer for p in SCENARIO.presets if p.layer),
                 st.session_state[f"{P}_layer"]}
        layer_keys([(l, l) for l in layer_names if l in shown], f"{P}_layer")
    top = [controls_col.popover("Controls", icon=":material/tune:", width="stretch")] * 4
else:
    preset_buttons(SCENARIO, P, _apply_preset)
    top = st.columns([2.4, 1.3, 1.1, 1.0])
image_ids = top[0].multiselect("Gallery images", list(gallery), key=f"{P}_images", max_selections=8,
                               format_func=lambda i: gallery[i].caption)
with top[0].expander("Add your own images"):
    uploads = st.file_uploader("Images to compare", accept_multiple_files=True, key=f"{P}_uploads",
                               help="They join the gallery images (8 in all). Shared links carry gallery images only.")
entries = [(f"gallery:{i}", gallery[i].caption, load_gallery_image(i)) for i in image_ids]
for upload in uploads or []:
    try:
        entries.append(load_upload(upload))
    except ImageLoadError as exc:
        st.error(plain(str(exc)))   # names the visitor's file
if len(entries) > 8:
    st.warning(f"Eight images are compared at most: {', '.join(caption for _, caption, _ in entries[8:])} "
               "left out. Remove some gallery images or uploads to bring them in.")
    entries = entries[:8]
layer = top[1].selectbox("Layer", layer_names, key=f"{P}_layer", format_func=model.layer_label)
mode = top[2].radio("View", list(MODES), key=f"{P}_mode", format_func=MODES.get,
                    help="**All images** (ISO): every image coloured by similarity to one point. **Two images**: the "
                         "first image's grid, and the second coloured by similarity to one square. **NMF parts**: "
                         "the features factorised into parts shared by all images.")
other = 1
if mode == "pair" and len(entries) > 2:  # the pair view compares the first image with one other
    other = top[1].selectbox("Compare with", range(1, len(entries)), key=f"{P}_other", label_visibility="collapsed",
                             format_func=lambda i: f"with {entries[i][1]}")  # one row: the views stay on screen
if present:
    settings_box = top[3]
else:
    with top[3]:
        st.space("small")
        settings_box = st.popover("Settings", icon=":material/tune:", width="stretch")
with settings_box:
    settings = overlay_controls(P, defaults.settings)
    bits = precision_control(P)
if len(entries) < 2:
    st.info("Pick at least two images to compare (up to eight), from the gallery or your own.")
    st.stop()
keys = tuple(key for key, _, _ in entries)
captions = [caption for _, caption, _ in entries]
reports = [image_report(model.name, key, image) for key, _, image in entries]
feats = [r.feats_hwc[layer] for r in reports]
displays = [r.display_hwc_u8 for r in reports]


@st.fragment
def overlay_views(settings) -> None:
    """The views follow the pointer in the browser; a click reruns only this fragment, not the page."""
    commit = consume_commit(f"{P}_views_{mode}")
    if commit:
        st.session_state[f"{P}_ref"] = (commit.image, (commit.x, commit.y))
    ref_image, ref_xy = st.session_state[f"{P}_ref"]
    ref_image = ref_image if ref_image < len(entries) else 0
    caption = figure_caption(model, settings, layer)
    if mode == "all":
        assets = view_assets(model.name, keys, (layer,), reports, bits)
        rows = -(-len(entries) // COLS_PER_ROW)
        state = hover_state(assets, [(i, layer, c) for i, c in enumerate(captions)], settings, mode="images",
                            ref=(ref_image, ref_xy), per_row=COLS_PER_ROW, caption=caption,
                            max_height=f"calc(({PRESENT_VIEW_HEIGHT}) / {rows} - 2rem)" if present else NORMAL_VIEW_HEIGHT)
        note = ("Point at any image: every image is coloured by similarity to the point under the pointer, on one "
                "colour range; a click keeps it (white ring). ")
    else:
        ref_image = 0  # the pair view's reference square is always in the first image
        assets = view_assets(model.name, (keys[0], keys[other]), (layer,), [reports[0], reports[other]], bits)
        state = hover_state(assets, [(0, layer, captions[0]), (1, layer, captions[other])], settings,
                            mode="pair", ref=(0, ref_xy), per_row=2, caption=caption,
                            max_height=PRESENT_VIEW_HEIGHT if present else NORMAL_VIEW_HEIGHT)
        note = (f"Point at {captions[0]} (left): the right image shows how similar each of its squares is to the "
                f"square under the pointer (on its own colour range; best match in a yellow square); a click keeps "
                f"the square. The grid is the layer's {feats[0].shape[0]}×{feats[0].shape[1]} cells. ")
    similarity_views(assets, state, key=f"{P}_views_{mode}")
    st.caption(note + _metric_note(settings, ref_image, ref_xy))
    save_view_to_url(ViewState(images=tuple(image_ids), layers=(layer,), ref=ref_xy, ref_image=ref_image,
                               settings=settings, mode=mode))


def _metric_note(settings, ref_image: int, ref_xy) -> str:
    ref_c = reference_vector(feats[ref_image], reference_cell(ref_xy, feats[ref_image].shape[:2]))
    return describe_metric_choice(settings.metric, np.concatenate([f.reshape(-1, f.shape[-1]) for f in feats]), ref_c)


if mode in ("all", "pair"):
    overlay_views(settings)
else:
    c1, c2, c3 = st.columns([1, 1.5, 2])
    if checked_int(st.session_state.get(f"{P}_k"), *PARTS_K) is None:  # never a slider min/max error
        st.session_state[f"{P}_k"] = DEFAULT_K
    k = c1.slider("Parts (k)", *PARTS_K, key=f"{P}_k")
    negative = c2.selectbox("Negative values", list(NEGATIVE_HANDLING), key=f"{P}_negative",
                            format_func=lambda key: NEGATIVE_HANDLING[key].display_name)
    try:
        result = _parts(model.name, keys, layer, k, negative, feats)
    except ValueError as exc:
        st.error(f"Could not factorise these features: {exc}")
        st.stop()
    colors = part_colors(k)
    options = [None, *range(k)]
    part = c3.radio("Highlight a part", options, key=f"{P}_part", horizontal=True,
                    format_func=lambda p: "all parts" if p is None else f"part {p}")
    swatches = " ".join(f"<span style='background:rgb{tuple(int(v) for v in colors[p])};padding:2px 10px;"
                        f"border-radius:4px;color:white'>part {p}</span>" for p in range(k))
    st.markdown(swatches, unsafe_allow_html=True)
    st.caption(f"Each location is coloured by its strongest part; pick a part to see where it occurs in every "
               f"image. {result.note} {k} parts rebuild the features with {result.relative_error:.0%} relative "
               "error (more parts: lower error, but harder to name each part).")
    top_strength = result.max_strength(part)
    images = [render_parts(d, result.maps_nhwk[n], highlight=part, max_strength=top_strength)
              for n, d in enumerate(displays)]
    for start in range(0, len(images), COLS_PER_ROW):
        for offset, col in enumerate(st.columns(COLS_PER_ROW)):
            if start + offset < len(images):
                col.image(images[start + offset], caption=captions[start + offset], width="stretch")
    ref_image, ref_xy = st.session_state[f"{P}_ref"]
    save_view_to_url(ViewState(images=tuple(image_ids), layers=(layer,), ref=ref_xy,
                               ref_image=min(ref_image, len(entries) - 1), mode=mode, parts=k, part=part))
