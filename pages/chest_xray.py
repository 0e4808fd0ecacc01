"""Chest X-ray: mark the heart or a lung on an X-ray, find the X-rays the model finds most alike
(Visual Feature Search), and see whether X-rays with a finding score higher than those without it:
box plots, AUC with a bootstrap interval, Mann–Whitney test, grouped by view, age or sex."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from featurelens.caches import CacheError, ensure_recipe_cache, install_cache, list_caches, load_catalog, open_cache, recipe_cache_path
from featurelens.config import cache_catalog, caches_dir, data_roots, hosted
from featurelens.hosting import JobRefused, UnsafePathError, inside_roots
from featurelens.images import ImageLoadError
from featurelens.search import SearchError, drawn_or_region_mask, mask_outline, query_from_features, search_features
from featurelens.xray import (CONFOUNDERS, GroupStatsError, compare_by, compare_finding, example_query,
                              expert_boxes, finding_columns, finding_scores)
from pages._ui.jobs import build_board, build_status
from pages._ui.resources import image_report, load_upload, scenario
from pages._ui.search import cache_features, get_recipes, hit_grid, query_canvas, thumbnail
from pages._ui.shell import MODEL_KEY, ensure_app_shell, plain, visitor_text
from pages._ui.widgets import hold, scenario_page

ensure_app_shell()

SC = scenario("chest_xray")
P = "cx"
OPTIONS = SC.options
TOOLS = {"Free draw": "freedraw", "Rectangle": "rect", "Move / resize": "transform"}
XRAY_MODEL = SC.model
WITH_COLOURS = ["#d62728", "#1f77b4"]   # with the finding, without it
CANVAS_PX = 280   # the query canvas (X-rays are square); the results take the rest of the row


def model_statement(model, where_offered: str = "under *Options*") -> None:
    """Which model is in use, and what that means for the findings, in plain words."""
    if model.spec.scaling == "xrv":
        st.success(f"Model in use: **{model.name}**, a chest X-ray model (torchxrayvision's DenseNet-121, the VFS "
                   "paper's model), trained to recognise 14 findings on NIH X-rays. Similar regions are similar to "
                   "a model that has learned what these findings look like.", icon=":material/radiology:")
        return
    st.warning(f"Model in use: **{model.name}**, a photo model trained on ImageNet that has never seen a chest "
               "X-ray or a finding: any difference between X-rays with and without a finding comes from how the "
               "images look (size, brightness, view), not from medical knowledge. The chest X-ray model "
               f"**{XRAY_MODEL}** is offered {where_offered}.", icon=":material/photo_camera:")


def xray_model_button(model) -> None:
    """Switch every page to the chest X-ray model (offered while another model is in use)."""
    if model.spec.scaling != "xrv":
        st.button(f"Use the chest X-ray model {XRAY_MODEL}", key=f"{P}_use_xray", on_click=_choose_xray_model,
                  help="Downloads its weights once (needs internet, or a server in FEATURELENS_WEIGHTS_MIRROR); "
                       "without it, a message says why and every page keeps the offline model.")


def _choose_xray_model() -> None:
    st.session_state[MODEL_KEY] = XRAY_MODEL


def layers_for(model) -> list[str]:
    """The scenario's layers for the X-ray model, the fallback layers for another model."""
    names = {layer.name for layer in model.layers}
    for layers in (SC.layers, OPTIONS.get("fallback_layers", ())):
        if layers and set(layers) <= names:
            return list(layers)
    return list(model.spec.default_layers)


@st.cache_resource(show_spinner=False, ttl=10)
def xray_caches(model_name: str, folder: str) -> dict[str, str]:
    """Ready caches in ``folder`` with finding columns, built with ``model_name``: name → path."""
    found = {}
    for entry in list_caches(folder):
        if not entry.ready:
            continue
        cache = open_cache(entry.path)
        if cache.model_name == model_name and finding_columns(cache.metadata):
            found[entry.name] = str(entry.path)
    return found


@st.cache_resource(show_spinner="Opening the cache…", max_entries=8)
def open_xray_cache(path: str):
    return open_cache(path)


