"""Shared, read-only resources of the whole server: models, scenarios, decoded images, image reports."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

import featurelens as fl
from featurelens.images import get_gallery_image, upload_to_image
from featurelens.models import analyse_image
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


@st.cache_resource(show_spinner=False, max_entries=64)
def load_gallery_image(image_id: str):
    """A decoded gallery photo, shared read-only (not copied per rerun)."""
    return get_gallery_image(image_id).load()


@st.cache_resource(show_spinner=False, max_entries=16)
def _decode_upload(digest: str, name: str, _data: bytes):
    return upload_to_image(name, _data)


def load_upload(upload) -> tuple[str, str, object]:
    """An uploaded file → ``(image_key, caption, PIL image)``. The key holds a digest of the
    content, so two different files with the same name never share cached features.
    Raises :class:`ImageLoadError` for a file that is not a usable image."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    return f"upload:{digest}", upload.name, _decode_upload(digest, upload.name, data)


@st.cache_resource(show_spinner="Running the model…", max_entries=64)
def image_report(model_name: str, image_key: str, _image):
    """Predictions and all layers' features of one image, computed once per (model, image) and
    shared read-only (a resource: no copy of several MB per rerun, as ``cache_data`` would make)."""
    return analyse_image(get_model(model_name), _image)
