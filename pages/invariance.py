"""Rotation & scale invariance: two references followed through rotated, zoomed or flipped
copies of one photo (ISO): overlays on every copy and a similarity-vs-transform chart."""

import streamlit as st

from featurelens.images import bundled_gallery
from featurelens.invariance import (DEFAULT_SWEEPS, TRANSFORM_KINDS, TransformError, invariance_chart,
                                    invariance_table, parse_transforms, sweep_features, transformed_views, unmap_point)
from featurelens.similarity import Bounds, OverlaySettings, ViewState, layer_views
from pages._ui.clickable_image import clickable_image
from pages._ui.resources import get_model, image_report, scenario
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.widgets import (consume_click, image_credit, image_picker, overlay_controls, preset_buttons,
                              scenario_page)

ensure_app_shell()

SCENARIO = scenario("invariance")
P = "inv"
REFS = {"A": "A · object part", "B": "B · background texture"}
COLS_PER_ROW = 4
MAX_LAYERS = 4

model = scenario_page(SCENARIO)
layer_names = [layer.name for layer in model.layers]
default_layers = tuple(l for l in SCENARIO.layers if l in layer_names) or model.spec.default_layers
first = SCENARIO.presets[0]
defaults = ViewState(images=(first.image,), layers=default_layers, ref=first.point,
                     pin=(0, tuple(first.extra["point_b"])),
                     mode=first.extra["transform"], settings=OverlaySettings(scale="adaptive"))
bounds = Bounds(images={g.id for g in bundled_gallery()}, channels={l.name: l.channels for l in model.layers},
                max_images=1, max_layers=MAX_LAYERS, modes=tuple(TRANSFORM_KINDS), hidden=("channel", "parts", "part"))
url = load_view_from_url(P, defaults, bounds)
if url is not None:
    st.session_state[f"{P}_source"] = "Gallery"
    st.session_state[f"{P}_gallery"] = url.images[0]
    st.session_state[f"{P}_layers"] = list(url.layers)
    st.session_state[f"{P}_A"] = url.ref
    st.session_state[f"{P}_B"] = url.pin[1] if url.pin else defaults.pin[1]
    st.session_state[f"{P}_kind"] = url.mode or defaults.mode
st.session_state.setdefault(f"{P}_layers", list(defaults.layers))
st.session_state.setdefault(f"{P}_A", defaults.ref)
st.session_state.setdefault(f"{P}_B", defaults.pin[1])
st.session_state.setdefault(f"{P}_kind", defaults.mode)
st.session_state.setdefault(f"{P}_active", "A")


def _reset_values() -> None:
    st.session_state[f"{P}_values"] = ", ".join(f"{v:g}" for v in DEFAULT_SWEEPS[st.session_state[f"{P}_kind"]])


def _apply_preset(preset) -> None:
    st.session_state[f"{P}_source"] = "Gallery"
    st.session_state[f"{P}_gallery"] = preset.image
    st.session_state[f"{P}_A"] = tuple(preset.point)
    st.session_state[f"{P}_B"] = tuple(preset.extra["point_b"])
    st.session_state[f"{P}_kind"] = preset.extra["transform"]
    if preset.layer and preset.layer not in st.session_state[f"{P}_layers"]:
        st.session_state[f"{P}_layers"] = sorted({*st.session_state[f"{P}_layers"][-(MAX_LAYERS - 1):], preset.layer},
                                                 key=layer_names.index)
    st.session_state[f"{P}_view_layer"] = preset.layer or None
    _reset_values()


if f"{P}_values" not in st.session_state:
    _reset_values()

preset_buttons(SCENARIO, P, _apply_preset, "**Presets** — ISO's sweeps, one click each")


@st.cache_data(show_spinner="Transforming the photo and running the model on every copy…", max_entries=8)
def _sweep(model_name: str, image_key: str, kind: str, values: tuple[float, ...], center: tuple[float, float],
           layers: tuple[str, ...], _display):
    transforms = parse_transforms(kind, values, center)
    return transforms, sweep_features(get_model(model_name), _display, transforms, layers)


pick_col, sweep_col, layer_col, settings_col = st.columns([1, 1.1, 1.3, 0.8])
with settings_col:
    st.space("small")
    with st.popover("Settings", icon=":material/tune:", width="stretch"):
        settings = overlay_controls(P, defaults.settings)
with pick_col:
    image_key, image = image_picker(P, default_id=defaults.images[0])
with sweep_col:
    kind = st.radio("Transform", list(TRANSFORM_KINDS), key=f"{P}_kind", horizontal=True, on_change=_reset_values,
                    format_func=lambda k: {"rotate": "Rotation", "zoom": "Zoom", "flip": "Flip"}[k])
    values_text = st.text_input("Values (comma-separated)", key=f"{P}_values", disabled=kind == "flip",
                                help="Rotation: degrees, counter-clockwise. Zoom: factors from 1 to 8, towards "
                                     "reference A. Flip: the original and its mirror image.")
with layer_col:
    layers = st.multiselect(f"Layers (1–{MAX_LAYERS}, one line each)", layer_names, key=f"{P}_layers",
                            max_selections=MAX_LAYERS, format_func=model.layer_label)
if image is None:
    st.stop()
if not layers:
    st.info("Pick at least one layer: each layer is one line of the chart.")
    st.stop()
