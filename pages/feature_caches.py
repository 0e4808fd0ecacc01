"""Feature caches: build a dataset's Zarr feature cache in the background with a progress bar, resume
it, install one from a catalog (download with checksum and progress), and list the caches here.

Hosted (``FEATURELENS_MODE=hosted``): visitors build from the gallery, their uploads or the
operator's image folders; they never type a server path and never see one."""

from pathlib import Path

import streamlit as st

from featurelens.caches import build_cache, Catalog, CacheError, image_metadata, install_cache, list_caches, load_catalog
from featurelens.config import CACHE_CATALOG_ENV, cache_catalog, caches_dir, data_roots, hosted
from featurelens.hosting import (JobRefused, UnsafePathError, cache_path, check_cache_name, inside_roots,
                                 label_tables, read_label_table)
from featurelens.images import IMAGE_EXTENSIONS, GalleryError, bundled_gallery, folder_images, uploaded_images
from featurelens.models import FeatureModel
from pages._ui.jobs import build_board, build_status
from pages._ui.presentation import no_presentation_here
from pages._ui.shell import current_model, ensure_app_shell, plain, visitor_text

MAX_UPLOADS = 200
HOSTED_PROBLEMS = {  # what a visitor reads about a cache that is not ready (no pids, hosts or commands)
    "incomplete": "Its build has not finished (it may be running now).",
    "damaged": "Part of its data is damaged; the server's operator can repair it.",
    "unreadable": "It cannot be read as a FeatureLens cache.",
}
STATUS_ICONS = {"ready": ":material/check_circle:", "incomplete": ":material/pending:",
                "damaged": ":material/warning:", "unreadable": ":material/block:"}
SOURCES = {"gallery": "Bundled gallery", "upload": "Your images (upload)", "folder": "Image folder on this machine",
           "roots": "Image folder on this server"}


@st.cache_data(ttl=30, show_spinner="Reading the catalog…")
def read_catalog(source: str) -> Catalog:
    """The catalog at ``source`` (re-read after 30 s, so an edited or republished catalog shows up)."""
    return load_catalog(source)


@st.cache_data(ttl=60, show_spinner="Looking for images…")
def list_folder(folder: str) -> tuple[tuple, list[str]]:
    """A folder's images and label tables (listed once a minute, not on every keystroke)."""
    root = Path(folder)
    return folder_images(root), label_tables(root)


def pick_images():
    """The visitor's images → ``(images, root, default name, labels table)``, or None after saying why."""
    sources = ["gallery", "upload"] + (["roots"] if data_roots() else []) + ([] if hosted() else ["folder"])
    source = st.radio("Images", sources, format_func=SOURCES.get, horizontal=True, key="fc_source")
    if source == "gallery":
        images = bundled_gallery()
        st.caption(f"{len(images)} photos that ship with scikit-image, scikit-learn and matplotlib.")
        return images, None, "bundled", None
    if source == "upload":
        return pick_uploads()
    if source == "roots":
        root = st.selectbox("Folder", data_roots(), format_func=lambda p: p.name, key="fc_root")
    else:
        typed = st.text_input("Folder (searched recursively)", key="fc_folder", placeholder="/data/my_photos")
        if not typed:
            st.info("Type the path of a folder of images on the machine running FeatureLens.")
            return None
        root = Path(typed).expanduser().resolve()
    try:
        if source == "roots":
            root = inside_roots(root, data_roots())
        images, tables = list_folder(str(root))
    except (GalleryError, UnsafePathError, OSError) as exc:
        st.error(visitor_text(str(exc)))
        return None
    st.caption(visitor_text(f"{len(images)} images found under {root}."))
    table = st.selectbox("Labels table (optional: a CSV in this folder with a 'file' column)", ["", *tables],
                         format_func=lambda t: t or "none", key="fc_labels")
    try:
        labels = read_label_table(root, table) if table else None
    except ValueError as exc:
        st.error(str(exc))
        return None
    return images, root, root.name, labels


def pick_uploads():
    uploads = st.file_uploader("Images for the cache", accept_multiple_files=True, key="fc_uploads",
                               type=sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS),
                               help=f"Up to {MAX_UPLOADS} images; larger ones are scaled down.")
    if not uploads:
        st.info("Choose image files to upload; they are only used for this cache.")
        return None
    if len(uploads) > MAX_UPLOADS:
        st.warning(f"A cache built here takes at most {MAX_UPLOADS} uploaded images: the last "
                   f"{len(uploads) - MAX_UPLOADS} of your {len(uploads)} files are left out.")
    images = uploaded_images([(upload.name, upload.getvalue()) for upload in uploads[:MAX_UPLOADS]])
    st.caption(f"{len(images)} uploaded images.")
    return images, None, "my-images", None


