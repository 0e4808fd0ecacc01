"""Widgets every page uses: the lesson, the image picker, overlay controls, click and pick events."""

from __future__ import annotations

import streamlit as st

from featurelens.images import ImageLoadError, bundled_gallery
from featurelens.scenarios import Preset, Scenario
from featurelens.similarity import COLOR_SCALES, COLORMAPS, METRICS, UPSAMPLE_MODES, OverlaySettings, viewless_link_notes

import featurelens as fl

from .presentation import presentation_bar, presentation_toggle, preset_stepper, presenting
from .shell import current_model, link_notice, link_params, plain
from .resources import load_gallery_image, load_upload


def render_lesson(sc: Scenario, expanded: bool = False) -> None:
    """The scenario's lesson: summary, what to try, what to notice, questions."""
    st.markdown(sc.lesson.summary)
    with st.expander("Lesson: what to try, what to notice, questions", expanded=expanded):
        for title, items in (("Try", sc.lesson.try_), ("Notice", sc.lesson.notice), ("Discuss", sc.lesson.discuss)):
            if items:
                st.markdown(f"**{title}**\n" + "\n".join(f"- {item}" for item in items))


def scenario_intro(sc: Scenario, *, view_in_link: bool = False) -> None:
    """A scenario page's start: the sidebar's presentation toggle, then the title and lesson or,
    in presentation mode, the chrome hidden (and, without presets, a bar with the title and Exit).
    A page whose link holds no view (``view_in_link`` False) names a shared link's other
    parameters in a note and drops them."""
    if presentation_toggle():
        if not sc.presets:
            presentation_bar(sc)
    else:
        st.title(sc.title)
        render_lesson(sc)
    if not view_in_link:
        _viewless_link_warnings()


def _viewless_link_warnings() -> None:
    """The link's parameters a page without a view in its link ignores: said
    (:func:`~pages._ui.shell.link_notice`) and dropped from the address bar, so the next run finds none."""
    notes = viewless_link_notes({k: st.query_params.get_all(k) for k in st.query_params})
    for note in notes:
        link_notice(note)
    if notes:
        st.query_params.from_dict(link_params())


def scenario_page(sc: Scenario, *, view_in_link: bool = False) -> fl.FeatureModel:
    """:func:`scenario_intro`, then the model every page uses; stops the page when there is none."""
    scenario_intro(sc, view_in_link=view_in_link)
    model = current_model()
    if model is None:
        st.stop()
    return model


def preset_buttons(sc: Scenario, prefix: str, apply, title: str = "**Presets**", *, showing: Preset | None = None) -> None:
    """One button per preset (``apply(preset)`` on click) and, once one is chosen, its note on the
    page in plain view: a tooltip is invisible on a projector or a touch screen. In presentation
    mode, the preset stepper instead (PageDown / PageUp), which counts from ``showing``: the preset
    the page's first view already shows, if any."""
    if presenting():
        if showing is not None:
            st.session_state.setdefault(f"{prefix}_preset_note", showing.name)
        preset_stepper(sc, prefix, apply)
        return

    def choose(preset) -> None:
        apply(preset)
        st.session_state[f"{prefix}_preset_note"] = preset.name

    with st.container():
        st.markdown(title)
        for col, preset in zip(st.columns(len(sc.presets) or 1), sc.presets):
            col.button(preset.name, help=preset.note, on_click=choose, args=(preset,), width="stretch")
        chosen = next((p for p in sc.presets if p.name == st.session_state.get(f"{prefix}_preset_note")), None)
        if chosen is not None and chosen.note:
            st.markdown(f":material/visibility: **{chosen.name}** — {chosen.note}")


def image_picker(key: str, default_id: str = "chelsea"):
    """Gallery or upload → ``(image_key, PIL RGB image)``; shows an error and returns
    ``(None, None)`` for a file that is not a usable image. The gallery photo's source and
    license go in the select's tooltip and under the views (:func:`image_credit`), so the
    picker stays two rows high and the views come first."""
    gallery = {g.id: g for g in bundled_gallery()}
    ids = list(gallery)
    st.session_state.setdefault(f"{key}_gallery", default_id if default_id in ids else ids[0])
    source = st.radio("Image source", ["Gallery", "Upload"], horizontal=True, key=synced(f"{key}_source"),
                      label_visibility="collapsed")
    if source == "Upload":
        upload = st.file_uploader("Upload an image", type=None, key=f"{key}_upload",
                                  help="JPEG, PNG, TIFF, BMP, WebP; grayscale, 16-bit and RGBA are fine.")
        if upload is None:
            st.info("Choose an image file to upload, or switch to the gallery.")
            return None, None
        try:
            image_key, _, image = load_upload(upload)
            return image_key, image
        except ImageLoadError as exc:
            st.error(plain(str(exc)))   # names the visitor's file
            return None, None
    image_id = st.selectbox("Gallery image", ids, key=synced(f"{key}_gallery"),
                            format_func=lambda i: gallery[i].caption,
                            help="Photos that ship with scikit-image, scikit-learn and matplotlib; each one's source "
                                 "and license are shown under the views.")
    return f"gallery:{image_id}", load_gallery_image(image_id)


def image_credit(image_key: str) -> None:
    """The source and license of a gallery photo (``gallery:ID``), as a caption; nothing for uploads."""
    if image_key.startswith("gallery:"):
        item = {g.id: g for g in bundled_gallery()}.get(image_key.split(":", 1)[1])
        if item is not None:
            st.caption(f"Photo: {item.caption} — source: {item.source} · license: {item.license}")


