"""Feature visualization (The Mind's Eye): images that show what a layer responds to in a set of
images — facets of the images, one optimised image per facet beside its nearest photos and top
channels, and the same images at several layers. Runs in the background with live progress."""

import hashlib

import streamlit as st

from featurelens.featureviz import (FacetSettings, LiveRun, channel_chart, channel_table, facet_figure, layers_figure,
                                    png_bytes, visualize_facets, visualize_layers)
from featurelens.hosting import JobBoard, JobRefused
from featurelens.images import ImageLoadError, bundled_gallery
from pages._ui.resources import load_gallery_image, load_upload, scenario
from pages._ui.search import caches_with, thumbnail
from pages._ui.shell import ensure_app_shell, plain
from pages._ui.widgets import hold, image_credit, scenario_page, wrapping_columns

ensure_app_shell()

SCENARIO = scenario("feature_visualization")
P = "fv"
SOURCES = {"gallery": "Gallery", "upload": "Upload", "cache": "Class of a feature cache"}
STEPS = (20, 50, 100, 200, 400)
MAX_IMAGES = 40
NEAREST_SHOWN = 4
PREVIEW_PX = 224
KEEP_RESULTS = 32   # finished visualisations kept on the server (a few MB each), the oldest dropped first


@st.cache_resource(show_spinner=False)
def board() -> JobBoard:
    """The server's visualisations: one runs at a time (a small shared CPU box); finished ones
    stay, so a second visit with the same settings shows the result at once."""
    return JobBoard(max_running=1, keep_finished=KEEP_RESULTS)


@st.cache_resource(show_spinner=False)
def live_runs() -> dict[str, LiveRun]:
    """Progress, latest image and cancel flag of each run, by job name."""
    return {}


def job_name(kind: str, *parts) -> str:
    return f"{kind}-" + hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def pick_images(source: str) -> list[tuple[str, str, object]]:
    """``[(image key, caption, PIL image)]`` from the gallery, uploads, or one class of a cache."""
    if source == "gallery":
        gallery = {g.id: g for g in bundled_gallery()}
        st.session_state.setdefault(f"{P}_images", [i for i in SCENARIO.images if i in gallery])
        ids = st.multiselect("Gallery images", list(gallery), key=f"{P}_images", format_func=lambda i: gallery[i].caption)
        return [(f"gallery:{i}", gallery[i].caption, load_gallery_image(i)) for i in ids]
    if source == "upload":
        uploads = st.file_uploader("Your images", accept_multiple_files=True, key=f"{P}_uploads",
                                   help=f"Up to {MAX_IMAGES} images; JPEG, PNG, TIFF, BMP, WebP.")
        entries = []
        for upload in (uploads or [])[:MAX_IMAGES]:
            try:
                entries.append(load_upload(upload))
            except ImageLoadError as exc:
                st.error(plain(str(exc)))   # names the visitor's file
        return entries
    caches = caches_with("label", exclude_recipe="")
    if not caches:
        st.info("No feature cache with a label column is ready on this machine: build one on the *Feature caches* page.")
        return []
    cols = st.columns(3)
    name = cols[0].selectbox("Cache", list(caches), key=f"{P}_cache")
    table = caches[name].metadata.reset_index(drop=True)
    columns = [c for c in table.columns if c in ("label", "domain", "source_photo", "crop")] or ["label"]
    column = cols[1].selectbox("Column", columns, key=f"{P}_column")
    value = cols[2].selectbox("Value", sorted(set(table[column].astype(str))), key=f"{P}_value")
    rows = table.index[table[column].astype(str) == value][:MAX_IMAGES]
    st.caption(f"{len(rows)} images of {plain(name)} with {column} = {plain(value)} (the cache's 128-px thumbnails).")
    return [(f"cache:{name}:{table.at[i, 'id']}", str(table.at[i, "id"]),
             thumbnail(caches[name], int(i), (int(table.at[i, "width"]), int(table.at[i, "height"])))) for i in rows]


def start(name: str, work) -> None:
    """Start ``work(live)`` in the background as job ``name`` (refused while another runs)."""
    live = LiveRun()
    try:
        board().start(name, lambda progress: work(live))
    except JobRefused:
        busy = board().running()
        what = live_runs().get(busy[0].name) if busy else None
        st.warning("Another visualisation is running on this server" +
                   (f" ({what.done} / {what.total} steps)" if what else "") + "; start yours when it has finished.")
        return
    live_runs()[name] = live
    for stale in set(live_runs()) - set(board().names()):
        live_runs().pop(stale, None)


