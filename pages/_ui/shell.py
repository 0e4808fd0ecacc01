"""The app shell: deep-link hand-over to ``app.py``, the shared sidebar, the current model and layer."""

from __future__ import annotations

import streamlit as st

import featurelens as fl
from featurelens.models import WeightsCorruptError, WeightsUnavailableError

from .resources import get_model

DEFAULT_MODEL = "efficientnet_lite0.in1k"
MODEL_KEY, LAYER_KEY = "fl_model", "fl_layer"


def ensure_app_shell() -> None:
    """Every page calls this first. Streamlit runs a ``pages/`` file on its own (legacy
    multipage mode, without ``app.py``'s navigation and sidebar) when a fresh server's first
    request is a deep link; hand such a run over to ``app.py`` instead."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _model_label(name: str) -> str:
    return name if fl.weights_available(name) else f"{name} (needs download)"


def shared_sidebar() -> None:
    """Model and layer pickers plus the device, kept in ``st.session_state`` across pages."""
    names = fl.list_models()
    st.session_state.setdefault(MODEL_KEY, DEFAULT_MODEL)
    with st.sidebar:
        st.markdown("### Model")
        st.selectbox("Model", names, key=MODEL_KEY, format_func=_model_label,
                     help="Offline models have their weights installed; others download once.")
        model = current_model()
        if model is None:
            return
        layer_names = [layer.name for layer in model.layers]
        if st.session_state.get(LAYER_KEY) not in layer_names:
            st.session_state[LAYER_KEY] = model.spec.default_layers[-1]
        st.selectbox("Layer", layer_names, key=LAYER_KEY, format_func=model.layer_label,
                     help="Deeper layers: coarser grid, more channels, more abstract features.")
        st.caption(f"{model.spec.description}  \nDevice: **{model.device}** · input {model.input_hw[1]}×{model.input_hw[0]} px")


def current_model() -> fl.FeatureModel | None:
    """The sidebar's model, or None after showing the user why it could not be loaded."""
    name = st.session_state.get(MODEL_KEY, DEFAULT_MODEL)
    try:
        return get_model(name)
    except (WeightsUnavailableError, WeightsCorruptError) as exc:
        st.error(f"**{name}** could not be loaded. {exc}")
        return None


def current_layer(model: fl.FeatureModel) -> str:
    layer = st.session_state.get(LAYER_KEY)
    return layer if layer in [l.name for l in model.layers] else model.spec.default_layers[-1]
