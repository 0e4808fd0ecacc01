"""Domain shift: draw a region on a photo or a sketch, find the most similar regions in a whole
dataset (Visual Feature Search), and see how scores drop outside the query's domain."""

import streamlit as st

from featurelens.search import (SearchError, drawn_or_region_mask, grouped_scores, mask_outline, query_from_features,
                                search_features)
from pages._ui.resources import scenario
from featurelens.cluster import search_on_cluster
from pages._ui.search import (cache_features, caches_with, cluster_client, hit_grid, query_canvas, recipe_cache, recipe_image,
                              score_boxplot, thumbnail)
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.presentation import preset_stepper, presenting
from pages._ui.widgets import hold, scenario_intro

ensure_app_shell()

SCENARIO = scenario("domain_shift")
P = "ds"
GENERATED = "Bundled photos in 7 generated domains (offline)"
UNIQUE = {"no limit": None, "class / source photo": "label", "domain": "domain"}
CANVAS_PX = 360   # the query canvas; the results take the rest of the row

scenario_intro(SCENARIO)
presets = {p.name: p for p in SCENARIO.presets}


def _apply_preset(preset=None) -> None:
    """The preset picked in the select box, or ``preset`` (the presentation stepper's)."""
    preset = preset or presets[st.session_state[f"{P}_preset"]]
    st.session_state[f"{P}_preset"] = preset.name
    st.session_state[f"{P}_preset_note"] = preset.name   # the presentation stepper's current preset
    st.session_state[f"{P}_dataset"] = GENERATED
    st.session_state[f"{P}_label"] = preset.image
    st.session_state[f"{P}_domain"] = preset.extra["domain"]
    st.session_state[f"{P}_layer"] = preset.layer
    st.session_state[f"{P}_drawing"] = st.session_state.get(f"{P}_drawing", 0) + 1


if f"{P}_label" not in st.session_state:
    _apply_preset(SCENARIO.presets[0])
if presenting():
    preset_stepper(SCENARIO, P, _apply_preset)

others = caches_with("domain", exclude_recipe=SCENARIO.cache_recipe)
# Views first: the query canvas and the top results side by side under one row of controls; the
# query's photo and domain sit under the canvas they choose, the result options in a popover.
preset_col, dataset_col, layer_col, options_col = st.columns([1.5, 1.5, 1.1, 0.8], vertical_alignment="bottom")
preset_col.selectbox("Preset", list(presets), key=f"{P}_preset", on_change=_apply_preset,
                     help="A ready-made query on the generated dataset: an image, a layer and a region.")
dataset = dataset_col.selectbox("Dataset", [GENERATED, *others], key=f"{P}_dataset",
                                help="Other caches with a domain column (e.g. PACS built with `cache build`) appear "
                                     "here.")
cache = recipe_cache(SCENARIO.cache_recipe, SCENARIO.model) if dataset == GENERATED else others[dataset]
table = cache.metadata.reset_index(drop=True)
if st.session_state.get(f"{P}_layer") not in cache.layers:
    st.session_state[f"{P}_layer"] = cache.layers[-1]
layer = layer_col.radio("Layer", list(cache.layers), horizontal=True, key=f"{P}_layer")
hold({f"{P}_k": 10, f"{P}_unique": None, f"{P}_self": False})
with options_col.popover("Results", icon=":material/tune:", width="stretch"):
    top_k = st.slider("Results", 5, 20, key=f"{P}_k")
    unique = st.radio("At most one result per", list(UNIQUE), horizontal=True, key=f"{P}_unique")
    include_self = st.checkbox("Include the query image itself", key=f"{P}_self")

views = st.container(horizontal=True, gap="medium")
left, right = views.container(width=CANVAS_PX), views.container(key=f"results_{P}")
with left:
    canvas_slot = st.container()
    photo_col, domain_col = st.columns(2)
    labels = list(dict.fromkeys(table["label"]))
    if st.session_state.get(f"{P}_label") not in labels:
        st.session_state[f"{P}_label"] = labels[0]
    label = photo_col.selectbox("Query photo" if dataset == GENERATED else "Query class", labels, key=f"{P}_label")
    domains = list(dict.fromkeys(table.loc[table["label"] == label, "domain"]))
    if st.session_state.get(f"{P}_domain") not in domains:
        st.session_state[f"{P}_domain"] = domains[0]
    domain = domain_col.selectbox("Query domain", domains, key=f"{P}_domain")
    if dataset == GENERATED:
        query_id = f"{label}-full-{domain}"
    else:
        query_id = st.selectbox("Query image",
                                list(table.loc[(table["label"] == label) & (table["domain"] == domain), "id"]),
                                key=f"{P}_image")

index = cache.image_ids.index(query_id)
row = table.iloc[index]
if dataset == GENERATED:
    image = recipe_image(SCENARIO.cache_recipe, query_id)
else:   # the cache's thumbnail: the original files need not be on this machine
    image = thumbnail(cache, index, (int(row["width"]), int(row["height"])))
preset = presets[st.session_state[f"{P}_preset"]]
matches_preset = dataset == GENERATED and (label, domain) == (preset.image, preset.extra["domain"])
drawn_box = preset.extra["box"] if matches_preset else None
with canvas_slot:
    st.markdown(f"**Draw a region** on {plain(f'{label} · {domain}' if dataset == GENERATED else query_id)}")
    strokes = query_canvas(f"{P}_{st.session_state[f'{P}_drawing']}_{dataset}_{query_id}", image, drawn_box,
                           image_key=f"{dataset}/{query_id}", width=CANVAS_PX)

feats = cache_features(str(cache), layer, cache)
grid_hw = tuple(feats.shape[1:3])
try:
    mask_hw = drawn_or_region_mask(strokes, grid_hw, drawn_box)
    query = query_from_features(feats[index], mask_hw, model=cache.model_name, layer=layer, image_index=index)
    options = dict(top_k=top_k, unique_by=UNIQUE[unique], include_self=include_self)
    client = cluster_client()
    if client is not None:
        result = search_on_cluster(cache, query, client, **options)
    else:
        result = search_features(feats, query, image_ids=cache.image_ids, metadata=table, loaded_n=cache.loaded_n,
                                 device="cpu", **options)
except SearchError as exc:
    right.info(str(exc))
    st.stop()

with left:
    if matches_preset and not presenting():   # presenting: the note is already in large type
        st.caption(preset.note)
    st.image(mask_outline(image, mask_hw), width="stretch", output_format="JPEG",
             caption=f"The searched region on {layer}'s {grid_hw[0]}×{grid_hw[1]} grid "
                     f"(a window of {query.box[2]}×{query.box[3]} cells).")
what = "photo" if dataset == GENERATED else "class"
grouped = grouped_scores(result.scores_table(), "domain", focus=("label", label), others=f"other {what}s")
with right:
    st.markdown(f"**Top {len(result.top)} of {int(result.valid_n.sum())} images** — the matched window boxed")
    st.caption("Median best score, high to low (box plot below): "
               + " · ".join(f"{group} {median:.2f}" for group, median in grouped.attrs["medians"].items()))
    if client is not None:
        st.caption(f"Searched on the Dask cluster at `{client.scheduler.address}` ({result.device}).")
    hit_grid(cache, result, columns=3, caption_columns=("label", "domain"))
score_boxplot(grouped, f"Best scores: the {label} images in each domain, and every other {what} — {domain} query, {layer}",
              f"domain of the {label} images")
