"""The app shell: deep-link hand-over to ``app.py``, the shared sidebar and the current model.

One rule for layers: the sidebar picks the model, which every page uses (and which every
page's link carries as ``model=``); each page picks its own layers, next to its views."""

from __future__ import annotations

import re
import threading

import streamlit as st

import featurelens as fl
from featurelens.config import DEFAULT_CACHE_CATALOG, caches_dir, data_roots, featurelens_home, hosted, visitor_downloads
from featurelens.hosting import redact_paths
from featurelens.models import WeightsCorruptError, WeightsUnavailableError
from featurelens.models import MIRROR_ENV, known_download_bytes
from featurelens.similarity import model_from_query

from .resources import get_model

DEFAULT_MODEL = "efficientnet_lite0.in1k"
MODEL_KEY = "fl_model"
FAILED_KEY = "fl_model_failed"  # {model name: why it could not be loaded}, until the user tries again
OFFER_KEY = "fl_model_offer"  # a model a link named that must download first: offered, never fetched unasked
LAYER_RULE = "Every page uses this model; each page picks its own layers, next to its views."
NOTICES_KEY = "fl__link_notices"  # what a shared link lost, shown until dismissed
_RUN = threading.local()  # this script run's notice slot (each session's script runs in its own thread)


def open_link_notices() -> None:
    """At the top of the main column, before the sidebar and the page: the notices a shared link
    left (:func:`link_notice`) in earlier runs, until dismissed — a page's first rerun (a drawing
    canvas reporting its size) would otherwise take a once-said warning away before anyone reads
    it. Nothing is drawn when there are none (an empty block would still take room)."""
    _RUN.slot = None
    for text in st.session_state.get(NOTICES_KEY, []):
        _notice_slot().warning(plain(f"Shared link: {text}."))


def link_notice(text: str) -> None:
    """Say what a shared link lost (``text`` as typed: Markdown is escaped), once per session:
    with the others where the first is found this run, then at the top of the page until dismissed."""
    notices = st.session_state.setdefault(NOTICES_KEY, [])
    if text not in notices:
        notices.append(text)
        _notice_slot().warning(plain(f"Shared link: {text}."))


def _notice_slot():
    """This run's block of link notices, made where the first one is said, with one Dismiss
    button below it (later notices join the block, above the button)."""
    if getattr(_RUN, "slot", None) is None:
        _RUN.slot = st.container(key="fl_link_notices")
        st.button("Dismiss", key="fl_link_notices_ok", on_click=st.session_state.__setitem__,
                  args=(NOTICES_KEY, []), help="Hide these notes about the shared link.")
    return _RUN.slot


def ensure_app_shell() -> None:
    """Every page calls this first. Streamlit runs a ``pages/`` file on its own (legacy
    multipage mode, without ``app.py``'s navigation and sidebar) when a fresh server's first
    request is a deep link; hand such a run over to ``app.py`` instead."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _download_size(name: str) -> str:
    """``" (≈103 MB)"`` when the size of the model's weights file is known, else ``""``."""
    size = known_download_bytes(fl.get_spec(name).weights_source)
    return f" (≈{size / 1e6:.0f} MB)" if size else ""


def _model_label(name: str) -> str:
    """Offline models (listed first) by name; the others say that they download, and how much."""
    return name if fl.weights_available(name) else f"{name} — download{_download_size(name)}"


def _forget_failures() -> None:
    """A new choice, or "Try again", tries the download again."""
    st.session_state[FAILED_KEY] = {}


def _model_chosen() -> None:
    """A choice in the sidebar: try its download again, and drop a link's offer."""
    _forget_failures()
    st.session_state.pop(OFFER_KEY, None)


def _use_offline_model() -> None:
    st.session_state[MODEL_KEY] = DEFAULT_MODEL
    _forget_failures()


def shared_sidebar() -> None:
    """The model picker and the device, kept in ``st.session_state`` across pages; layers are
    each page's own (:data:`LAYER_RULE`, said under the picker). When the chosen model cannot
    be loaded, one message at the top of the page says why and how to get it, and every page
    goes on with the offline default model. A link's ``model=`` is read on a session's first
    run; the model in use is written back into the address bar on every run."""
    # offline models first; on a hosted box, visitors get only the installed ones unless the operator allows downloads
    names = [n for n in fl.list_models() if visitor_downloads() or fl.weights_available(n)]
    if st.session_state.get(MODEL_KEY, DEFAULT_MODEL) not in names:
        st.session_state[MODEL_KEY] = DEFAULT_MODEL
    st.session_state.setdefault(MODEL_KEY, DEFAULT_MODEL)
    _model_from_link(names)
    with st.sidebar:
        st.markdown("### Model")
        st.selectbox("Model", names, key=MODEL_KEY, format_func=_model_label, on_change=_model_chosen,
                     help="Models without a note work offline. The others download their weights once; "
                          f"without internet, a classroom server named in {MIRROR_ENV} can serve them.")
        model = current_model()
        if model is not None:
            st.caption(f"{LAYER_RULE}  \n{model.spec.description}  \nDevice: **{model.device}** · "
                       f"input {model.input_hw[1]}×{model.input_hw[0]} px")
    _show_model_problem()
    _show_model_offer()
    _save_model_to_url(model)


