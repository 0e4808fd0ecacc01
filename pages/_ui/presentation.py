"""Presentation mode, for a teacher projecting the app: the sidebar and page chrome hidden, the
views as large as the screen allows, the current preset's "what to notice" line in large type,
and keys to step through presets (PageDown / PageUp, what a presenter's clicker sends) and
layers (digits, as the buttons show). It is in the link (``present=1``), so a teacher opens one URL.

The mode is one session-state flag for the whole app (:data:`PRESENT_KEY`), switched by the
sidebar's toggle on every scenario page and left by the page's *Exit* button (the sidebar is
hidden then); it is read from the link once per session and kept in the address bar.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from featurelens.scenarios import Preset, Scenario

from .shell import link_notice

PRESENT_KEY = "fl_present"
PRESENT_VIEW_HEIGHT = "calc(100vh - 300px)"  # the views' tallest size: the notice line and keys stay on screen

_CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stHeader"] { display: none !important; }
[data-testid="stMainBlockContainer"] { max-width: 100% !important; padding: 1rem 1.5rem 2rem !important; }
.fl-notice { font-size: 1.65rem; line-height: 1.35; font-weight: 500; margin: 0.1rem 0 0.4rem; }
</style>"""


def presenting() -> bool:
    """Whether the app is in presentation mode (the toggle, or ``present=1`` in the link, read on
    a session's first run)."""
    if PRESENT_KEY not in st.session_state:
        value = st.query_params.get("present")
        if value not in (None, "0", "1"):
            link_notice(f"ignored present={value[:40]!r}: use present=1 for presentation mode")
        st.session_state[PRESENT_KEY] = value == "1"
    return bool(st.session_state[PRESENT_KEY])


def no_presentation_here() -> None:
    """On a page that is not a scenario (Home, Feature caches): a link's ``present=`` is said to be
    ignored and dropped from the address bar."""
    if "present" in st.query_params:
        link_notice("ignored present=: presentation mode is for the scenario pages")
        del st.query_params["present"]


def present_param() -> dict[str, str]:
    """``{"present": "1"}`` in presentation mode, for the address bar; else nothing."""
    return {"present": "1"} if st.session_state.get(PRESENT_KEY) else {}


def presentation_toggle() -> bool:
    """The sidebar's "Presentation mode" toggle; when on, hides the chrome for this run and puts
    ``present=1`` in the address bar. Returns the mode."""
    presenting()  # first: the link's value becomes the toggle's
    st.sidebar.toggle("Presentation mode", key=PRESENT_KEY,
                      help="For a projector: no sidebar, large views, the preset's note in large type; PageDown / "
                           "PageUp step through presets. Leave it with the page's Exit button. In the link as "
                           "present=1.")
    if presenting():
        st.html(_CSS)
    if st.query_params.get_all("present") != list(present_param().values()):
        if presenting():
            st.query_params["present"] = "1"
        else:
            del st.query_params["present"]
    return presenting()


def _leave() -> None:
    st.session_state[PRESENT_KEY] = False


def exit_button(container: Any = st) -> None:
    """The button that leaves presentation mode (the sidebar and its toggle are hidden then)."""
    container.button("Exit", icon=":material/close_fullscreen:", key="fl_present_exit", on_click=_leave,
                     width="stretch", help="Leave presentation mode: the sidebar, title and lesson come back.")


def presentation_bar(sc: Scenario) -> None:
    """In presentation mode on a page without presets: the title and the Exit button (no note: a
    lesson line may speak of results the page has not made yet)."""
    title_col, exit_col = st.columns([6, 1], vertical_alignment="center")
    title_col.markdown(f"**{sc.title}**")
    exit_button(exit_col)


def _step(sc: Scenario, prefix: str, apply: Callable[[Preset], None], offset: int) -> None:
    names = [p.name for p in sc.presets]
    current = st.session_state.get(f"{prefix}_preset_note")
    index = names.index(current) + offset if current in names else (0 if offset > 0 else len(names) - 1)
    preset = sc.presets[index % len(names)]
    apply(preset)
    st.session_state[f"{prefix}_preset_note"] = preset.name


def preset_stepper(sc: Scenario, prefix: str, apply: Callable[[Preset], None]) -> None:
    """Previous / next preset buttons (PageUp / PageDown) and the chosen preset's note in large
    type (else the lesson's first "notice" line)."""
    if not sc.presets:
        return
    chosen = next((p for p in sc.presets if p.name == st.session_state.get(f"{prefix}_preset_note")), None)
    back, name_col, forward, leave = st.columns([1.4, 3.2, 1.4, 0.9], vertical_alignment="center")  # fits 1024 px
    back.button("Previous", icon=":material/chevron_left:", key=f"{prefix}_preset_back", shortcut="PageUp",
                on_click=_step, args=(sc, prefix, apply, -1), width="stretch")
    forward.button("Next", icon=":material/chevron_right:", key=f"{prefix}_preset_next", shortcut="PageDown",
                   on_click=_step, args=(sc, prefix, apply, 1), width="stretch")
    exit_button(leave)
    position = f"{sc.presets.index(chosen) + 1}/{len(sc.presets)}" if chosen else f"{len(sc.presets)} presets"
    name_col.markdown(f"**{sc.title}** · {chosen.name if chosen else 'press Next for the first preset'} ({position})")
    note = chosen.note if chosen and chosen.note else (sc.lesson.notice[0] if sc.lesson.notice else "")
    if note:
        st.markdown(f"<div class='fl-notice'>{_escape(note)}</div>", unsafe_allow_html=True)


def layer_keys(options: Sequence[tuple[str, Any]], key: str) -> None:
    """Buttons with digit shortcuts (0, 1, 2, … in order, at most ten) that put their value into
    ``st.session_state[key]``: ``options`` are ``(label, value)`` pairs, e.g. ``("All layers", None)``
    then one per layer. The chosen one is highlighted."""
    for digit, (col, (label, value)) in enumerate(zip(st.columns(min(len(options), 10)), options[:10])):
        col.button(label, key=f"{key}_{digit}", shortcut=str(digit), width="stretch",
                   type="primary" if st.session_state.get(key) == value else "secondary",
                   on_click=st.session_state.__setitem__, args=(key, value))


def _escape(text: str) -> str:
    escaped = html.escape(text)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", escaped)  # the lessons' *emphasis*