def ways_in(model) -> None:
    """No X-ray cache for this model: say so, and offer the ways in."""
    st.info(f"There is no chest X-ray cache for **{model.name}** on this machine yet, and FeatureLens ships no "
            "X-rays. The page needs X-rays with their findings to compare. Three ways in:", icon=":material/info:")
    folder_tab, catalog_tab, mnist_tab = st.tabs(["Build from a folder you have", "Install a prebuilt cache",
                                                  "Download ChestMNIST"])
    recipes = get_recipes()
    with folder_tab:
        st.markdown(recipes["nih_chestxray"].description)
        folder = _pick_folder()
        if folder is not None and st.button("Build the X-ray cache", type="primary", key=f"{P}_build"):
            _start(recipes["nih_chestxray"], model, images_folder=folder)
    with catalog_tab:
        _install_section()
    with mnist_tab:
        st.markdown(recipes["chestmnist"].description)
        if st.button("Download ChestMNIST and build its cache", key=f"{P}_mnist"):
            _start(recipes["chestmnist"], model)
    job = build_board().get(st.session_state.get(f"{P}_job", ""))
    if job is not None:
        build_status(job.name, job.running, on_done=xray_caches.clear)


def _pick_folder() -> Path | None:
    if hosted() or data_roots():
        roots = data_roots()
        if not roots:
            st.caption("This server offers no image folders (its operator sets FEATURELENS_DATA_ROOTS).")
            return None
        try:
            return inside_roots(st.selectbox("Folder", roots, format_func=lambda p: p.name, key=f"{P}_root"), roots)
        except UnsafePathError as exc:
            st.error(str(exc))
            return None
    typed = st.text_input("Folder of NIH PNGs (searched recursively)", key=f"{P}_folder",
                          placeholder="/data/chestxray14/images")
    typed = typed.strip()
    return Path(typed).expanduser().resolve() if typed else None


def _start(recipe, model, images_folder: Path | None = None) -> None:
    target = recipe_cache_path(recipe, model.name)
    try:
        build_board().start(target.stem, lambda progress: ensure_recipe_cache(
            recipe, model, layers_for(model), progress=progress, images_folder=images_folder))
    except JobRefused as exc:
        st.warning(f"Not started: {exc}.")
    else:
        st.session_state[f"{P}_job"] = target.stem


def _install_section() -> None:
    try:
        catalog = load_catalog(cache_catalog())
    except CacheError as exc:
        st.error(visitor_text(str(exc)))
        return
    if not catalog.entries:
        st.caption(visitor_text(f"The catalog `{cache_catalog()}` lists no caches yet. A teacher builds an X-ray cache "
                                "once, publishes it with `python -m featurelens cache pack` and sets "
                                "FEATURELENS_CACHE_CATALOG; then it installs here in one click."))
        return
    name = st.selectbox("Cache to install", catalog.names, key=f"{P}_catalog")
    if st.button("Download and install", key=f"{P}_install"):
        bar = st.progress(0.0, text="Connecting…")
        try:
            install_cache(name, catalog=catalog, progress=lambda done, total: bar.progress(
                min(1.0, done / total) if total else 0.0, text=f"{done / 2**20:.1f} / {total / 2**20:.1f} MB"))
        except CacheError as exc:
            bar.empty()
            st.error(visitor_text(str(exc)))
        else:
            xray_caches.clear()
            st.rerun()


def score_chart(scores: pd.DataFrame, x: str, x_title: str, title: str) -> None:
    """Box plots of best scores, with and without the finding side by side in each ``x`` group."""
    groups = sorted(scores["group"].unique(), key=lambda g: not g.startswith("with "))
    chart = (alt.Chart(scores).mark_boxplot(extent="min-max", size=26)
             .encode(x=alt.X(f"{x}:N", title=x_title, axis=alt.Axis(labelAngle=0, labelFontSize=13)),
                     xOffset=alt.XOffset("group:N", sort=groups),
                     y=alt.Y("score:Q", title="best similarity of each X-ray", scale=alt.Scale(zero=False)),
                     color=alt.Color("group:N", sort=groups, scale=alt.Scale(domain=groups, range=WITH_COLOURS),
                                     legend=alt.Legend(orient="top", title=None, labelFontSize=13)))
             .properties(height=300, title=title))
    st.altair_chart(chart, width="stretch")


