"""Layer hierarchy: one image, 3–5 layers side by side; one click moves the reference in all."""

import streamlit as st

from featurelens.images import bundled_gallery
from featurelens.similarity import compare_vectors, describe_metric_choice, hover_state, ViewState, Bounds, checked_int
from pages._ui.charts import vector_chart
from pages._ui.resources import image_report, scenario, view_assets
from pages._ui.presentation import PRESENT_VIEW_HEIGHT, layer_keys, preset_stepper, presenting
from pages._ui.similarity_view import consume_commit, similarity_views
from pages._ui.shell import ensure_app_shell
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.widgets import (consume_chart_pick, figure_caption, image_credit, image_picker, overlay_controls,
                              precision_control, preset_buttons, scenario_page)

ensure_app_shell()

SCENARIO = scenario("layer_hierarchy")
P = "lh"  # widget-key prefix of this page

model = scenario_page(SCENARIO, view_in_link=True)
present = presenting()
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


if present:  # presets stepped by keys, everything else in one "Controls" popover
    preset_stepper(SCENARIO, P, _apply_preset)
    keys_col, controls_col = st.columns([5, 1], vertical_alignment="center")
    pick_col = layer_col = settings_box = controls_col.popover("Controls", icon=":material/tune:", width="stretch")
else:
    preset_buttons(SCENARIO, P, _apply_preset, "**Presets** — classic findings, one click each")
    pick_col, layer_col, settings_col = st.columns([1.1, 2, 0.9])
    with settings_col:
        st.space("small")
        settings_box = st.popover("Settings", icon=":material/tune:", width="stretch")
with pick_col:
    image_key, image = image_picker(P, default_id=defaults.images[0])
with layer_col:
    layers = st.multiselect("Layers (3–5, shallow to deep)", layer_names, key=f"{P}_layers", max_selections=5,
                            format_func=model.layer_label)
with settings_box:
    settings = overlay_controls(P, defaults.settings)
    bits = precision_control(P)
if image is None:
    st.stop()
if st.session_state.get(f"{P}_image_key", image_key) != image_key:
    st.session_state[f"{P}_pin"] = None  # a pin marks a point of one photo; another photo drops it
st.session_state[f"{P}_image_key"] = image_key
if not layers:
    st.info("Pick at least one layer to compare; 3–5 from shallow to deep show the hierarchy best.")
    st.stop()
layers = sorted(layers, key=layer_names.index)
shown_layers = layers
if present:  # digits show one layer as large as the screen allows, 0 all of them side by side
    with keys_col:
        layer_keys([("All layers", None), *((model.layer_label(l), i) for i, l in enumerate(layers))], f"{P}_focus")
    focus = st.session_state.get(f"{P}_focus")
    shown_layers = [layers[focus]] if focus is not None and focus < len(layers) else layers
report = image_report(model.name, image_key, image)

def _set_pin(xy) -> None:
    st.session_state[f"{P}_pin"] = xy


def _channel_views(chart_layer: str, channel: int, layers: list[str]) -> str:
    """Which views show the channel: the chart's layer, or every layer that has that many channels."""
    if not st.session_state.get(f"{P}_channel_all"):
        return f"{model.layer_label(chart_layer)} shows"
    having = [l for l in layers if model.layer(l).channels > channel]
    return f"{', '.join(having)} show"


@st.fragment
def interactive_views(report, layers: list[str], shown_layers: list[str], settings, image_key: str) -> None:
    """Views, bar chart and pin: a click reruns only this fragment, not the whole page."""
    bar_pick = consume_chart_pick(f"{P}_bars", "pick", "channel")
    if bar_pick is not None:
        st.session_state[f"{P}_channel"] = int(bar_pick)
    commit = consume_commit(f"{P}_views")  # a click (or the arrow keys) in any view moves the reference of all
    if commit:
        st.session_state[f"{P}_ref"] = (commit.x, commit.y)
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

    assets = view_assets(model.name, (image_key,), tuple(layers), [report], bits)
    state = hover_state(assets, [(0, layer, model.layer_label(layer)) for layer in shown_layers], settings,
                        mode="layers", ref=(0, ref_xy), pin=(0, pin_xy) if pin_xy else None, channel=show_channel,
                        channel_everywhere=bool(st.session_state.get(f"{P}_channel_all")),
                        per_row=len(shown_layers), caption=figure_caption(model, settings, ", ".join(shown_layers)),
                        max_height=PRESENT_VIEW_HEIGHT if present else None)
    similarity_views(assets, state, key=f"{P}_views")
    image_credit(image_key)
    feats_hwc = report.feats_hwc[chart_layer]
    vectors = compare_vectors(feats_hwc, ref_xy, pin_xy)  # the caption's metric note and the chart below
    st.caption("The views follow the pointer; a click (or the arrow keys) keeps the reference (white ring) for the "
               "chart and the link. " + describe_metric_choice(settings.metric, feats_hwc, vectors.ref_c)
               + (f" **Channel view**: {_channel_views(chart_layer, channel, layers)} channel {channel}."
                  if show_channel else ""))

    st.divider()
    chart_col, info_col = st.columns([3, 1])
    with info_col:
        st.selectbox("Feature vector of layer", layers, key=f"{P}_chart_layer", format_func=model.layer_label)
        b1, b2 = st.columns(2)
        b1.button("Pin reference", on_click=_set_pin, args=(ref_xy,),
                  help="Keep this location's vector (orange ring) to compare with others.")
        b2.button("Clear pin", on_click=_set_pin, args=(None,), disabled=pin_xy is None)
        if vectors.cosine is not None:
            st.metric("Cosine(reference, pinned)", f"{vectors.cosine:.3f}")
        st.number_input("Channel view (click a bar, or type)", min_value=0, max_value=feats_hwc.shape[-1] - 1,
                        value=None, key=f"{P}_channel", placeholder="off — showing similarity",
                        help="Show one channel's activation in this layer's view instead of similarity (IFeaLiD).")
        st.toggle("…in every layer that has it", key=f"{P}_channel_all",
                  help="Channel numbers are not shared meanings across layers: channel 5 of stage 2 and of stage 7 "
                       "are different features. Seeing them side by side shows just that.")
    with chart_col:
        vector_chart(vectors, f"channel of {chart_layer}", key=f"{P}_bars", highlight=channel)

    image_ids = (image_key.split(":", 1)[1],) if image_key.startswith("gallery:") else ()
    if not image_ids:
        st.caption("The address bar holds this view's settings; an uploaded image is not part of a shared link.")
    save_view_to_url(ViewState(images=image_ids, layers=tuple(layers), ref=ref_xy,
                               pin=(0, pin_xy) if pin_xy else None, settings=settings,
                               channel=show_channel))


interactive_views(report, layers, shown_layers, settings, image_key)
