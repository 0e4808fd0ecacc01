"""Model comparison: the same drawn region searched in two caches of the same images, built by two
models (or two layers), results side by side with the overlap of their top-k."""

import streamlit as st

from featurelens.search import (SearchError, drawn_or_region_mask, grouped_scores, query_from_features, search_features,
                                top_overlap)
from pages._ui.resources import scenario
from pages._ui.search import cache_features, hit_grid, query_canvas, recipe_cache, recipe_image, score_boxplot
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.presentation import preset_stepper, presenting
from pages._ui.widgets import scenario_intro, wrapping_columns

ensure_app_shell()

SCENARIO = scenario("model_comparison")
P = "mc"
MODELS = {"efficientnet_lite0": "Lite0, trained", "efficientnet_lite2": "Lite2, trained",
          "efficientnet_lite0_random": "Lite0, random weights"}
CANVAS_PX = 320   # the query canvas; both result grids take the rest of the row

scenario_intro(SCENARIO)
presets = {p.name: p for p in SCENARIO.presets}


def _apply_preset(preset=None) -> None:
    """The preset picked in the select box, or ``preset`` (the presentation stepper's)."""
    preset = preset or presets[st.session_state[f"{P}_preset"]]
    st.session_state[f"{P}_preset"] = preset.name
    st.session_state[f"{P}_preset_note"] = preset.name   # the presentation stepper's current preset
    st.session_state[f"{P}_image"] = preset.image
    st.session_state[f"{P}_domain"] = preset.extra.get("domain", "photo")
    for side in "ab":
        st.session_state[f"{P}_model_{side}"] = preset.extra[f"model_{side}"]
        st.session_state[f"{P}_layer_{side}"] = preset.extra[f"layer_{side}"]
    st.session_state[f"{P}_drawing"] = st.session_state.get(f"{P}_drawing", 0) + 1


if f"{P}_image" not in st.session_state:
    _apply_preset(SCENARIO.presets[0])
if presenting():
    preset_stepper(SCENARIO, P, _apply_preset)

preset_col, *side_cols = wrapping_columns(f"{P}_pickers", [13, 8.5, 5.5, 11, 5.5])
preset_col.selectbox("Preset", list(presets), key=f"{P}_preset", on_change=_apply_preset)
preset = presets[st.session_state[f"{P}_preset"]]
sides = {}
for side, model_col, layer_col in (("a", *side_cols[:2]), ("b", *side_cols[2:])):
    model_name = model_col.selectbox(f"Model {side.upper()}", list(MODELS), format_func=MODELS.get,
                                     key=f"{P}_model_{side}")
    cache = recipe_cache(SCENARIO.cache_recipe, model_name)
    layer = layer_col.selectbox(f"Layer {side.upper()}", list(cache.layers), key=f"{P}_layer_{side}")
    sides[side] = (cache, layer, model_name)

table = sides["a"][0].metadata
# Views first: the query canvas and both models' top results side by side; the query's photo,
# domain and result count sit under the canvas they choose.
views = st.container(horizontal=True, gap="medium")
left, right = views.container(width=CANVAS_PX), views.container(key=f"results_{P}")
with left:
    canvas_slot = st.container()
    photo_col, domain_col = st.columns(2)
    photo = photo_col.selectbox("Query photo", list(dict.fromkeys(table["source_photo"])), key=f"{P}_image")
    domain = domain_col.selectbox("Query domain", list(dict.fromkeys(table["domain"])), key=f"{P}_domain")
    top_k = st.slider("Results", 5, 15, 10, key=f"{P}_k")
query_id = f"{photo}-full-{domain}"
drawn_box = preset.extra.get("box") if (photo, domain) == (preset.image, preset.extra.get("domain", "photo")) else None
with canvas_slot:
    st.markdown(f"**Draw a region** on {plain(f'{photo} · {domain}')}")
    strokes = query_canvas(f"{P}_{st.session_state[f'{P}_drawing']}_{query_id}",
                           recipe_image(SCENARIO.cache_recipe, query_id), drawn_box, image_key=query_id,
                           width=CANVAS_PX)
if drawn_box:
    left.caption(preset.note)

results = {}
try:
    for side, (cache, layer, _) in sides.items():
        feats = cache_features(str(cache), layer, cache)
        grid_hw = tuple(feats.shape[1:3])
        mask_hw = drawn_or_region_mask(strokes, grid_hw, drawn_box)
        index = cache.image_ids.index(query_id)
        query = query_from_features(feats[index], mask_hw, model=cache.model_name, layer=layer, image_index=index)
        results[side] = search_features(feats, query, image_ids=cache.image_ids, metadata=cache.metadata,
                                        loaded_n=cache.loaded_n, top_k=top_k, device="cpu")
except SearchError as exc:
    right.info(str(exc))
    st.stop()

shared, fraction = top_overlap([h.id for h in results["a"].top], [h.id for h in results["b"].top])
same_photo = {side: sum(h.metadata["source_photo"] == photo for h in r.top) for side, r in results.items()}
with right:
    st.markdown(f"**Top-k overlap: {len(shared)} of {top_k}** images both models rank in their top {top_k} · "
                f"results from the query's own photo: A {same_photo['a']}, B {same_photo['b']} of {top_k}.")
    for side, col in zip("ab", st.columns(2)):
        cache, layer, model_name = sides[side]
        with col:
            st.markdown(f"**{side.upper()}: {MODELS[model_name]}, {layer}**")
            hit_grid(cache, results[side], columns=2, caption_columns=("source_photo", "domain"))

for side, col in zip("ab", st.columns(2)):
    with col:
        score_boxplot(grouped_scores(results[side].scores_table(), "domain", focus=("source_photo", photo),
                                     others="other photos"),
                      f"{side.upper()}: best score of each image", f"domain of the {photo} images")