def show_progress(name: str, title: str) -> None:
    """The run's progress bar and latest image, refreshed every second while it runs; a full
    rerun when it ends, so the results below appear."""
    job = board().get(name)
    running = job is not None and job.running

    @st.fragment(run_every=1.0 if running else None)
    def status() -> None:
        job, live = board().get(name), live_runs().get(name)
        if job is None or live is None:
            return
        if job.running:
            fraction = live.done / live.total if live.total else 0.0
            st.progress(fraction, text=f"{title}: {live.label or 'selecting facets'} — step {live.done} / "
                                       f"{live.total or '…'} (the page stays usable)")
            st.button("Cancel", key=f"{P}_cancel_{name}", on_click=live.cancel, icon=":material/stop:")
            if live.image_hwc_u8 is not None:
                st.image(live.image_hwc_u8, caption=f"the image so far · loss {live.loss:.3f}", width=PREVIEW_PX)
            return
        if running:
            st.rerun(scope="app")
        if job.state == "failed":
            st.error(f"The visualisation failed: {plain(str(job.error))}")

    status()


def facet_rows(vis, captions: list[str]) -> None:
    """One row per facet: the result, the start blend, the nearest photos and the top channels."""
    for i, res in enumerate(vis.facets):
        with st.container(border=True):
            st.markdown(f"**Facet {i + 1}** — {res.facet.size} of {len(captions)} images in its cluster; "
                        f"top {len(res.channels)} channels of {vis.settings.layer}")
            cols = st.columns([1, 1, 2.2, 2.2])
            cols[0].image(res.image_hwc_u8, width="stretch", caption="result" if not res.render.cancelled
                          else f"cancelled at step {res.render.steps_done} of {vis.settings.steps}")
            cols[1].image(res.start_hwc_u8, caption="start: weighted blend", width="stretch")
            shown = list(res.facet.members[:NEAREST_SHOWN])
            with cols[2]:
                st.caption("nearest images (weight): " + ", ".join(captions[m] for m in shown))
                thumbs = st.columns(NEAREST_SHOWN)
                for slot, (m, w) in enumerate(zip(shown, res.facet.weights)):
                    thumbs[slot].image(vis.inputs_hwc_u8[m], caption=f"{w:.2f}", width="stretch")
                more = len(res.facet.members) - len(shown)
                if more > 0:
                    st.caption(f"… and {more} more (weights {', '.join(f'{w:.2f}' for w in res.facet.weights[len(shown):])})")
            table = channel_table(res.channels, res.target_k, res.start_k, res.final_k, limit=10)
            cols[3].altair_chart(channel_chart(table), width="stretch")
            cols[3].caption(f"mean over the {len(res.channels)} channels: start {res.start_k.mean():.2f} → "
                            f"result {res.final_k.mean():.2f} (target {res.target_k.mean():.2f})")


model = scenario_page(SCENARIO)
layer_names = [layer.name for layer in model.layers]
default_layer = "stage5" if "stage5" in layer_names else model.spec.default_layers[-1]
st.session_state.setdefault(f"{P}_layer", default_layer)
if st.session_state[f"{P}_layer"] not in layer_names:
    st.session_state[f"{P}_layer"] = default_layer

# Views first: the images and the layer in one row, the rest in a popover, so the progress and the
# facets come right under it.
pick_col, layer_col, settings_col, go_col = wrapping_columns(f"{P}_row", [13, 9.5, 7.5, 8.5], vertical_alignment="bottom")
hold({f"{P}_source": None, f"{P}_facets": 3, f"{P}_top_k": 30, f"{P}_steps": 100})
with settings_col.popover("Settings", icon=":material/tune:", width="stretch"):
    source = st.radio("Images from", list(SOURCES), format_func=SOURCES.get, key=f"{P}_source")
    n_facets = st.slider("Facets (C)", 1, 4, key=f"{P}_facets",
                         help="k-means clusters of the images' t-SNE embedding; one image is optimised per facet.")
    top_k = st.slider("Top-k channels", 5, 100, step=5, key=f"{P}_top_k",
                      help="The facet's strongest channels that the loss reads.")
    steps = st.select_slider("Iterations", STEPS, key=f"{P}_steps",
                             help="Optimisation steps per facet (about 0.1 s each on a free 2-core CPU).")
    st.caption("Loss per facet: Barron's robust distance to the facet's averaged activations − their dot product "
               "over the top-k channels + λ·L1 of the previous layer (λ 1e-3 → 1e-4), with jitter, Gaussian blur, "
               "TV denoising and a centre-biased gradient mask; learning rate and strengths fall linearly. Seed 0: "
               "the same settings give the same images.")