def comparison_rows(items) -> pd.DataFrame:
    """``(name, GroupComparison | message)`` → one table row each."""
    rows = []
    for name, c in items:
        if isinstance(c, str):
            rows.append({"": name, "AUC": None, "95% interval": "", "p": None, "with": None, "without": None,
                         "note": c})
        else:
            rows.append({"": name, "AUC": round(c.auc, 3), "95% interval": f"{c.ci_low:.2f}–{c.ci_high:.2f}",
                         "p": float(f"{c.p_value:.2g}"), "with": c.n_with, "without": c.n_without,
                         "note": c.note})
    frame = pd.DataFrame(rows)
    return frame if frame["note"].astype(bool).any() else frame.drop(columns="note")


def compare_or_message(scores: pd.DataFrame, finding: str):
    try:
        return compare_finding(scores, finding)
    except GroupStatsError as exc:
        return str(exc)


model = scenario_page(SC)
caches = xray_caches(model.name, str(caches_dir()))
if not caches:
    model_statement(model, where_offered="by the button below")
    xray_model_button(model)
    ways_in(model)
    st.stop()

# Views first: one row of the controls used every minute, the rest in a popover; then the query
# canvas beside the top results (and which model found them).
finding_col, query_col, region_col, options_col = st.columns([1.2, 1.7, 1.7, 0.9], vertical_alignment="bottom")
hold({f"{P}_cache": None, f"{P}_source": None, f"{P}_layer": None, f"{P}_k": int(OPTIONS.get("top_k", 10))})
with options_col.popover("Options", icon=":material/tune:", width="stretch"):
    cache_name = st.selectbox("X-ray set", list(caches), key=f"{P}_cache")
    cache = open_xray_cache(caches[cache_name])
    source = st.radio("Query X-ray", ["From the set", "Upload"], horizontal=True, key=f"{P}_source")
    if st.session_state.get(f"{P}_layer") not in cache.layers:
        st.session_state[f"{P}_layer"] = cache.layers[-1]
    layer = st.radio("Layer", list(cache.layers), horizontal=True, key=f"{P}_layer")
    top_k = st.slider("Results", 5, 20, key=f"{P}_k")
    xray_model_button(model)
table = cache.metadata.reset_index(drop=True)
findings = finding_columns(table)
default_finding = OPTIONS.get("default_finding", findings[0])
finding = finding_col.selectbox("Finding", findings,
                                index=findings.index(default_finding) if default_finding in findings else 0,
                                key=f"{P}_finding", help="Any yes/no column of the set: the 14 NIH findings and "
                                                         "No Finding.")
with query_col:
    query_index, image_key, upload = None, None, None
    if source == "Upload":
        file = st.file_uploader("A chest X-ray (PNG, JPEG)", key=f"{P}_upload")
        if file is None:
            st.info("Choose an X-ray file to upload, or pick one from the set (under *Options*).")
            st.stop()
        try:
            image_key, _, image = load_upload(file)
        except ImageLoadError as exc:
            st.error(plain(str(exc)))   # names the visitor's file
            st.stop()
        query_file = Path(file.name).name
    else:
        ids = list(table["id"])
        labels = dict(zip(table["id"], table.get("finding_labels", table["label"])))
        query_id = st.selectbox("Query X-ray", ids, index=ids.index(example_query(table, finding)), key=f"{P}_query",
                                format_func=lambda i: f"{i} — {labels.get(i, '')}")
        query_index = ids.index(query_id)
        row = table.iloc[query_index]
        image = thumbnail(cache, query_index, (int(row["width"]), int(row["height"])))
        image_key, query_file = f"{cache_name}/{query_id}", str(row["file"])
regions = {r.name: r.shape for r in SC.regions}
regions |= {f"expert box: {b.finding}": b.box_xyxy for b in expert_boxes(query_file)}
region_name = region_col.radio("Region", list(regions), horizontal=True, key=f"{P}_region",
                               help="Ready-made regions, drawn on the X-ray so you can move, resize or paint over "
                                    "them. Expert boxes come from NIH's BBox_List_2017 when this X-ray has one.")

shape = regions[region_name]
views = st.container(horizontal=True, gap="medium")
left, right = views.container(width=CANVAS_PX), views.container(key=f"results_{P}")
with left:
    st.markdown(f"**Mark a region** — {region_name}")
    strokes = query_canvas(f"{P}_{image_key}_{region_name}", image, shape, image_key=image_key, width=CANVAS_PX,
                           tools=TOOLS)

