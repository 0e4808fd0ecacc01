"""Feature caches: build a dataset's Zarr feature cache with a progress bar, resume it, install one
from a catalog (download with checksum and progress), and list the caches on this machine."""

from pathlib import Path

import pandas as pd
import streamlit as st

from featurelens.caches import (build_cache, Catalog, CacheError, image_metadata, install_cache, list_caches,
                                load_catalog)
from featurelens.images import bundled_gallery, folder_images, GalleryError
from featurelens.config import CACHE_CATALOG_ENV, cache_catalog, caches_dir
from featurelens.models import FeatureModel
from pages._ui.shell import current_model, ensure_app_shell


@st.cache_data(ttl=30, show_spinner="Reading the catalog…")
def read_catalog(source: str) -> Catalog:
    """The catalog at ``source`` (re-read after 30 s, so an edited or republished catalog shows up)."""
    return load_catalog(source)


def build_section(model: FeatureModel, folder: Path) -> None:
    """Pick images, layers and a name; build (or resume) the cache with a progress bar."""
    st.subheader("Build or resume")
    source = st.radio("Images", ["Bundled gallery", "Image folder on this machine"], horizontal=True,
                      key="fc_source")
    labels = None
    if source == "Bundled gallery":
        images, root, default_name = bundled_gallery(), None, "bundled"
        st.caption(f"{len(images)} photos that ship with scikit-image, scikit-learn and matplotlib.")
    else:
        path = st.text_input("Folder (searched recursively)", key="fc_folder", placeholder="/data/my_photos")
        labels_path = st.text_input("Labels CSV (optional, with a 'file' column)", key="fc_labels")
        if not path:
            st.info("Type the path of a folder of images on the machine running FeatureLens.")
            return
        try:
            root = Path(path).expanduser().resolve()
            images, default_name = folder_images(root), root.name
            labels = pd.read_csv(labels_path) if labels_path else None
        except (GalleryError, OSError, pd.errors.ParserError) as exc:
            st.error(str(exc))
            return
        st.caption(f"{len(images)} images found under {root}.")
    layers = st.multiselect("Layers", [l.name for l in model.layers], default=list(model.spec.default_layers),
                            format_func=model.layer_label, key="fc_layers")
    name = st.text_input("Cache name", value=default_name, key="fc_name").strip()
    target = folder / f"{name}.zarr"
    st.caption(f"Model **{model.name}** (change it in the sidebar) · saved to `{target}` · "
               "an interrupted build resumes when you press the button again with the same settings.")

    if st.button("Build cache", type="primary", disabled=not (layers and name)):
        folder.mkdir(parents=True, exist_ok=True)
        bar = st.progress(0.0, text="Starting…")
        try:
            table = image_metadata(images, root=root, labels=labels)
            cache = build_cache(target, images, model, layers, dataset_name=name, metadata=table,
                                progress=lambda done, total: bar.progress(done / total, text=f"{done} / {total} images"))
        except CacheError as exc:
            st.error(str(exc))
        else:
            bar.progress(1.0, text="Done")
            st.success(f"Cache **{name}** is ready: {cache.n_images} images.")
            if cache.skipped:
                st.warning(f"{len(cache.skipped)} images could not be read and were left out of search "
                           "(see the load_error column).")


def install_section(folder: Path) -> None:
    """List a catalog's caches; download and install the chosen one with a progress bar."""
    st.subheader("Install from a catalog")
    source = cache_catalog()
    st.caption(f"Catalog `{source}`. A teacher publishes caches with `python -m featurelens cache pack CACHE "
               f"--out site/NAME.zip --catalog site/catalog.json` and serves the folder from any web server; "
               f"set `{CACHE_CATALOG_ENV}` to its URL (or path) before starting the app.")
    try:
        catalog = read_catalog(source)
    except CacheError as exc:
        st.error(str(exc))
        return
    if not catalog.entries:
        st.info(f"The catalog `{source}` lists no caches yet.")
        return
    st.dataframe(catalog.to_frame().drop(columns="url"), hide_index=True)
    name = st.selectbox("Cache to install", catalog.names, key="fc_catalog_name")
    force = st.checkbox("Replace a different cache already installed under this name", key="fc_catalog_force")
    st.caption(f"Installed to `{folder / f'{name}.zarr'}` · from {catalog.url(catalog.entry(name))}")
    if st.button("Download and install", key="fc_install"):
        bar = st.progress(0.0, text="Connecting…")
        shown = [-1]

        def progress(done: int, total: int) -> None:
            percent = int(100 * done / total) if total else 0
            if percent != shown[0]:  # one update per percent, not one per network chunk
                shown[0] = percent
                bar.progress(percent / 100, text=f"{done / 2**20:.1f} / {total / 2**20:.1f} MB")

        try:
            installed = install_cache(name, catalog=catalog, folder=folder, force=force, progress=progress)
        except CacheError as exc:
            bar.empty()
            st.error(str(exc))
        else:
            bar.progress(1.0, text="Done")
            if installed.status == "unchanged":
                st.info(f"Cache **{installed.name}** is already installed; nothing changed.")
            else:
                st.success(f"Cache **{installed.name}** {installed.status}: it is listed below.")


def list_section(folder: Path) -> None:
    st.subheader("Caches on this machine")
    entries = list_caches(folder)
    if not entries:
        st.info(f"No caches in `{folder}` yet: build or install one above.")
    for entry in entries:
        with st.expander(f"{'✅' if entry.ready else '⚠️'} {entry.name}", expanded=not entry.ready):
            st.code(entry.summary if entry.ready else entry.problem, language=None)


ensure_app_shell()

st.title("Feature caches")
st.markdown(
    "A **feature cache** stores a model's features for every image of a dataset, computed once, so "
    "dataset-wide work such as region search never has to run the network again. "
    "Each cache is a self-describing Zarr folder: it records the model, its weights, the "
    "preprocessing and the layers, and refuses to be used with anything else. The command line "
    "builds the same caches: `python -m featurelens cache build --help`."
)
caches_folder = caches_dir()
current = current_model()
if current is not None:
    build_section(current, caches_folder)
install_section(caches_folder)
list_section(caches_folder)