layers = sorted(layers, key=layer_names.index)
refs = {name: tuple(st.session_state[f"{P}_{name}"]) for name in REFS}
try:
    transforms = parse_transforms(kind, values_text, refs["A"])
except TransformError as exc:
    st.info(f"The transform values cannot be used: {plain(str(exc))}.")
    st.stop()
report = image_report(model.name, image_key, image)
display = report.display_hwc_u8
wh = (display.shape[1], display.shape[0])
center = refs["A"] if kind == "zoom" else (0.5, 0.5)   # only zooms depend on a point: rotations stay cached
transforms, swept = _sweep(model.name, image_key, kind, tuple(t.value for t in transforms), center, tuple(layers),
                           display)


@st.fragment
def interactive_views(settings) -> None:
    """Clicks on the original or on any copy move the active reference: a click reruns only this part."""
    click = consume_click(f"{P}_click_original")
    if click:
        st.session_state[f"{P}_{st.session_state[f'{P}_active']}"] = click
    for i, t in enumerate(transforms):
        click = consume_click(f"{P}_click_{kind}_{i}")
        if click:
            back = unmap_point(t, click, wh)
            if back is None:
                st.session_state[f"{P}_padding_note"] = t.label
            else:
                st.session_state[f"{P}_{st.session_state[f'{P}_active']}"] = back
                st.session_state[f"{P}_padding_note"] = None
    refs = {name: tuple(st.session_state[f"{P}_{name}"]) for name in REFS}
    if kind == "zoom" and refs["A"] != transforms[0].center:
        st.rerun()  # zooms follow reference A: the copies must be made again
    active = st.session_state[f"{P}_active"]

    controls = st.columns([1.6, 1.4, 3])
    controls[0].radio("A click sets", list(REFS), key=f"{P}_active", format_func=REFS.get, horizontal=True)
    if st.session_state.get(f"{P}_view_layer") not in layers:
        st.session_state[f"{P}_view_layer"] = layers[-1]
    view_layer = controls[1].selectbox("Overlays of layer", layers, key=f"{P}_view_layer",
                                       format_func=model.layer_label)
    if st.session_state.get(f"{P}_padding_note"):
        controls[2].info(f"That point of the {st.session_state[f'{P}_padding_note']} copy is black padding, not "
                         "the photo: click inside the photo.")
    active = st.session_state[f"{P}_active"]
    views = transformed_views(swept.original[view_layer], [f[view_layer] for f in swept.feats], swept.images,
                              refs[active], settings, image_wh=wh)
    other = "B" if active == "A" else "A"
    original = layer_views({view_layer: swept.original[view_layer]}, display, refs[active], settings,
                           pin_xy=refs[other])[view_layer].image_hwc_u8
    st.caption(f"Click the original (left) or any copy to move reference **{active}**; its corresponding point in "
               f"every copy has a white ring. Copies are coloured by similarity to {active} in the original "
               f"({model.layer_label(view_layer)}, one colour range for all copies).")
    cols = st.columns(COLS_PER_ROW)
    with cols[0]:
        clickable_image(original, key=f"{P}_click_original", cursor="crosshair", point=refs[active],
                        alt=f"The original photo with reference {active} (white ring) and {other} (orange ring)")
        st.caption(f"**original** · {active} white ring, {other} orange ring")
    for i, (t, (out, sim_hw, mapped)) in enumerate(zip(transforms, views)):
        slot = i + 1
        if slot % COLS_PER_ROW == 0:
            cols = st.columns(COLS_PER_ROW)
        with cols[slot % COLS_PER_ROW]:
            clickable_image(out, key=f"{P}_click_{kind}_{i}", cursor="crosshair", point=mapped,
                            alt=f"The photo transformed by {t.label}, coloured by similarity to reference {active}")
            where = "left the frame: no value" if mapped is None else f"best {sim_hw.max():.2f}"
            st.caption(f"**{t.label}** · {where}")

    table = invariance_table(swept.original, swept.feats, transforms, refs, image_wh=wh,
                             valid_hws=[im.valid_hw for im in swept.images], metric=settings.metric)
    titles = {name: f"{label} ({xy[0]:.2f}, {xy[1]:.2f})" for (name, label), xy in zip(REFS.items(), refs.values())}
    st.markdown("**Similarity of each reference to its corresponding cell** — a gap means the point left the frame")
    x_title = "Zoom towards reference A (×)" if kind == "zoom" else TRANSFORM_KINDS[kind]
    x_labels = {0.0: "original", 1.0: "flipped"} if kind == "flip" else None
    st.altair_chart(invariance_chart(table, x_title, layer_order=layers, reference_titles=titles, x_labels=x_labels),
                    width="content")
    image_credit(image_key)
    with st.expander("The numbers"):
        st.dataframe(table.assign(reference=table["reference"].map(titles)), hide_index=True)
    image_ids = (image_key.split(":", 1)[1],) if image_key.startswith("gallery:") else ()
    if not image_ids:
        st.caption("The address bar holds this view's settings; an uploaded image is not part of a shared link.")
    save_view_to_url(ViewState(images=image_ids, layers=tuple(layers), ref=refs["A"], pin=(0, refs["B"]),
                               settings=settings, mode=kind))


interactive_views(settings)
