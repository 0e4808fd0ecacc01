"""Model & layers: predictions, layer shapes and the strongest channels of one layer."""

import altair as alt
import pandas as pd
import streamlit as st

from featurelens.similarity import channel_montage, MontageLayout, render_channel, strongest_channels, checked_int
from featurelens.models import layer_rows
from featurelens.models import label_note
from pages._ui.clickable_image import clickable_image
from pages._ui.resources import image_report, scenario
from pages._ui.shell import LAYER_KEY, current_layer, current_model, ensure_app_shell
from pages._ui.widgets import consume_click, image_picker, preset_buttons, render_lesson

ensure_app_shell()

SCENARIO = scenario("model_layers")
N_CHANNELS, TILE_PX, COLS = 16, 96, 4


st.title(SCENARIO.title)
render_lesson(SCENARIO)

model = current_model()
if model is None:
    st.stop()


def _apply_preset(preset) -> None:
    st.session_state["ml_source"] = "Gallery"
    st.session_state["ml_gallery"] = preset.image
    if preset.layer:
        st.session_state[LAYER_KEY] = preset.layer


preset_buttons(SCENARIO, "ml", _apply_preset)
layer = current_layer(model)

left, right = st.columns([1, 1], gap="large")
with left:
    image_key, image = image_picker("ml", default_id=SCENARIO.images[0] if SCENARIO.images else "chelsea")
if image is None:
    st.stop()
report = image_report(model.name, image_key, image)

with left:
    st.image(image, caption=f"{image.width}×{image.height} px — the model sees it resized to "
             f"{model.input_hw[1]}×{model.input_hw[0]}", width="stretch")
with right:
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
    rows["selected"] = rows["layer"] == layer
    st.dataframe(rows[["selected", "label", "grid", "channels", "stride", "values per image", "module"]],
                 hide_index=True, width="stretch")

st.divider()
st.subheader(f"Strongest channels of {model.layer_label(layer)}")
st.caption("Each tile is one channel's activation map (own colour scale; bright = strong), ordered by mean "
           "activation. Click a tile to see it large over the image. Change the layer in the sidebar.")
feats_hwc = report.feats_hwc[layer]
channels = strongest_channels(feats_hwc, N_CHANNELS)
layout = MontageLayout(n_tiles=len(channels), cols=COLS, tile_px=TILE_PX)
montage_key = f"montage_{model.name}_{layer}"
click = consume_click(montage_key)  # only a new click picks a tile: a typed channel then stays
tile = layout.tile_at((click[0] * layout.size_wh[0], click[1] * layout.size_wh[1])) if click else None
if tile is not None:
    st.session_state["ml_channel"] = int(channels[tile])
grid_col, big_col = st.columns([1, 1], gap="large")
with grid_col:
    clickable_image(channel_montage(feats_hwc, channels, layout), key=montage_key, image_format="PNG",
                    alt=f"Activation maps of the {len(channels)} strongest channels of {model.layer_label(layer)}")
    if checked_int(st.session_state.get("ml_channel"), 0, feats_hwc.shape[-1] - 1) is None:  # no min/max error
        st.session_state["ml_channel"] = int(channels[0])
    st.caption("Tiles, left to right, top to bottom: channels " + ", ".join(str(int(c)) for c in channels))
    chosen = st.number_input("Channel", 0, feats_hwc.shape[-1] - 1, key="ml_channel",
                             help="Or type any channel number of this layer.")
with big_col:
    opacity = st.slider("Opacity", 0.0, 1.0, 0.7, 0.05, key="ml_opacity")
    big = render_channel(report.display_hwc_u8, feats_hwc[..., chosen], opacity=opacity)
    st.image(big, caption=f"Channel {chosen} of {layer} over the image (grid {feats_hwc.shape[0]}×"
             f"{feats_hwc.shape[1]}; mean activation {feats_hwc[..., chosen].mean():.3f})",
             width="stretch")