def _model_from_link(names: list[str]) -> None:
    """On a session's first run, the link's ``model=``: a model that works here is chosen; one
    that must download first is offered (:func:`_show_model_offer`), never fetched unasked; an
    unknown one gets one warning and the offline default."""
    if st.session_state.get("fl__model_url_loaded"):
        return
    st.session_state["fl__model_url_loaded"] = True
    params = {key: st.query_params.get_all(key) for key in st.query_params}
    if "model" not in params:
        return
    linked = params["model"][-1] if params["model"] else ""
    if linked in fl.list_models() and linked not in names:  # hosted, downloads not allowed
        link_notice(f"{linked} is not installed on this server, which offers {', '.join(names)}; "
                    f"showing {DEFAULT_MODEL}")
        return
    name, warnings = model_from_query(params, names, DEFAULT_MODEL)
    for warning in warnings:
        link_notice(warning)
    if fl.weights_available(name):
        st.session_state[MODEL_KEY] = name
    else:
        st.session_state[OFFER_KEY] = name


def _accept_offer(name: str) -> None:
    st.session_state[MODEL_KEY] = name
    _model_chosen()


def _decline_offer() -> None:
    st.session_state.pop(OFFER_KEY, None)


def _show_model_offer() -> None:
    """A link's model whose weights are not on this machine, as a choice: download it, or not."""
    name = st.session_state.get(OFFER_KEY)
    if name is None or st.session_state.get(MODEL_KEY) == name:
        return
    st.info(f"This link uses **{name}**, whose weights{_download_size(name)} are not on this machine yet. "
            f"Until you choose to download them, every page uses **{DEFAULT_MODEL}**, which works offline.",
            icon=":material/download:")
    use, keep, _ = st.columns([2, 2, 3])
    use.button("Download and use it", key="fl_accept_offer", on_click=_accept_offer, args=(name,), width="stretch",
               help=f"Downloads {name}'s weights once, from {MIRROR_ENV} when it is set, else from the official site.")
    keep.button(f"Keep {DEFAULT_MODEL}", key="fl_decline_offer", on_click=_decline_offer, width="stretch")


def link_params() -> dict[str, str]:
    """The app's own link parameters (:data:`featurelens.similarity.APP_KEYS`), as the address
    bar should hold them now: ``model`` unless it is the default. Pages that write their view
    into the address bar keep these (``pages._ui.urlstate.save_view_to_url``)."""
    from .presentation import present_param  # lazy: presentation imports this module

    name = st.session_state.get("fl__model_in_use", DEFAULT_MODEL)
    return ({} if name == DEFAULT_MODEL else {"model": name}) | present_param()


def _save_model_to_url(model: fl.FeatureModel | None) -> None:
    """The model in use (the offline default while the chosen one cannot load) in the address bar."""
    st.session_state["fl__model_in_use"] = model.name if model is not None else DEFAULT_MODEL
    wanted = link_params().get("model")
    if st.query_params.get_all("model") != ([wanted] if wanted else []):
        if wanted:
            st.query_params["model"] = wanted
        else:
            del st.query_params["model"]


def _load(name: str) -> tuple[fl.FeatureModel | None, str | None]:
    """The model, or None and the sentence why not. A failure is remembered for the session, so
    reruns do not wait on the network again; a new choice or "Try again" forgets it."""
    failed = st.session_state.setdefault(FAILED_KEY, {})
    if name in failed:
        return None, failed[name]
    try:
        return get_model(name), None
    except (WeightsUnavailableError, WeightsCorruptError) as exc:
        failed[name] = _why_not(name, exc)
        return None, failed[name]


def _why_not(name: str, exc: WeightsUnavailableError | WeightsCorruptError) -> str:
    """One message for people: what is missing, why, how to get it; never a raw network error."""
    if isinstance(exc, WeightsUnavailableError) and exc.reason:
        text = (f"**{name}** is not on this machine: its weights{_download_size(name)} could not be "
                f"downloaded, because {exc.reason}. {exc.remedy}")
    else:
        text = f"**{name}** could not be loaded: {exc}"
    return visitor_text(text)


def _show_model_problem() -> None:
    """The one message about a model that could not be loaded, at the top of the page."""
    name = st.session_state.get(MODEL_KEY, DEFAULT_MODEL)
    problem = st.session_state.get(FAILED_KEY, {}).get(name)
    if problem is None:
        return
    fallback_problem = st.session_state[FAILED_KEY].get(DEFAULT_MODEL)
    if fallback_problem is not None:  # nothing to fall back on: the pages stop
        st.error(problem if name == DEFAULT_MODEL else f"{problem}  \n{fallback_problem}", icon=":material/error:")
        return
    st.error(f"{problem} Meanwhile every page uses **{DEFAULT_MODEL}**, which works offline.",
             icon=":material/cloud_off:")
    use, retry, _ = st.columns([2, 2, 3])
    use.button(f"Use {DEFAULT_MODEL}", key="fl_use_offline", on_click=_use_offline_model, width="stretch")
    retry.button("Try the download again", key="fl_retry_download", on_click=_forget_failures, width="stretch")


def current_model() -> fl.FeatureModel | None:
    """The model the pages use: the sidebar's choice, or the offline default while the choice
    cannot be loaded (``shared_sidebar`` says why, once, at the top of the page); None only when
    the default cannot be loaded either."""
    name = st.session_state.get(MODEL_KEY, DEFAULT_MODEL)
    model, _ = _load(name)
    if model is None and name != DEFAULT_MODEL:
        model, _ = _load(DEFAULT_MODEL)
    return model


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def plain(text: str) -> str:
    """``text`` with Markdown escaped, for values a visitor typed or a link carried: shown as
    typed, never rendered as links, images or formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def visitor_text(text: str) -> str:
    """``text`` as a visitor may see it: in hosted mode, the server's folders are replaced by names
    (``caches/lab1.zarr``, ``app/…``)."""
    if not hosted():
        return text
    labels = {caches_dir(): "caches", featurelens_home(): "featurelens-home", DEFAULT_CACHE_CATALOG.parents[1]: "app"}
    labels |= {root: root.name for root in data_roots()}
    return redact_paths(text, labels)

