"""Model & layers: predictions, layer shapes and the strongest channels of one layer.

The layer is this page's own picker (the sidebar picks only the model); image, layer, channel
and opacity are in the link."""

import altair as alt
import pandas as pd
import streamlit as st

from featurelens.images import bundled_gallery
from featurelens.similarity import OverlaySettings, strongest_channels, checked_int, hover_state, Bounds, ViewState
from featurelens.models import layer_rows
from featurelens.models import label_note
from pages._ui.presentation import presenting
from pages._ui.resources import image_report, scenario, view_assets
from pages._ui.shell import ensure_app_shell
from pages._ui.urlstate import load_view_from_url, save_view_to_url
from pages._ui.similarity_view import consume_commit, similarity_views
from pages._ui.widgets import image_picker, preset_buttons, scenario_page

ensure_app_shell()

SCENARIO = scenario("model_layers")
N_CHANNELS, COLS = 16, 4
PHOTO_MAX_PX = (380, 190)  # width, height: the photo stays on a 1280×720 screen with the controls above it
P = "ml"  # widget-key prefix of this page
# what this page's view does not have: a link's value for one of these is ignored with a warning
HIDDEN = ("ref", "ref_image", "pin", "metric", "scale", "cmap", "base", "upsample", "mode", "parts", "part")


model = scenario_page(SCENARIO, view_in_link=True)


layer_names = [l.name for l in model.layers]
defaults = ViewState(images=(SCENARIO.images[0] if SCENARIO.images else "chelsea",),
                     layers=(model.spec.default_layers[-1],), settings=OverlaySettings(opacity=0.7))
bounds = Bounds(images={g.id for g in bundled_gallery()}, channels={l.name: l.channels for l in model.layers},
                max_images=1, max_layers=1, hidden=HIDDEN)
url = load_view_from_url(P, defaults, bounds)  # sets ml_opacity itself
if url is not None:
    if url.images:
        st.session_state[f"{P}_source"] = "Gallery"
        st.session_state[f"{P}_gallery"] = url.images[0]
    st.session_state[f"{P}_layer"] = url.layers[0]
    st.session_state[f"{P}_channel"] = url.channel[1] if url.channel else None
if st.session_state.get(f"{P}_layer") not in layer_names:  # first visit, or another model's layer
    st.session_state[f"{P}_layer"] = defaults.layers[0]
st.session_state.setdefault(f"{P}_opacity", defaults.settings.opacity)
first = SCENARIO.presets[0]
first_view_is_first = url is None and (first.image, first.layer) == (defaults.images[0], defaults.layers[0])


def _apply_preset(preset) -> None:
    st.session_state[f"{P}_source"] = "Gallery"
    st.session_state[f"{P}_gallery"] = preset.image
    if preset.layer in layer_names:
        st.session_state[f"{P}_layer"] = preset.layer


def _predictions_and_layers(model, report, layer: str) -> None:
    """The top-5 ImageNet labels (with a note when they cannot apply) and the table of layers,
    the chosen one marked."""
    st.subheader("Top-5 ImageNet labels")
    preds = pd.DataFrame([{"label": p.label, "probability": p.probability, "class": p.index}
                          for p in report.predictions])
    chart = alt.Chart(preds).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("label:N", sort="-x", title=None),
        tooltip=["label", "class", alt.Tooltip("probability:Q", format=".1%")])
    st.altair_chart(chart, width="stretch")
    note = label_note(report.predictions, report.input_hwc_u8)
    if note is not None:
        st.info(note.text, icon=":material/info:")
    st.subheader("Layers")
    rows = pd.DataFrame(layer_rows(model))
    chosen_row = rows.index[rows["layer"] == layer]
    # four columns fit the half page at 1280 px (grid and channels are in the label); the chosen layer is marked
    table = rows[["label", "stride", "values per image", "module"]].style.apply(
        lambda col: ["background-color: rgba(255, 214, 10, 0.45)" if i in chosen_row else "" for i in col.index])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"label": st.column_config.TextColumn("layer · grid · channels"),
                                "values per image": st.column_config.NumberColumn("values / image", format="localized")})