def build_section(model: FeatureModel, folder: Path) -> None:
    """Pick images, layers and a name; build (or resume) the cache in the background."""
    st.subheader("Build or resume")
    picked = pick_images()
    if picked is None:
        return
    images, root, default_name, labels = picked
    layers = st.multiselect("Layers", [l.name for l in model.layers], default=list(model.spec.default_layers),
                            format_func=model.layer_label, key="fc_layers")
    if st.session_state.get("fc_name") in (None, st.session_state.get("fc_name_default")):
        st.session_state["fc_name"] = default_name  # follows the image source until the visitor types a name
    st.session_state["fc_name_default"] = default_name
    name = st.text_input("Cache name", key="fc_name").strip()
    try:
        target = cache_path(folder, check_cache_name(name))
    except UnsafePathError as exc:
        st.error(plain(str(exc)))
        return
    st.caption(visitor_text(f"Model **{model.name}** (change it in the sidebar) · saved to `{target}` · an interrupted "
                     "build resumes when you press the button again with the same settings."))
    if st.button("Build cache", type="primary", disabled=not layers):
        start_build(target, images, model, layers, root, labels)
    job = build_board().get(st.session_state.get("fc_job", ""))
    if job is not None:
        build_status(job.name, job.running)


def start_build(target: Path, images, model: FeatureModel, layers: list[str], root, labels) -> None:
    try:
        table = image_metadata(images, root=root, labels=labels)
        target.parent.mkdir(parents=True, exist_ok=True)
        build_board().start(target.stem, lambda progress: build_cache(
            target, images, model, layers, dataset_name=target.stem, metadata=table, progress=progress))
    except CacheError as exc:
        st.error(visitor_text(str(exc)))
    except JobRefused as exc:
        st.warning(f"Not started: {exc}.")
    else:
        st.session_state["fc_job"] = target.stem


def install_section(folder: Path) -> None:
    """List a catalog's caches; download and install the chosen one with a progress bar."""
    st.subheader("Install from a catalog")
    source = cache_catalog()
    if not hosted():
        st.caption(f"Catalog `{source}`. A teacher publishes caches with `python -m featurelens cache pack CACHE "
                   f"--out site/NAME.zip --catalog site/catalog.json` and serves the folder from any web server; "
                   f"set `{CACHE_CATALOG_ENV}` to its URL (or path) before starting the app.")
    try:
        catalog = read_catalog(source)
    except CacheError as exc:
        st.error(visitor_text(str(exc)))
        return
    if not catalog.entries:
        st.info(visitor_text(f"The catalog `{source}` lists no caches yet.") if not hosted()
                else "The catalog of this server lists no caches yet.")
        return
    st.dataframe(catalog.to_frame().drop(columns="url"), hide_index=True)
    name = st.selectbox("Cache to install", catalog.names, key="fc_catalog_name")
    force = st.checkbox("Replace a different cache already installed under this name", key="fc_catalog_force")
    st.caption(visitor_text(f"Installed to `{folder / f'{name}.zarr'}` · from {catalog.url(catalog.entry(name))}"))
    if st.button("Download and install", key="fc_install"):
        bar = st.progress(0.0, text="Connecting…")
        shown_percent = [-1]

        def progress(done: int, total: int) -> None:
            percent = int(100 * done / total) if total else 0
            if percent != shown_percent[0]:  # one update per percent, not one per network chunk
                shown_percent[0] = percent
                bar.progress(percent / 100, text=f"{done / 2**20:.1f} / {total / 2**20:.1f} MB")

        try:
            installed = install_cache(name, catalog=catalog, folder=folder, force=force, progress=progress)
        except CacheError as exc:
            bar.empty()
            st.error(visitor_text(str(exc)))
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
        st.info(visitor_text(f"No caches in `{folder}` yet: build or install one above."))
    for entry in entries:
        with st.expander(f"{entry.name} — {entry.status}", icon=STATUS_ICONS[entry.status], expanded=not entry.ready):
            if entry.problem:
                st.warning(HOSTED_PROBLEMS[entry.status] if hosted() else entry.problem)
            if entry.summary:
                st.code(visitor_text(entry.summary), language=None)


ensure_app_shell()
no_presentation_here()

st.title("Feature caches")
st.markdown(
    "A **feature cache** stores a model's features for every image of a dataset, computed once, so "
    "dataset-wide work such as region search never has to run the network again. "
    "Each cache is a self-describing Zarr folder: it records the model, its weights, the "
    "preprocessing and the layers, and refuses to be used with anything else."
    + ("" if hosted() else " The command line builds the same caches: `python -m featurelens cache build --help`.")
)
caches_folder = caches_dir()
current = current_model()
if current is not None:
    build_section(current, caches_folder)
install_section(caches_folder)
list_section(caches_folder)
