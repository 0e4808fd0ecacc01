"""The view in the address bar: read a shared link once per session, write the current view back."""

from __future__ import annotations

import streamlit as st

from featurelens.similarity import ViewState, from_query, to_query


def load_view_from_url(prefix: str, defaults: ViewState, valid_images, valid_layers, *,
                       max_images: int | None = None, max_layers: int | None = None) -> ViewState | None:
    """On a session's first run of a page, read the shared link's view: the overlay settings go
    straight into the widgets' state; the view is returned for the page to apply the rest.
    None when there is nothing to restore (not the first run, or a link without a view)."""
    if st.session_state.get(f"{prefix}__url_loaded"):
        return None
    st.session_state[f"{prefix}__url_loaded"] = True
    state, warnings = from_query(st.query_params.to_dict(), defaults, valid_images=valid_images,
                                 valid_layers=valid_layers, max_images=max_images, max_layers=max_layers)
    for warning in warnings:
        st.warning(f"Shared link: {warning}.")
    if state == defaults:
        return None
    for field_name, value in state.settings.__dict__.items():
        st.session_state[f"{prefix}_{field_name}"] = value
    return state


def save_view_to_url(state: ViewState) -> None:
    """Mirror the view into the address bar, so copying the URL shares exactly this view."""
    query = to_query(state)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
