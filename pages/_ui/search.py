"""Region-search glue shared by the search pages: recipe caches, the drawing canvas, hit grids, box plots."""

from __future__ import annotations

import base64
import io
import threading
import time

import altair as alt
import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from featurelens.caches import (CacheError, FeatureCache, connect_scheduler, ensure_recipe_cache, list_caches, open_cache,
                                recipe_images)
from featurelens.config import dask_scheduler
from featurelens.scenarios import load_recipes
from featurelens.search import Region, SearchResult, draw_window, is_box, load_features
from pages._ui.resources import ROOT, get_model
from pages._ui.shell import visitor_text

CANVAS_PX = 448
TOOLS = {"Free draw": "freedraw", "Rectangle": "rect"}
STROKE = "rgba(255, 212, 0, 0.55)"


@st.cache_resource
def get_recipes():
    return load_recipes(ROOT / "cache_recipes")


@st.cache_resource(show_spinner=False)
def _build_state() -> tuple[threading.Lock, set]:
    """One lock for first-use builds (two visitors never build into the same folder) and the
    (recipe, model) pairs known to be complete."""
    return threading.Lock(), set()


@st.cache_resource(show_spinner=False)
def _open_recipe_cache(recipe_name: str, model_name: str) -> FeatureCache:
    return ensure_recipe_cache(get_recipes()[recipe_name], get_model(model_name))


def recipe_cache(recipe_name: str, model_name: str) -> FeatureCache:
    """The recipe's cache for a model, shared by the server; built on first use with a progress bar."""
    lock, ready = _build_state()
    if (recipe_name, model_name) not in ready:
        recipe, model = get_recipes()[recipe_name], get_model(model_name)
        with lock:
            if (recipe_name, model_name) not in ready:
                bar = st.progress(0.0, text=f"Preparing “{recipe.title}” for {model.name}…")
                ensure_recipe_cache(recipe, model, progress=lambda done, total: bar.progress(
                    done / total, text=f"First use: computing {model.name} features — {done} / {total} images "
                                       "(once; kept for every later visit)"))
                bar.empty()
                ready.add((recipe_name, model_name))
    return _open_recipe_cache(recipe_name, model_name)


@st.cache_resource(show_spinner="Connecting to the Dask cluster…")
def _cluster(address: str) -> tuple:
    """One client per server, in a tuple: a bare Client is awaitable, which st.cache_resource
    refuses. A failure raises, so it is not cached."""
    return (connect_scheduler(address, timeout_s=5),)


@st.cache_resource(show_spinner=False)
def _cluster_failures() -> dict[str, tuple[float, str]]:
    """``{address: (when, why)}``: a failed connection is not retried for a minute."""
    return {}


def cluster_client():
    """The Dask client when ``FEATURELENS_DASK_SCHEDULER`` is set and answers, else None (with a
    warning on the page when it is set but cannot be reached)."""
    address = dask_scheduler()
    if address is None:
        return None
    failures = _cluster_failures()
    when, problem = failures.get(address, (float("-inf"), ""))
    if time.monotonic() - when > 60:
        try:
            return _cluster(address)[0]
        except CacheError as exc:
            problem = str(exc)
            failures[address] = (time.monotonic(), problem)
    st.warning(f"{problem} — searching on this server instead (unset FEATURELENS_DASK_SCHEDULER to stop trying).")
    return None


@st.cache_resource(show_spinner=False, ttl=60)
def _ready_caches() -> dict[str, str]:
    return {entry.name: str(entry.path) for entry in list_caches() if entry.ready}


@st.cache_resource(show_spinner="Opening the cache…", max_entries=16)
def _open_local_cache(path: str) -> FeatureCache:
    return open_cache(path)


def caches_with(column: str, exclude_recipe: str) -> dict[str, FeatureCache]:
    """The ready caches on this machine whose metadata has a non-empty ``column`` (e.g. PACS's
    ``domain``), by name; caches built from ``exclude_recipe`` are left out."""
    found = {}
    for name, path in _ready_caches().items():
        cache = _open_local_cache(path)
        if cache.attrs.get("recipe") == exclude_recipe or column not in cache.metadata:
            continue
        if (cache.metadata[column].astype(str) != "").any():
            found[name] = cache
    return found


@st.cache_resource(show_spinner="Loading the cache into memory…", max_entries=8)
def _cache_features(cache_where: str, layer: str, _cache: FeatureCache):
    return load_features(_cache.features(layer), device="cpu")


def cache_features(cache_where: str, layer: str, cache: FeatureCache):
    """The layer's ``(N, H, W, C)`` features held in memory once per server (searched many times);
    a damaged cache stops the page with its message (what is damaged, how to repair it)."""
    return _or_stop(_cache_features, cache_where, layer, cache)


def _or_stop(read, *args):
    try:
        return read(*args)
    except CacheError as exc:
        st.error(visitor_text(str(exc)))
        st.stop()


@st.cache_resource(show_spinner=False)
def _recipe_image_index(recipe_name: str) -> dict:
    images, _ = recipe_images(get_recipes()[recipe_name])
    return {image.id: image for image in images}