def wrapping_columns(key: str, min_rem: list[float], **columns_options) -> list:
    """Columns at least ``min_rem`` wide, sized in proportion to them: where the screen is wide
    enough they share one row, and on a narrow one (a projector's 1024 px beside the sidebar) the
    row wraps instead of cutting the selected values to a few letters."""
    rules = " ".join(f".st-key-{key} [data-testid='stColumn']:nth-child({i + 1}) {{ min-width: {rem}rem; }}"
                     for i, rem in enumerate(min_rem))
    st.html(f"<style>{rules}</style>")
    with st.container(key=key):
        return st.columns([rem + 1 for rem in min_rem], **columns_options)   # + 1 rem: a column's share of the gaps


def hold(defaults: dict[str, object]) -> None:
    """Keep widget values across reruns the browser has not drawn: a closed popover's widgets
    reach the browser only when it opens, and without this they mount with their default and
    send it back (a preset's layers vanish). Call before the widgets, which then take no default
    of their own; ``defaults`` fill keys not set yet (None: leave unset)."""
    for key, default in defaults.items():
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
        elif default is not None:
            st.session_state[key] = default


def synced(key: str) -> str:
    """The widget key that shows ``st.session_state[key]`` in a popover: ``key`` itself until code
    changes the value with :func:`set_synced`, then a new key per such change. A popover's widget
    that the browser has drawn once keeps its old value while the popover is closed and sends it
    back; a new key makes the browser draw the new value. The widget's own changes flow back
    into ``key``."""
    generation = st.session_state.get(f"{key}__gen", 0)
    if not generation:
        hold({key: None})
        return key
    widget_key = f"{key}__w{generation}"
    if widget_key in st.session_state:
        st.session_state[key] = st.session_state[widget_key]
    if key in st.session_state:
        st.session_state[widget_key] = st.session_state[key]
    return widget_key


def set_synced(key: str, value) -> None:
    """Set a value whose widget uses :func:`synced` (presets, callbacks, checks)."""
    st.session_state[key] = value
    st.session_state[f"{key}__gen"] = st.session_state.get(f"{key}__gen", 0) + 1


def overlay_controls(prefix: str, defaults: OverlaySettings) -> OverlaySettings:
    """Metric, colour scale, colormap, opacity, base photo and upsampling widgets → settings,
    stacked (pages put them in a "View settings" popover, so the views come first)."""
    hold({f"{prefix}_{field_name}": value for field_name, value in defaults.__dict__.items()}
         | {f"{prefix}_bits": None})
    metric = st.selectbox("Similarity", list(METRICS), key=f"{prefix}_metric",
                          format_func=lambda k: METRICS[k].display_name,
                          help="\n\n".join(f"**{m.display_name}**: {m.description}" for m in METRICS.values()))
    scale = st.radio("Colour scale", list(COLOR_SCALES), key=f"{prefix}_scale", horizontal=True,
                     format_func=lambda k: k.capitalize(),
                     help="\n\n".join(f"**{s.display_name}**: {s.description}" for s in COLOR_SCALES.values()))
    cmap = st.selectbox("Colormap", list(COLORMAPS), key=f"{prefix}_cmap", format_func=lambda k: COLORMAPS[k].display_name)
    opacity = st.slider("Opacity", 0.0, 1.0, step=0.05, key=f"{prefix}_opacity")
    base = st.radio("Photo", ["gray", "color"], key=f"{prefix}_base", format_func=str.capitalize, horizontal=True,
                    help="Grayscale keeps the photo's colours from competing with the heat map.")
    upsample = st.radio("Upsampling", list(UPSAMPLE_MODES), key=f"{prefix}_upsample", horizontal=True,
                        format_func=str.capitalize,
                        help="Nearest shows the layer's grid honestly; bilinear looks smoother.")
    return OverlaySettings(metric=metric, scale=scale, cmap=cmap, opacity=float(opacity), base=base, upsample=upsample)


def precision_control(prefix: str) -> int:
    """How precisely the features travel to the browser: 8 bit (default, |Δcosine| < 0.01 on the
    gallery) or 16 bit (twice the bytes, |Δcosine| < 1e-4)."""
    return st.radio("Feature precision in the browser", [8, 16], key=f"{prefix}_bits", horizontal=True,
                    format_func=lambda b: f"{b} bit",
                    help="The views compute similarity in your browser from features sent once per image and "
                         "layer set, quantised per feature vector (as IFeaLiD does). 8 bit changes a cosine by "
                         "less than 0.01 on the gallery; 16 bit by less than 0.0001, for twice the bytes.")


def figure_caption(model: fl.FeatureModel, settings: OverlaySettings, layers: str) -> str:
    """What an exported figure says under the views: model, layer(s), metric, colour scale, colormap."""
    return (f"{model.name} · {layers} · {METRICS[settings.metric].display_name} · {settings.scale} colour scale "
            f"· {COLORMAPS[settings.cmap].display_name} · opacity {settings.opacity:.2f}")


def consume_chart_pick(key: str, param: str, field_name: str):
    """The value of ``field_name`` newly picked in the Vega-Lite chart ``key``'s point selection
    ``param``, or None if the pick has not changed since the last call."""
    event = st.session_state.get(key) or {}
    picked = (event.get("selection") or {}).get(param) or []
    value = picked[0].get(field_name) if picked else None
    seen_key = f"{key}__seen"
    if value is None or st.session_state.get(seen_key) == value:
        st.session_state[seen_key] = value
        return None
    st.session_state[seen_key] = value
    return value
