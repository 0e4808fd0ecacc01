"""Rotation & scale invariance: two references followed through rotated, zoomed or flipped
copies of one photo (ISO): overlays on every copy and a similarity-vs-transform chart."""

import numpy as np
import streamlit as st

from featurelens.images import bundled_gallery
from featurelens.invariance import (DEFAULT_SWEEPS, TRANSFORM_KINDS, TransformError, affine, invariance_chart,
                                    invariance_table, parse_transforms, sweep_features, sweep_means)
from featurelens.similarity import Bounds, OverlaySettings, ViewState, hover_state
from pages._ui.resources import get_model, image_report, packed_assets, scenario
from pages._ui.presentation import presenting
from pages._ui.similarity_view import consume_commit, similarity_views
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.widgets import image_credit, image_picker, overlay_controls, preset_buttons, scenario_page, set_synced, synced

ensure_app_shell()

SCENARIO = scenario("invariance")
P = "inv"
REFS = {"A": "A · object part", "B": "B · background texture"}
COLS_PER_ROW = 4
MAX_LAYERS = 4

model = scenario_page(SCENARIO, view_in_link=True)
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


def _default_values() -> str:
    return ", ".join(f"{v:g}" for v in DEFAULT_SWEEPS[st.session_state[f"{P}_kind"]])


def _reset_values() -> None:   # the values sit in a popover: set_synced shows the new ones there
    set_synced(f"{P}_values", _default_values())


def _apply_preset(preset) -> None:
    st.session_state[f"{P}_source"] = "Gallery"
    st.session_state[f"{P}_gallery"] = preset.image
    st.session_state[f"{P}_A"] = tuple(preset.point)
    st.session_state[f"{P}_B"] = tuple(preset.extra["point_b"])
    st.session_state[f"{P}_kind"] = preset.extra["transform"]
    if preset.layer and preset.layer not in st.session_state[f"{P}_layers"]:
        set_synced(f"{P}_layers", sorted({*st.session_state[f"{P}_layers"][-(MAX_LAYERS - 1):], preset.layer},
                                         key=layer_names.index))
    set_synced(f"{P}_view_layer", preset.layer or None)
    _reset_values()


st.session_state.setdefault(f"{P}_values", _default_values())

preset_buttons(SCENARIO, P, _apply_preset, "**Presets** — ISO's sweeps, one click each",
               showing=first if url is None else None)


@st.cache_data(show_spinner="Transforming the photo and running the model on every copy…", max_entries=8)
def _sweep(model_name: str, image_key: str, kind: str, values: tuple[float, ...], center: tuple[float, float],
           layers: tuple[str, ...], _display):
    transforms = parse_transforms(kind, values, center)
    return transforms, sweep_features(get_model(model_name), _display, transforms, layers)


# Views first: what changes every minute (photo, transform, what a click sets) in one row; the sweep's
# values, the layers and the view settings fold into two popovers.
pick_col, kind_col, click_col, menu_col = st.columns([1.15, 0.9, 1.15, 0.9])
with pick_col:
    image_key, image = image_picker(P, default_id=defaults.images[0])
with kind_col:
    kind = st.radio("Transform", list(TRANSFORM_KINDS), key=f"{P}_kind", on_change=_reset_values,
                    format_func=lambda k: {"rotate": "Rotation", "zoom": "Zoom", "flip": "Flip"}[k])
with click_col:
    st.radio("A click sets", list(REFS), key=f"{P}_active", format_func=REFS.get)
with menu_col:
    with st.popover("Sweep", icon=":material/rotate_right:", width="stretch",
                    help="The transform's values, the chart's layers and the layer the overlays show."):
        values_text = st.text_input("Values (comma-separated)", key=synced(f"{P}_values"), disabled=kind == "flip",
                                    help="Rotation: degrees, counter-clockwise. Zoom: factors from 1 to 8, towards "
                                         "reference A. Flip: the original and its mirror image.")
        layers = st.multiselect(f"Layers (1–{MAX_LAYERS}, one chart line each)", layer_names, key=synced(f"{P}_layers"),
                                max_selections=MAX_LAYERS, format_func=model.layer_label)
        layers = sorted(layers, key=layer_names.index)
        if layers:
            if st.session_state.get(f"{P}_view_layer") not in layers:
                set_synced(f"{P}_view_layer", layers[-1])
            view_layer = st.selectbox("Overlays of layer", layers, key=synced(f"{P}_view_layer"),
                                      format_func=model.layer_label)
    with st.popover("Settings", icon=":material/tune:", width="stretch"):
        settings = overlay_controls(P, defaults.settings)
if image is None:
    st.stop()
if not layers:
    st.info("Pick at least one layer (under *Sweep*): each layer is one line of the chart.")
    st.stop()
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
def interactive_views(settings, view_layer: str) -> None:
    """The original and every copy follow the pointer in the browser (a point of a copy stands for
    the original's point it shows); a click moves the active reference and reruns only this part."""
    commit = consume_commit(f"{P}_views")
    if commit:
        st.session_state[f"{P}_{st.session_state[f'{P}_active']}"] = (commit.x, commit.y)
    refs = {name: tuple(st.session_state[f"{P}_{name}"]) for name in REFS}
    if kind == "zoom" and refs["A"] != transforms[0].center:
        st.rerun()  # zooms follow reference A: the copies must be made again

    active = st.session_state[f"{P}_active"]
    other = "B" if active == "A" else "A"
    assets = packed_assets(("sweep", model.name, image_key, kind, tuple(t.value for t in transforms), center, view_layer),
                           [display, *(im.image_hwc_u8 for im in swept.images)],
                           [{view_layer: swept.original[view_layer]}, *({view_layer: f[view_layer]} for f in swept.feats)])
    views = [(0, view_layer, "original"), *((i + 1, view_layer, t.label) for i, t in enumerate(transforms))]
    state = hover_state(assets, views, settings, mode="images", ref=(0, refs[active]), pin=(0, refs[other]),
                        per_row=COLS_PER_ROW, affines=[np.eye(2, 3), *(affine(t, wh) for t in transforms)],
                        caption=f"{model.name} · {view_layer} · {kind} sweep · reference {active}")
    table = invariance_table(swept.original, swept.feats, transforms, refs, image_wh=wh,
                             valid_hws=[im.valid_hw for im in swept.images], metric=settings.metric)
    means = sweep_means(table, transforms)
    shown = [f"{name} {means[(name, view_layer)]:.2f}" for name in REFS
             if (name, view_layer) in means.index and np.isfinite(means[(name, view_layer)])]
    means_line = (f"Mean similarity of each reference to its corresponding cell over the copies, "
                  f"{model.layer_label(view_layer)}: {' · '.join(shown)} (every layer in the chart below)") if shown else ""
    if means_line and presenting():   # the numbers the large note quotes, on a projector's first screen
        st.caption(means_line)
    similarity_views(assets, state, key=f"{P}_views")
    if means_line and not presenting():
        st.caption(means_line)
    st.caption(f"Point at the original or any copy: every copy is coloured by similarity to that point of the "
               f"original ({model.layer_label(view_layer)}, one colour range), and each rings the point's place in it "
               f"(white; {other} orange). A click moves reference **{active}**; black padding is no point of the photo.")

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


interactive_views(settings, view_layer)