feats = cache_features(str(cache), layer, cache)
grid_hw = tuple(feats.shape[1:3])


@st.cache_resource(show_spinner=False, max_entries=32)
def _search(cache_where: str, layer: str, query_key: str, mask_bytes: bytes, top_k: int, _feats_hwc, _mask_hw,
            _query_index, _cache, _feats, _table):
    """One region search, kept per (cache, layer, query, mask, k): the heart and lung comparison
    below repeats the main search for an undrawn preset, and every rerun (a chart option) reuses it."""
    query = query_from_features(_feats_hwc, _mask_hw, model=_cache.model_name, layer=layer, image_index=_query_index)
    return search_features(_feats, query, image_ids=_cache.image_ids, metadata=_table, loaded_n=_cache.loaded_n,
                           top_k=top_k, device="cpu")


def run_search(mask_hw):
    if query_index is not None:
        feats_hwc = feats[query_index]
    else:
        feats_hwc = image_report(model.name, image_key, image).feats_hwc[layer]
    return _search(str(cache), layer, image_key, mask_hw.tobytes() + bytes(str(mask_hw.shape), "ascii"), top_k,
                   feats_hwc, mask_hw, query_index, cache, feats, table)


try:
    mask_hw = drawn_or_region_mask(strokes, grid_hw, shape)
    result = run_search(mask_hw)
except SearchError as exc:
    right.info(str(exc))
    st.stop()
with left:
    st.image(mask_outline(image, mask_hw), width=160, output_format="JPEG",
             caption=f"The searched region on {layer}'s {grid_hw[0]}×{grid_hw[1]} grid.")
with right:
    model_statement(model)
    st.markdown(f"**Top {len(result.top)} of {int(result.valid_n.sum())} X-rays** — the matched window boxed")
    hit_grid(cache, result, columns=3, caption_columns=("finding_labels", "view_position"))

st.subheader(f"X-rays with vs without {finding}")
confounders = {"nothing": None} | {label: c for c, label in CONFOUNDERS.items() if c in table}
by_label = st.radio("Group the chart by", list(confounders), horizontal=True, key=f"{P}_by",
                    help="Things that travel with findings: the way the film was taken, age, sex.")
by = confounders[by_label]
try:
    scores = finding_scores(result.scores_table(), finding, by=by, region=region_name)
except GroupStatsError as exc:
    st.info(str(exc))
    st.stop()
chart_col, numbers_col = st.columns([3, 2])
with chart_col:
    score_chart(scores, "stratum", by_label if by else "", f"Best scores, {region_name} query ({layer})")
with numbers_col:
    overall = compare_or_message(scores, finding)
    if isinstance(overall, str):
        st.info(overall)
    else:
        st.metric("AUC (0.5 = no difference)", f"{overall.auc:.2f}",
                  help="The chance that an X-ray with the finding scores higher than one without it.")
        st.markdown(overall.sentence() + (f"  \n{overall.note}" if overall.note else ""))
    if by:
        st.dataframe(comparison_rows(compare_by(scores, finding)), hide_index=True)

compare = [name for name in OPTIONS.get("compare_regions", ()) if name in regions]
if len(compare) == 2:
    st.subheader(f"{compare[0].capitalize()} vs {compare[1]}: the paper's comparison in one view")
    st.caption("The same query X-ray, each region as the scenario draws it (your drawing is not used here).")
    both = []
    try:
        for name in compare:
            both.append(finding_scores(run_search(drawn_or_region_mask(None, grid_hw, regions[name])).scores_table(),
                                       finding, region=name))
    except (SearchError, GroupStatsError) as exc:
        st.info(str(exc))
        st.stop()
    both_scores = pd.concat(both, ignore_index=True)
    chart_col, numbers_col = st.columns([3, 2])
    with chart_col:
        score_chart(both_scores, "region", "query region", f"Best scores by region ({layer})")
    with numbers_col:
        st.dataframe(comparison_rows([(name, compare_or_message(s, finding)) for name, s in zip(compare, both)]),
                     hide_index=True)

with st.expander("What this means — for clinicians and for students", expanded=False):
    clinicians, students = st.columns(2)
    clinicians.markdown("**For clinicians**\n\n" + OPTIONS.get("for_clinicians", ""))
    students.markdown("**For students**\n\n" + OPTIONS.get("for_students", ""))
