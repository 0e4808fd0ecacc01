"""Layer hierarchy: one image, 3–5 layers side by side; one click moves the reference in all."""

import streamlit as st

from featurelens.images import bundled_gallery
from featurelens.similarity import compare_vectors, layer_views, ViewState, Bounds, checked_int
from pages._ui.charts import color_legend, vector_chart
from pages._ui.clickable_image import clickable_image
from pages._ui.resources import image_report, scenario
from pages._ui.shell import current_model, ensure_app_shell
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.widgets import (consume_chart_pick, consume_click, grid_caption, image_picker, overlay_controls, preset_buttons,
                              render_lesson)

ensure_app_shell()

SCENARIO = scenario("layer_hierarchy")
P = "lh"  # widget-key prefix of this page

st.title(SCENARIO.title)
render_lesson(SCENARIO)
model = current_model()
if model is None:
    st.stop()
layer_names = [layer.name for layer in model.layers]
default_layers = tuple(l for l in SCENARIO.layers if l in layer_names) or model.spec.default_layers

first_point = next((p.point for p in SCENARIO.presets if p.image == SCENARIO.images[0] and p.point), (0.5, 0.5))
defaults = ViewState(images=(SCENARIO.images[0],), layers=default_layers, ref=first_point)
bounds = Bounds(images={g.id for g in bundled_gallery()}, channels={l.name: l.channels for l in model.layers},
                max_images=1, max_layers=5, hidden=("mode", "parts", "part"))
url = load_view_from_url(P, defaults, bounds)
if url is not None:
    st.session_state[f"{P}_gallery"] = url.images[0]
    st.session_state[f"{P}_layers"] = list(url.layers)
    st.session_state[f"{P}_ref"] = url.ref
    st.session_state[f"{P}_pin"] = url.pin[1] if url.pin else None
    if url.channel:
        st.session_state[f"{P}_chart_layer"] = url.channel[0]
    st.session_state[f"{P}_channel"] = url.channel[1] if url.channel else None
st.session_state.setdefault(f"{P}_ref", defaults.ref)
st.session_state.setdefault(f"{P}_layers", list(default_layers))


def _apply_preset(preset) -> None:
    st.session_state[f"{P}_source"] = "Gallery"
    st.session_state[f"{P}_gallery"] = preset.image
    if preset.point:
        st.session_state[f"{P}_ref"] = preset.point
    if preset.layer and preset.layer not in st.session_state[f"{P}_layers"]:
        st.session_state[f"{P}_layers"] = sorted({*st.session_state[f"{P}_layers"][-4:], preset.layer},
                                                 key=layer_names.index)
    st.session_state[f"{P}_channel"] = None


preset_buttons(SCENARIO, P, _apply_preset, "**Presets** — classic findings, one click each")

pick_col, layer_col = st.columns([1, 2])
with pick_col:
    image_key, image = image_picker(P, default_id=defaults.images[0])
with layer_col:
    layers = st.multiselect("Layers (3–5, shallow to deep)", layer_names, key=f"{P}_layers", max_selections=5,
                            format_func=model.layer_label)
if image is None:
    st.stop()
if st.session_state.get(f"{P}_image_key", image_key) != image_key:
    st.session_state[f"{P}_pin"] = None  # a pin marks a point of one photo; another photo drops it
st.session_state[f"{P}_image_key"] = image_key
if not layers:
    st.info("Pick at least one layer to compare; 3–5 from shallow to deep show the hierarchy best.")
    st.stop()
layers = sorted(layers, key=layer_names.index)
settings = overlay_controls(P, defaults.settings)
per_row = 2 if st.toggle("Large views (two per row, for projecting)", key=f"{P}_large") else len(layers)
report = image_report(model.name, image_key, image)

def _set_pin(xy) -> None:
    st.session_state[f"{P}_pin"] = xy


@st.fragment
def interactive_views(report, layers: list[str], settings, image_key: str, per_row: int) -> None:
    """Views, bar chart and pin: a click reruns only this fragment, not the whole page."""
    bar_pick = consume_chart_pick(f"{P}_bars", "pick", "channel")
    if bar_pick is not None:
        st.session_state[f"{P}_channel"] = int(bar_pick)
    for layer in layers:  # a click on any view moves the reference of all views
        click = consume_click(f"{P}_click_{model.name}_{layer}")
        if click:
            st.session_state[f"{P}_ref"] = click
            st.session_state[f"{P}_channel"] = None
    ref_xy = st.session_state[f"{P}_ref"]
    pin_xy = st.session_state.get(f"{P}_pin")
    if st.session_state.get(f"{P}_chart_layer") not in layers:  # the bar chart shows the deepest layer by default
        st.session_state[f"{P}_chart_layer"] = layers[-1]
    chart_layer = st.session_state[f"{P}_chart_layer"]
    # a channel of another layer (the chart layer changed) is off, never an error
    channel = checked_int(st.session_state.get(f"{P}_channel"), 0, report.feats_hwc[chart_layer].shape[-1] - 1)
    st.session_state[f"{P}_channel"] = channel
    show_channel = (chart_layer, channel) if channel is not None else None

    views = layer_views({l: report.feats_hwc[l] for l in layers}, report.display_hwc_u8, ref_xy, settings,
                        pin_xy=pin_xy, channel=show_channel)
    st.caption("Click anywhere on any view to move the reference (white ring) in all layers. "
               + next(iter(views.values())).note)
    if settings.scale == "fixed":
        color_legend(settings.cmap, *next(iter(views.values())).value_range)
    for start in range(0, len(layers), per_row):
        for col, layer in zip(st.columns(per_row), layers[start:start + per_row]):
            with col:
                clickable_image(views[layer].image_hwc_u8, key=f"{P}_click_{model.name}_{layer}",
                                alt=f"Similarity map of {model.layer_label(layer)} over the photo",
                                cursor="crosshair", point=ref_xy)
                channel_note = " · **channel view**" if show_channel and show_channel[0] == layer else ""
                st.caption(grid_caption(model, layer, views[layer]) + channel_note)

    st.divider()
    chart_col, info_col = st.columns([3, 1])
    with info_col:
        st.selectbox("Feature vector of layer", layers, key=f"{P}_chart_layer", format_func=model.layer_label)
        feats_hwc = report.feats_hwc[chart_layer]
        vectors = compare_vectors(feats_hwc, ref_xy, pin_xy)
        b1, b2 = st.columns(2)
        b1.button("Pin reference", on_click=_set_pin, args=(ref_xy,),
                  help="Keep this location's vector (orange ring) to compare with others.")
        b2.button("Clear pin", on_click=_set_pin, args=(None,), disabled=pin_xy is None)
        if vectors.cosine is not None:
            st.metric("Cosine(reference, pinned)", f"{vectors.cosine:.3f}")
        st.number_input("Channel view (click a bar, or type)", min_value=0, max_value=feats_hwc.shape[-1] - 1,
                        value=None, key=f"{P}_channel", placeholder="off — showing similarity",
                        help="Show one channel's activation in this layer's view instead of similarity (IFeaLiD).")
    with chart_col:
        vector_chart(vectors, f"channel of {chart_layer}", key=f"{P}_bars")

    image_ids = (image_key.split(":", 1)[1],) if image_key.startswith("gallery:") else ()
    if not image_ids:
        st.caption("The address bar holds this view's settings; an uploaded image is not part of a shared link.")
    save_view_to_url(ViewState(images=image_ids, layers=tuple(layers), ref=ref_xy,
                               pin=(0, pin_xy) if pin_xy else None, settings=settings,
                               channel=show_channel))


interactive_views(report, layers, settings, image_key, per_row)