with pick_col:
    entries = pick_images(source)
layer = layer_col.selectbox("Layer", layer_names, key=f"{P}_layer", format_func=model.layer_label)
if len(entries) < n_facets:
    st.info(f"Pick at least {n_facets} images for {n_facets} facets (more give the clustering something to do).")
    st.stop()
keys = tuple(key for key, _, _ in entries)
captions = [caption for _, caption, _ in entries]
images = [image for _, _, image in entries]
settings = FacetSettings(layer=layer, n_facets=n_facets, top_k=top_k, steps=steps)
name = job_name("facets", model.name, keys, settings)
job = board().get(name)
if job is None or job.state == "failed" or (job.state == "finished" and job.result.cancelled):
    if go_col.button("Visualize", type="primary", key=f"{P}_go", icon=":material/auto_awesome:", width="stretch"):
        start(name, lambda live: visualize_facets(model, images, settings, live=live))
        st.rerun()
show_progress(name, "Facets")
job = board().get(name)
if job is not None and job.state == "finished":
    vis = job.result
    if vis.cancelled:
        done = sum(not f.render.cancelled for f in vis.facets)
        st.warning(f"Cancelled: {done} of {settings.n_facets} facets ran all {steps} iterations"
                   + (" (the last one shown is where it stopped)" if done < len(vis.facets) else "")
                   + "; press *Visualize* to run them again.")
    facet_rows(vis, captions)
    if vis.facets:
        st.download_button("Download the facets (PNG)", png_bytes(facet_figure(
            vis, f"{model.name} · {layer} · {n_facets} facets · top-{top_k} · {steps} steps", NEAREST_SHOWN)),
            file_name=f"facets-{layer}.png", mime="image/png", key=f"{P}_png", icon=":material/download:")

st.subheader("The same images at several layers")
defaults = [l for l in SCENARIO.layers if l in layer_names] or list(model.spec.default_layers)
row_layers = st.multiselect("Layers of the row", layer_names, default=defaults, key=f"{P}_row_layers",
                            max_selections=5, format_func=model.layer_label)
row_layers = sorted(row_layers, key=layer_names.index)
row_settings = FacetSettings(layer=layer, n_facets=1, top_k=top_k, steps=steps)
row_name = job_name("row", model.name, keys, tuple(row_layers), row_settings)
row_job = board().get(row_name)
if row_layers and (row_job is None or row_job.state == "failed"
                   or (row_job.state == "finished" and any(r.cancelled for r in row_job.result))):
    if st.button("Make the cross-layer row", key=f"{P}_row_go", icon=":material/view_column:",
                 help="One facet of all the images at each layer (the paper's Fig. 4)."):
        start(row_name, lambda live: visualize_layers(model, images, row_layers, row_settings, live=live))
        st.rerun()
show_progress(row_name, "Cross-layer row")
row_job = board().get(row_name)
if row_job is not None and row_job.state == "finished" and row_job.result:
    cols = st.columns(len(row_job.result))
    for col, result in zip(cols, row_job.result):
        if result.facets:
            col.image(result.facets[0].image_hwc_u8, caption=model.layer_label(result.settings.layer), width="stretch")
    st.download_button("Download the row (PNG)", png_bytes(layers_figure(
        row_job.result, f"{model.name} · one facet of {len(keys)} images · top-{top_k} · {steps} steps")),
        file_name="cross-layer.png", mime="image/png", key=f"{P}_row_png", icon=":material/download:")
gallery_keys = [key for key in keys if key.startswith("gallery:")]
if gallery_keys:
    with st.expander(f"Photo credits ({len(gallery_keys)} gallery photos)"):
        for key in gallery_keys:
            image_credit(key)
