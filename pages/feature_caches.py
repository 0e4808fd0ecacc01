"""Feature caches: build a dataset's Zarr feature cache with a progress bar, resume it, inspect it."""

from pathlib import Path

import pandas as pd
import streamlit as st

from featurelens.caches import build_cache, CacheError, image_metadata, list_caches
from featurelens.images import bundled_gallery, folder_images, GalleryError
from featurelens.config import caches_dir
from pages._ui.shell import current_model, ensure_app_shell

ensure_app_shell()

st.title("Feature caches")
st.markdown(
    "A **feature cache** stores a model's features for every image of a dataset, computed once, so "
    "dataset-wide work such as region search never has to run the network again. "
    "Each cache is a self-describing Zarr folder: it records the model, its weights, the "
    "preprocessing and the layers, and refuses to be used with anything else. The command line "
    "builds the same caches: `python -m featurelens cache build --help`."
)
model = current_model()
if model is None:
    st.stop()

folder = caches_dir()
st.subheader("Build or resume")
source = st.radio("Images", ["Bundled gallery", "Image folder on this machine"], horizontal=True, key="fc_source")
labels = None
if source == "Bundled gallery":
    images, root, default_name = bundled_gallery(), None, "bundled"
    st.caption(f"{len(images)} photos that ship with scikit-image, scikit-learn and matplotlib.")
else:
    path = st.text_input("Folder (searched recursively)", key="fc_folder", placeholder="/data/my_photos")
    labels_path = st.text_input("Labels CSV (optional, with a 'file' column)", key="fc_labels")
    if not path:
        st.info("Type the path of a folder of images on the machine running FeatureLens.")
        st.stop()
    try:
        root = Path(path).expanduser().resolve()
        images, default_name = folder_images(root), root.name
        labels = pd.read_csv(labels_path) if labels_path else None
    except (GalleryError, OSError, pd.errors.ParserError) as exc:
        st.error(str(exc))
        st.stop()
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

st.subheader("Caches on this machine")
entries = list_caches(folder)
if not entries:
    st.info(f"No caches in `{folder}` yet: build one above.")
for entry in entries:
    with st.expander(f"{'✅' if entry.ready else '⚠️'} {entry.name}", expanded=not entry.ready):
        st.code(entry.summary if entry.ready else entry.problem, language=None)
