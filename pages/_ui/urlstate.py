"""The view in the address bar: read a shared link once per session, write the current view back."""

from __future__ import annotations


import streamlit as st

from featurelens.similarity import ViewState, from_query, to_query, Bounds

from .shell import link_notice, link_params

def load_view_from_url(prefix: str, defaults: ViewState, bounds: Bounds) -> ViewState | None:
    """On a session's first run of a page, read the shared link's view, checked against the
    page's ``bounds``: one warning per ignored value, the address bar rewritten to the values
    kept, the overlay settings put straight into the widgets' state; the view is returned for
    the page to apply the rest. None when there is nothing to restore (not the first run, or
    a link without a view)."""
    if st.session_state.get(f"{prefix}__url_loaded"):
        return None
    st.session_state[f"{prefix}__url_loaded"] = True
    params = {key: st.query_params.get_all(key) for key in st.query_params}
    state, warnings = from_query(params, defaults, bounds)
    for warning in warnings:
        link_notice(warning)
    if params:
        save_view_to_url(state, bounds)
    if state == defaults:
        return None
    for field_name, value in state.settings.__dict__.items():
        st.session_state[f"{prefix}_{field_name}"] = value
    return state


def save_view_to_url(state: ViewState, bounds: Bounds | None = None) -> None:
    """Mirror the view into the address bar, so copying the URL shares exactly this view: the
    app's own parameters (the model: :func:`~pages._ui.shell.link_params`) and the view's,
    less those the page does not show (``bounds.hidden``)."""
    query = link_params() | to_query(state, omit=bounds.hidden if bounds else ())
    if {key: st.query_params.get_all(key) for key in st.query_params} != {k: [v] for k, v in query.items()}:
        st.query_params.from_dict(query)
