"""A view as a shareable URL: encode/decode the state of an overlay page as query parameters.

Every field is plain text so the URL stays readable::

    ?images=chelsea,coffee&layers=stage2,stage5&ref=0.512,0.331&ref_image=0&pin=1:0.20,0.30
     &metric=cosine&scale=fixed&cmap=magma&opacity=0.60&base=gray&upsample=nearest&channel=12

>>> state = ViewState(images=("chelsea", "coffee"), layers=("stage3",), ref=(0.25, 0.75), pin=(1, (0.5, 0.5)))
>>> query = to_query(state)
>>> query["ref"], query["pin"]
('0.2500,0.7500', '1:0.5000,0.5000')
>>> from_query(query, ViewState())[0] == state
True
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Collection, Mapping

from .views import OverlaySettings

__all__ = ["ViewState", "to_query", "from_query"]

XY = tuple[float, float]


@dataclass(frozen=True)
class ViewState:
    """What a page shows: images (gallery ids), layers, reference point (normalised x, y in
    image ``ref_image``), an optional pinned point ``(image, (x, y))``, the overlay settings,
    an optional single channel, NMF parts (``parts`` = k, 0 is off; ``part`` highlighted) and
    a page-specific display ``mode``."""

    images: tuple[str, ...] = ("chelsea",)
    layers: tuple[str, ...] = ()
    ref: XY = (0.5, 0.5)
    ref_image: int = 0
    pin: tuple[int, XY] | None = None
    settings: OverlaySettings = OverlaySettings()
    channel: int | None = None
    parts: int = 0
    part: int | None = None
    mode: str = ""


def _xy(xy: XY) -> str:
    return f"{xy[0]:.4f},{xy[1]:.4f}"


def to_query(state: ViewState) -> dict[str, str]:
    """The state as ``{param: text}``; defaults of optional fields are left out."""
    query = {"images": ",".join(state.images), "layers": ",".join(state.layers), "ref": _xy(state.ref),
             "ref_image": str(state.ref_image)}
    if state.pin is not None:
        query["pin"] = f"{state.pin[0]}:{_xy(state.pin[1])}"
    for f in fields(OverlaySettings):
        value = getattr(state.settings, f.name)
        query[f.name] = f"{value:.2f}" if isinstance(value, float) else str(value)
    if state.channel is not None:
        query["channel"] = str(state.channel)
    if state.mode:
        query["mode"] = state.mode
    if state.parts:
        query["parts"] = str(state.parts)
        if state.part is not None:
            query["part"] = str(state.part)
    return query


def _parse_xy(text: str) -> XY:
    x, y = (float(v) for v in text.split(","))
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError("outside [0, 1]")
    return (x, y)


def _first(value: str | list[str]) -> str:
    return value[-1] if isinstance(value, list) else value


def from_query(params: Mapping[str, str | list[str]], defaults: ViewState, *,
               valid_images: Collection[str] | None = None,
               valid_layers: Collection[str] | None = None, max_images: int | None = None,
               max_layers: int | None = None) -> tuple[ViewState, list[str]]:
    """Read a state from query parameters; anything missing keeps ``defaults``.

    Returns the state and a list of warnings, one per value that was ignored (unknown
    image or layer, malformed point, unknown metric, more images or layers than the page
    shows, …), so a page can say what it dropped instead of failing on a hand-edited link.
    """
    raw = {k: _first(v) for k, v in params.items()}
    warnings: list[str] = []
    state = defaults

    def keep(key: str, parse, apply):
        nonlocal state
        if key not in raw or raw[key] == "":
            return
        try:
            state = apply(state, parse(raw[key]))
        except (ValueError, TypeError, KeyError) as exc:
            warnings.append(f"ignored {key}={raw[key]!r} from the link ({exc})")

    def names(text: str, valid: Collection[str] | None, what: str, most: int | None) -> tuple[str, ...]:
        items = tuple(n for n in text.split(",") if n)
        unknown = [n for n in items if valid is not None and n not in valid]
        kept = tuple(n for n in items if n not in unknown)
        if unknown:
            warnings.append(f"ignored unknown {what} {', '.join(unknown)} from the link")
        if not kept:
            raise ValueError(f"no known {what}")
        if most is not None and len(kept) > most:
            warnings.append(f"kept the first {most} of the link's {len(kept)} {what}s ({', '.join(kept[most:])} left out)")
            kept = kept[:most]
        return kept

    keep("images", lambda t: names(t, valid_images, "image", max_images), lambda s, v: replace(s, images=v))
    keep("layers", lambda t: names(t, valid_layers, "layer", max_layers), lambda s, v: replace(s, layers=v))
    keep("ref", _parse_xy, lambda s, v: replace(s, ref=v))
    keep("ref_image", int, lambda s, v: replace(s, ref_image=v))
    keep("pin", lambda t: (int(t.split(":")[0]), _parse_xy(t.split(":")[1])), lambda s, v: replace(s, pin=v))
    for f in fields(OverlaySettings):
        cast = float if f.name == "opacity" else str
        keep(f.name, cast, lambda s, v, name=f.name: replace(s, settings=replace(s.settings, **{name: v})))
    keep("channel", int, lambda s, v: replace(s, channel=v))
    keep("parts", int, lambda s, v: replace(s, parts=v))
    keep("part", int, lambda s, v: replace(s, part=v))
    keep("mode", str, lambda s, v: replace(s, mode=v))
    if not 0 <= state.ref_image < len(state.images):
        warnings.append(f"ignored ref_image={state.ref_image}: there are {len(state.images)} images")
        state = replace(state, ref_image=0)
    if state.pin is not None and not 0 <= state.pin[0] < len(state.images):
        warnings.append("ignored the pin: its image is not in the view")
        state = replace(state, pin=None)
    return state, warnings
