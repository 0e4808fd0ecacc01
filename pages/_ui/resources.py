"""Shared, read-only resources of the whole server: models, scenarios, and (under one memory budget)
decoded images and image reports."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

import featurelens as fl
from featurelens.images import get_gallery_image, upload_to_image
from featurelens.config import memory_budget_bytes
from featurelens.hosting import ByteBudgetCache, release_freed_memory
from featurelens.models import analyse_image
from featurelens.similarity import Bits, HoverAssets, hover_assets
from featurelens.scenarios import Scenario, load_scenarios

ROOT = Path(__file__).resolve().parents[2]


@st.cache_resource(show_spinner="Loading the model…")
def get_model(name: str) -> fl.FeatureModel:
    """One shared, read-only model per name for the whole server."""
    return fl.load_model(name)


@st.cache_resource
def get_scenarios() -> dict[str, Scenario]:
    return load_scenarios(ROOT / "scenarios")


def scenario(scenario_id: str) -> Scenario:
    return get_scenarios()[scenario_id]


@st.cache_resource(show_spinner=False)
def server_memory() -> ByteBudgetCache:
    """Decoded images and per-image reports of every session, under one byte budget
    (``$FEATURELENS_MEMORY_MB``): a few huge uploads cannot grow the server without bound."""
    return ByteBudgetCache(memory_budget_bytes())


def load_gallery_image(image_id: str):
    """A decoded gallery photo, shared read-only (not copied per rerun)."""
    return server_memory().get_or_create(("gallery", image_id), lambda: get_gallery_image(image_id).load())


def load_upload(upload) -> tuple[str, str, object]:
    """An uploaded file → ``(image_key, caption, PIL image)``, downscaled right after decoding to
    what the model and the views need. The key holds a digest of the content, so two different
    files with the same name never share cached features.
    Raises :class:`ImageLoadError` for a file that is not a usable image."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    image = server_memory().get_or_create(("upload", digest), lambda: _decode_upload(upload.name, data))
    return f"upload:{digest}", upload.name, image


def _decode_upload(name: str, data: bytes):
    image = upload_to_image(name, data)
    release_freed_memory()  # the full-size decode buffer, freed, would otherwise stay in this thread's heap
    return image


def image_report(model_name: str, image_key: str, image):
    """Predictions and all layers' features of one image, computed once per (model, image) and
    shared read-only while the server's memory budget allows."""
    memory, key = server_memory(), ("report", model_name, image_key)
    report = memory.get(key)
    if report is None:
        with st.spinner("Running the model…"):
            report = analyse_image(get_model(model_name), image)
        memory.put(key, report)
    return report


def view_assets(model_name: str, image_keys: tuple[str, ...], layers: tuple[str, ...], reports,
                bits: Bits = 8) -> HoverAssets:
    """Photos and quantised feature grids of ``layers`` for the browser's similarity views
    (:func:`featurelens.similarity.hover_assets`), packed once per image/layer set and shared
    under the server's memory budget. ``reports``: one :func:`image_report` per image key."""
    return packed_assets(("hover", model_name, image_keys, layers, bits), [r.display_hwc_u8 for r in reports],
                         [{l: r.feats_hwc[l] for l in layers} for r in reports], bits)


def packed_assets(key: tuple, displays_hwc_u8, feats_per_image, bits: Bits = 8) -> HoverAssets:
    """:func:`featurelens.similarity.hover_assets` of these photos and features, made once per
    ``key`` (which must name everything they depend on) under the server's memory budget."""
    return server_memory().get_or_create(key, lambda: hover_assets(displays_hwc_u8, feats_per_image, bits=bits))