@st.cache_resource(show_spinner=False, max_entries=32)
def recipe_image(recipe_name: str, image_id: str) -> Image.Image:
    """One image of a recipe, decoded (and rendered, for generated recipes) once per server."""
    return _recipe_image_index(recipe_name)[image_id].load()


@st.cache_resource(show_spinner=False, max_entries=8)
def _thumbnails(cache_where: str, _cache: FeatureCache) -> np.ndarray:
    """All thumbnails of a cache in memory (128 px: 20 MB for 420 images), read once."""
    return np.asarray(_cache.thumbnails[:])


@st.cache_resource(show_spinner=False, max_entries=64)
def _jpeg_data_url(image_key: str, _image: Image.Image) -> str:
    buffer = io.BytesIO()
    _image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnail(cache: FeatureCache, index: int, width_height: tuple[int, int] | None = None) -> Image.Image:
    """The cache's thumbnail of image ``index``, restored to the image's own aspect ratio."""
    thumb = Image.fromarray(_or_stop(_thumbnails, str(cache), cache)[index])
    if width_height is None:
        return thumb
    w, h = width_height
    return thumb.resize((max(thumb.size), max(1, round(max(thumb.size) * h / w))), Image.BICUBIC)


def _initial_drawing(region: Region | None, width: int, height: int) -> dict | None:
    """A box ``(x0, y0, x1, y1)`` as a fabric.js rectangle, a polygon ``((x, y), …)`` as a filled path."""
    if region is None:
        return None
    if is_box(region):
        x0, y0, x1, y1 = region
        shape = {"type": "rect", "left": x0 * width, "top": y0 * height, "width": (x1 - x0) * width,
                 "height": (y1 - y0) * height}
    else:
        points = [(x * width, y * height) for x, y in region]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        shape = {"type": "path", "left": min(xs), "top": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys),
                 "path": [["M", *points[0]], *[["L", *p] for p in points[1:]], ["z"]]}
    return {"version": "4.4.0", "objects": [{"originX": "left", "originY": "top", "fill": STROKE, "stroke": STROKE,
                                             "strokeWidth": 0, **shape}]}


def query_canvas(key: str, image: Image.Image, initial_region: Region | None, image_key: str | None = None,
                 width: int = CANVAS_PX, *, tools: dict[str, str] | None = None):
    """The query image on a drawing canvas ``width`` px wide (it does not shrink with its
    column: pick a width that fits); returns the strokes as ``(h, w, 4)`` RGBA, or None
    before the browser has sent a drawing. ``initial_region`` (a box or a polygon, in fractions)
    is drawn on it, to be moved and resized with a ``"transform"`` tool (``tools``: label →
    drawing mode, default :data:`TOOLS`) or painted over."""
    tools = tools or TOOLS
    canvas_slot = st.container()   # the image first, its drawing tools under it
    tool_col, brush_col = st.columns(2)
    tool = tool_col.radio("Draw with", list(tools), horizontal=True, key=f"{key}_tool")
    brush = brush_col.slider("Brush size", 5, 60, 28, key=f"{key}_brush", disabled=tools[tool] != "freedraw")
    height = round(width * image.height / image.width)
    initial = _initial_drawing(initial_region, width, height)
    background = _jpeg_data_url(image_key, image) if image_key else image   # sent as a small JPEG, encoded once
    with canvas_slot:
        result = st_canvas(fill_color=STROKE, stroke_width=brush, stroke_color=STROKE, background_image=background,
                           width=width, height=height, drawing_mode=tools[tool], initial_drawing=initial,
                           return_image_data=True, key=f"{key}_canvas_{hash(str(initial))}")
    return result.image_data   # None until the browser sends a drawing


def hit_grid(cache: FeatureCache, result: SearchResult, columns: int = 5, caption_columns=("domain",)) -> None:
    """The top hits as thumbnails with their matched window, score and metadata."""
    cols = st.columns(columns)
    for slot, hit in enumerate(result.top):
        thumb = thumbnail(cache, hit.index, (hit.metadata.get("width", 1), hit.metadata.get("height", 1)))
        boxed = draw_window(thumb, result.window_box_px(hit, thumb.size))
        details = " · ".join(str(hit.metadata.get(c, "")) for c in caption_columns if hit.metadata.get(c, ""))
        cols[slot % columns].image(boxed, caption=f"#{hit.rank} {hit.score:.3f} · {details or hit.id}",
                                   width="stretch", output_format="JPEG")


def score_boxplot(table, title: str, x_title: str) -> None:
    """Box plot of best scores per ``group`` (a :func:`grouped_scores` table), best group first."""
    order = table.attrs["order"]
    chart = (alt.Chart(table).mark_boxplot(extent="min-max", size=28)
             .encode(x=alt.X("group:N", sort=order, title=x_title,
                            axis=alt.Axis(labelAngle=-30, labelFontSize=13, labelLimit=200)),
                     y=alt.Y("score:Q", title="best cosine score of each image"),
                     color=alt.Color("group:N", sort=order, legend=None))
             .properties(height=340, title=title))
    st.altair_chart(chart, width="stretch")

