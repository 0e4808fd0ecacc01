"""A view as a shareable URL: encode/decode the state of an overlay page as query parameters.

Every field is plain text so the URL stays readable; a channel is stored with its layer::

    ?images=chelsea,coffee&layers=stage2,stage5&ref=0.5120,0.3310&ref_image=0&pin=1:0.2000,0.3000
     &metric=cosine&scale=fixed&cmap=magma&opacity=0.60&base=gray&upsample=nearest&channel=stage5:12

A link is untrusted text. :func:`from_query` checks every value against the page's
:class:`Bounds` (known images and layers, channels per layer, the parts widget's range, …),
keeps what is valid and returns one warning per ignored parameter, so the page shows a view
it can draw and says what it left out:

>>> state = ViewState(images=("chelsea", "coffee"), layers=("stage3",), ref=(0.25, 0.75), pin=(1, (0.5, 0.5)))
>>> query = to_query(state)
>>> query["ref"], query["pin"]
('0.2500,0.7500', '1:0.5000,0.5000')
>>> from_query(query, ViewState())[0] == state
True
>>> bounds = Bounds(channels={"stem": 32, "stage3": 40})
>>> state, warnings = from_query({"layers": "stem,stage3,stem", "channel": "stage3:99"}, ViewState(), bounds)
>>> state.layers, state.channel
(('stem', 'stage3'), None)
>>> warnings
["ignored the repeated layer stem in layers='stem,stage3,stem'", "ignored channel='stage3:99' from the link: layer stage3 has channels 0..39"]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, fields, replace
from numbers import Integral
from typing import Callable, Collection, Mapping

from .metrics import list_metrics
from .views import OverlaySettings

__all__ = ["ViewState", "Bounds", "to_query", "from_query", "checked_int", "APP_KEYS", "model_from_query",
           "viewless_link_notes"]

XY = tuple[float, float]
SETTINGS_KEYS = tuple(f.name for f in fields(OverlaySettings))
_INT = re.compile(r"[+-]?[0-9]{1,9}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_TRACKING = re.compile(r"utm_\w*|\w*clid", re.ASCII)  # added by link shorteners and social media
_SHOWN_CHARS = 40
APP_KEYS = ("model", "present")  # read by the app shell and presentation mode, not by a page
"""Parameters of the whole app, not of one page's view: the app's shell reads them (the model
of every page); :func:`from_query` passes over them and :func:`to_query` never writes them."""


@dataclass(frozen=True)
class ViewState:
    """What a page shows: images (gallery ids), layers, reference point (normalised x, y in
    image ``ref_image``), an optional pinned point ``(image, (x, y))``, the overlay settings,
    an optional single ``channel`` as ``(layer, index)``, NMF parts (``parts`` = k, 0 is off;
    ``part`` highlighted) and a page-specific display ``mode``."""

    images: tuple[str, ...] = ("chelsea",)
    layers: tuple[str, ...] = ()
    ref: XY = (0.5, 0.5)
    ref_image: int = 0
    pin: tuple[int, XY] | None = None
    settings: OverlaySettings = OverlaySettings()
    channel: tuple[str, int] | None = None
    parts: int = 0
    part: int | None = None
    mode: str = ""


@dataclass(frozen=True)
class Bounds:
    """What a page can show, to check a link against; None means "not checked".

    ``images``: the gallery ids a link may name, between ``min_images`` and ``max_images``
    of them. ``channels``: the layers a link may name, in the model's order, each with its
    channel count; at most ``max_layers`` of them. ``parts``: the smallest and largest k of
    the page's NMF-parts widget. ``modes``: the page's display modes. ``hidden``: parameters
    the page does not show (a link's value for one is ignored with a warning).
    """

    images: Collection[str] | None = None
    channels: Mapping[str, int] | None = None
    min_images: int = 1
    max_images: int | None = None
    max_layers: int | None = None
    parts: tuple[int, int] | None = None
    modes: Collection[str] | None = None
    hidden: Collection[str] = ()


def checked_int(value: object, lo: int, hi: int) -> int | None:
    """``value`` when it is a whole number in ``[lo, hi]``, else None — for a widget whose
    session state may hold a value that a link, another layer or another k put there.

    >>> checked_int(3, 0, 15), checked_int(31, 0, 15), checked_int(None, 0, 15), checked_int("3", 0, 15)
    (3, None, None, None)
    """
    if isinstance(value, Integral) and not isinstance(value, bool) and lo <= value <= hi:
        return int(value)
    return None


def _xy(xy: XY) -> str:
    return f"{xy[0]:.4f},{xy[1]:.4f}"


def to_query(state: ViewState, omit: Collection[str] = ()) -> dict[str, str]:
    """The state as ``{param: text}``; defaults of optional fields are left out, and so are the
    parameters in ``omit`` (those a page does not show: its :attr:`Bounds.hidden`).

    >>> to_query(ViewState(images=("coffee",), layers=("stage3",), channel=("stage3", 7)),
    ...          omit=("ref", "ref_image", "metric", "scale", "cmap", "base", "upsample"))
    {'images': 'coffee', 'layers': 'stage3', 'opacity': '0.60', 'channel': 'stage3:7'}
    """
    query = {"images": ",".join(state.images), "layers": ",".join(state.layers), "ref": _xy(state.ref),
             "ref_image": str(state.ref_image)}
    if state.pin is not None:
        query["pin"] = f"{state.pin[0]}:{_xy(state.pin[1])}"
    for name in SETTINGS_KEYS:
        value = getattr(state.settings, name)
        query[name] = f"{value:.2f}" if isinstance(value, float) else str(value)
    if state.channel is not None:
        query["channel"] = f"{state.channel[0]}:{state.channel[1]}"
    if state.mode:
        query["mode"] = state.mode
    if state.parts:
        query["parts"] = str(state.parts)
        if state.part is not None:
            query["part"] = str(state.part)
    return {key: text for key, text in query.items() if key not in omit}


# --------------------------------------------------------------------------- reading a link

def _show(text: str) -> str:
    """A link's text for a warning: quoted, control characters escaped, long text cut."""
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


def _names_list(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(n if _PLAIN_NAME.fullmatch(n) else _show(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("expected a whole number")
    return int(text)


def _float(text: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise ValueError("expected a number such as 0.5")
    return float(text)


def _parse_xy(text: str) -> XY:
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("expected x,y such as 0.5000,0.2500")
    x, y = (_float(v) for v in parts)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError("x and y must be in [0, 1]")
    return (x, y)


def _image_index(text: str, state: ViewState) -> int:
    index = _int(text)
    if not 0 <= index < len(state.images):
        raise ValueError(f"the view has {len(state.images)} image{'s' * (len(state.images) != 1)} "
                         f"(0..{len(state.images) - 1})")
    return index


def _names(text: str, valid: Collection[str] | None, what: str, lo: int, hi: int | None
           ) -> tuple[tuple[str, ...], str | None]:
    """Names from a comma-separated list: unknown and repeated ones left out, at most ``hi``;
    a ValueError when fewer than ``lo`` remain. Returns the names and a note on what was left out."""
    counts = Counter(n for n in text.split(",") if n)  # in the link's order
    unknown = [n for n in counts if valid is not None and n not in valid]
    kept = [n for n in counts if valid is None or n in valid]
    repeated = [n for n in kept if counts[n] > 1]
    notes = [f"unknown {what} {_names_list(unknown)}"] if unknown else []
    notes += [f"the repeated {what} {_names_list(repeated)}"] if repeated else []
    if hi is not None and len(kept) > hi:
        notes.append(f"{what}s after the first {hi} ({_names_list(kept[hi:])}; this page shows at most {hi})")
        kept = kept[:hi]
    if len(kept) < lo:
        found = f"only {len(kept)} usable" if kept else f"no known {what}"
        raise ValueError(f"{found}, this page needs at least {lo}" + (f" ({'; '.join(notes)})" if notes else ""))
    return tuple(kept), "; ".join(notes) or None


def _read_images(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    images, note = _names(text, b.images, "image", max(b.min_images, 1), b.max_images)
    return replace(state, images=images), note


def _read_layers(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    layers, note = _names(text, b.channels, "layer", 1, b.max_layers)
    if b.channels is not None:
        order = list(b.channels)
        layers = tuple(sorted(layers, key=order.index))
    return replace(state, layers=layers), note


def _read_pin(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    image, sep, xy = text.partition(":")
    if not sep:
        raise ValueError("expected image:x,y such as 0:0.5000,0.2500")
    return replace(state, pin=(_image_index(image, state), _parse_xy(xy))), None


def _read_setting(name: str) -> Callable[[str, ViewState, Bounds], tuple[ViewState, str | None]]:
    def read(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
        value = _float(text) if name == "opacity" else text
        try:
            return replace(state, settings=replace(state.settings, **{name: value})), None
        except KeyError:  # an unknown metric (the other settings raise ValueError)
            raise ValueError(f"unknown similarity metric {_show(text)}; choose one of {', '.join(list_metrics())}") \
                from None
    return read


def _read_channel(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    layer, sep, index_text = text.rpartition(":")
    if not sep:
        if not state.layers:
            raise ValueError("give the channel with its layer, such as stage7:12")
        layer = state.layers[-1]  # an old link's bare channel is one of the deepest layer's
    if layer not in state.layers:
        raise ValueError(f"its layer {_show(layer)} is not in the view ({_names_list(list(state.layers), 5)})")
    index = _int(index_text)
    count = None if b.channels is None else b.channels.get(layer)
    if index < 0 or (count is not None and index >= count):
        raise ValueError(f"layer {layer} has channels 0..{count - 1}" if count else "channels count from 0")
    return replace(state, channel=(layer, index)), None


def _read_mode(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    if b.modes is not None and text not in b.modes:
        raise ValueError(f"this page's views are {', '.join(b.modes)}")
    return replace(state, mode=text), None


def _read_parts(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    k = _int(text)
    if b.parts is not None and not b.parts[0] <= k <= b.parts[1]:
        raise ValueError(f"this page shows {b.parts[0]} to {b.parts[1]} parts")
    if k < 0:
        raise ValueError("parts count from 0 (off)")
    return replace(state, parts=k), None


def _read_part(text: str, state: ViewState, b: Bounds) -> tuple[ViewState, str | None]:
    part = _int(text)
    if not 0 <= part < state.parts:
        raise ValueError(f"the view has {state.parts} parts (0..{state.parts - 1})" if state.parts else
                         "the view has no parts")
    return replace(state, part=part), None


_Reader = Callable[[str, ViewState, Bounds], tuple[ViewState, str | None]]

# In dependency order: a reader may check its value against fields read before it.
_READERS: dict[str, _Reader] = {
    "images": _read_images,
    "layers": _read_layers,
    "ref": lambda t, s, b: (replace(s, ref=_parse_xy(t)), None),
    "ref_image": lambda t, s, b: (replace(s, ref_image=_image_index(t, s)), None),
    "pin": _read_pin,
    **{name: _read_setting(name) for name in SETTINGS_KEYS},
    "channel": _read_channel,
    "mode": _read_mode,
    "parts": _read_parts,
    "part": _read_part,
}


def _single_values(params: Mapping[str, str | list[str]], hidden: Collection[str]
                   ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """One text per parameter (the last, as ``st.query_params[key]`` reads it) and a note per
    repeated parameter, plus one for all unknown parameters."""
    raw, notes, unknown = {}, {}, []
    for key, value in params.items():
        values = [value] if isinstance(value, str) else list(value)
        if key in APP_KEYS:  # the app's shell reads and checks these
            continue
        if key not in _READERS:
            unknown += [] if _TRACKING.fullmatch(key) else [key]
            continue
        if len(values) > 1 and key not in hidden:  # a hidden one gets its own note
            notes[key] = [f"{key} appears {len(values)} times in the link: ignored "
                          f"{', '.join(_show(v) for v in values[:-1][:3])}, used the last ({_show(values[-1])})"]
        if values:
            raw[key] = values[-1]
    if unknown:
        notes[" unknown"] = [f"ignored the unknown parameter{'s' * (len(unknown) > 1)} {_names_list(unknown, 5)} "
                             f"(this page reads {', '.join(k for k in _READERS if k not in hidden)})"]
    return raw, notes


def from_query(params: Mapping[str, str | list[str]], defaults: ViewState,
               bounds: Bounds = Bounds()) -> tuple[ViewState, list[str]]:
    """Read a state from query parameters, checked against the page's ``bounds``; anything
    missing or ignored keeps ``defaults``.

    Returns the state and a list of warnings, one per parameter that was ignored in whole or
    in part (unknown image or layer, a repeated one, more than the page shows, malformed
    point, channel outside its layer, parts outside the widget's range, a parameter the page
    does not show, …), each naming the value, so a page can say what it dropped instead of
    failing on a hand-edited link. The state only holds values the page can show.
    """
    raw, notes = _single_values(params, bounds.hidden)
    hidden = {key: raw[key] for key in bounds.hidden if raw.get(key)}
    if hidden:
        notes[" hidden"] = [f"ignored {', '.join(f'{k}={_show(t)}' for k, t in hidden.items())} from the link: "
                            f"this page does not show {'them' if len(hidden) > 1 else 'it'}"]
    state = defaults
    for key, read in _READERS.items():
        text = raw.get(key, "")
        if text == "" or key in hidden:
            continue
        try:
            state, note = read(text, state, bounds)
        except (ValueError, TypeError) as exc:
            notes.setdefault(key, []).append(f"ignored {key}={_show(text)} from the link: {exc}")
        else:
            if note:
                notes.setdefault(key, []).append(f"ignored {note} in {key}={_show(text)}")
    return state, ["; ".join(n) for n in notes.values()]


def model_from_query(params: Mapping[str, str | list[str]], models: Collection[str], default: str
                     ) -> tuple[str, list[str]]:
    """The model a link names in its ``model`` parameter (one of ``models``, registry names),
    or ``default`` when it names none or an unknown one; and one warning for an ignored value
    (unknown model, or a repeated parameter: the last one is used, as for every parameter).

    >>> model_from_query({"model": "resnet50.tv_in1k"}, ["lite0.in1k", "resnet50.tv_in1k"], "lite0.in1k")
    ('resnet50.tv_in1k', [])
    >>> model_from_query({"model": "nosuch"}, ["lite0.in1k"], "lite0.in1k")
    ('lite0.in1k', ["ignored model='nosuch' from the link: unknown model; used lite0.in1k, which works offline"])
    >>> model_from_query({}, ["lite0.in1k"], "lite0.in1k")
    ('lite0.in1k', [])
    """
    value = params.get("model")
    values = [] if value is None else [value] if isinstance(value, str) else list(value)
    if not values or values[-1] == "":
        return default, []
    notes = []
    if len(values) > 1:
        notes.append(f"model appears {len(values)} times in the link: ignored "
                     f"{', '.join(_show(v) for v in values[:-1][:3])}, used the last ({_show(values[-1])})")
    name = values[-1]
    if name not in models:
        notes.append(f"ignored model={_show(name)} from the link: unknown model; used {default}, which works offline")
        name = default
    return name, ["; ".join(notes)] if notes else []


def viewless_link_notes(params: Mapping[str, str | list[str]]) -> list[str]:
    """For a page that keeps no view in its link: one warning naming the parameters it ignores
    (all but :data:`APP_KEYS` and link trackers), so a hand-edited or stale link says what it lost.

    >>> viewless_link_notes({"model": "lite0.in1k", "utm_source": "x", "layers": "stage7", "ref": "1,2"})
    ['ignored the parameters layers, ref: this page keeps no view in its link (it reads model and present)']
    >>> viewless_link_notes({"present": "1"})
    []
    """
    ignored = [key for key in params if key not in APP_KEYS and not _TRACKING.fullmatch(key)]
    if not ignored:
        return []
    return [f"ignored the parameter{'s' * (len(ignored) > 1)} {_names_list(ignored, 5)}: this page keeps no view "
            f"in its link (it reads {' and '.join(APP_KEYS)})"]