preset_buttons(SCENARIO, P, _apply_preset, showing=first if first_view_is_first else None)
layer = st.session_state[f"{P}_layer"]  # its picker is drawn with the channels below

present = presenting()
if present:   # the presets speak of the channels: they come first, with the photo picker folded beside them
    controls = st.columns([1, 1, 1, 0.6], gap="large", vertical_alignment="bottom")
    picker_box = controls[3].popover("Photo", icon=":material/image:", width="stretch")
else:
    left, right = st.columns([1, 1], gap="large")
    picker_box = left
with picker_box:
    image_key, image = image_picker(P, default_id=defaults.images[0])
if image is None:
    st.stop()
report = image_report(model.name, image_key, image)

if not present:
    with left:
        st.image(image, caption=f"{image.width}×{image.height} px — the model sees it resized to "
                 f"{model.input_hw[1]}×{model.input_hw[0]}",
                 width=int(min(PHOTO_MAX_PX[0], PHOTO_MAX_PX[1] * image.width / image.height)))
    with right:
        _predictions_and_layers(model, report, layer)
    st.divider()
if present:
    layer_col, channel_col, opacity_col = controls[:3]
else:
    st.subheader(f"Strongest channels of {model.layer_label(layer)}")
    st.caption("Each tile is one channel's activation map (own colour scale; bright = strong). Point at a tile to "
               "see it large over the image, click it to keep it. The layer is picked here; the sidebar picks the model.")
    layer_col, channel_col, opacity_col = st.columns(3, gap="large")
layer_col.selectbox("Layer", layer_names, key=f"{P}_layer", format_func=model.layer_label,
                    help="Deeper layers: coarser grid, more channels, more abstract features.")
feats_hwc = report.feats_hwc[layer]
channels = strongest_channels(feats_hwc, N_CHANNELS)
# a channel belongs to one image, layer and model: another one starts again at its strongest channel
shown = (model.name, layer, image_key)
if st.session_state.get(f"{P}_shown") not in (None, shown):
    st.session_state[f"{P}_channel"] = None
st.session_state[f"{P}_shown"] = shown
commit = consume_commit(f"{P}_tiles")  # a click on a tile picks its channel: a typed channel then stays
if commit is not None and commit.view < len(channels):
    st.session_state[f"{P}_channel"] = int(channels[commit.view])
if checked_int(st.session_state.get(f"{P}_channel"), 0, feats_hwc.shape[-1] - 1) is None:  # no min/max error
    st.session_state[f"{P}_channel"] = int(channels[0])
chosen = channel_col.number_input("Channel", 0, feats_hwc.shape[-1] - 1, key=f"{P}_channel",
                                  help="Click a tile, or type any channel number of this layer.")
opacity = opacity_col.slider("Opacity", 0.0, 1.0, step=0.05, key=f"{P}_opacity")
assets = view_assets(model.name, (image_key,), (layer,), [report])
tiles = [(0, layer, f"channel {int(c)}", int(c), 1.0) for c in channels]  # each tile: its channel, opaque
state = hover_state(assets, [*tiles, (0, layer, f"{model.layer_label(layer)} over the image")],
                    OverlaySettings(opacity=float(opacity)), mode="channels", ref=(0, (0.5, 0.5)),
                    channel=(layer, int(chosen)), per_row=COLS,
                    caption=f"{model.name} · {layer} · channel activations, each on its own scale")
similarity_views(assets, state, key=f"{P}_tiles")
st.caption(f"Tiles: the {len(channels)} channels with the highest mean activation, left to right, top to bottom. "
           f"Large: channel {chosen} (grid {feats_hwc.shape[0]}×{feats_hwc.shape[1]}), or the tile under the pointer.")

image_ids = (image_key.split(":", 1)[1],) if image_key.startswith("gallery:") else ()
if not image_ids:
    st.caption("The address bar holds this view's settings; an uploaded image is not part of a shared link.")
save_view_to_url(ViewState(images=image_ids, layers=(layer,), channel=(layer, int(chosen)),
                           settings=OverlaySettings(opacity=round(float(opacity), 2))), bounds)
