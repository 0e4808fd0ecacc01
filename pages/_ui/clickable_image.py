"""A clickable image: one inline Streamlit Components v2 element for every similarity view.

:func:`clickable_image` shows an RGB image at its column's width and reports each click (or
Enter/Space after moving the keyboard point with the arrow keys) as a trigger value
``click = {"x": 0..1, "y": 0..1, "stamp": int}``, which reruns the script (or the fragment
that drew it); :func:`last_click` reads it at the start of that run, before the views are
drawn again. The element lives in the app's own page (no iframe) and its height comes from
the image's size, which Python knows: it is never 0 px, whatever the load.

Why not ``streamlit-image-coordinates`` (components v1): each view was an iframe that loaded
four files from the server and then sized itself from JavaScript. Its script says "ready"
from the ``<head>``, before ``<img id="image">`` is parsed; under load the first render
message can arrive in that gap, its handler throws on the missing image, and the iframe
keeps its initial height of 0 px, with no error shown, until another run changes that
view's image.

The JavaScript is written to be extended (issue 10, hover overlays): it builds its DOM once
per element, keeps its listeners on that DOM, and only updates it when new ``data`` arrives.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import streamlit as st
from PIL import Image

ImageFormat = Literal["JPEG", "PNG"]
Cursor = Literal["pointer", "crosshair"]

COMPONENT_NAME = "featurelens.clickable_image"
CSS_CLASS = "fl-click-image"  # the <img>; browser tests find the views by it


class Click(NamedTuple):
    """One click on a :func:`clickable_image`: the point normalised by the shown size."""

    x: float  #: 0 at the image's left edge, 1 at its right edge
    y: float  #: 0 at the top, 1 at the bottom
    stamp: int  #: differs between any two clicks of one browser page


_CSS = f"""
.fl-root {{ position: relative; line-height: 0; }}
.{CSS_CLASS} {{
    display: block; width: 100%; height: auto; max-width: 100%;
    user-select: none; -webkit-user-select: none; -webkit-user-drag: none; touch-action: manipulation;
    border-radius: 0.25rem;
}}
.{CSS_CLASS}:focus {{ outline: none; }}
.{CSS_CLASS}:focus-visible {{ outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: 2px; }}
.fl-key-point {{
    position: absolute; width: 14px; height: 14px; margin: -9px 0 0 -9px; border-radius: 50%;
    border: 2px solid var(--st-primary-color, #ff4b4b); box-shadow: 0 0 0 1px #fff;
    pointer-events: none; display: none;
}}
.fl-root.fl-keyboard .fl-key-point {{ display: block; }}
"""

# Called by Streamlit on mount and again whenever ``data`` changes (never with a cleanup of
# the previous call in between), so it builds the DOM and listeners once and stores the
# latest data and callbacks on the root element.
_JS = f"""
let clickCount = 0;
const KEY_STEP = 0.02, KEY_STEP_LARGE = 0.1;

// data: 4-byte big-endian length, that much JSON (the image's description), the image file
function unpack(bytes) {{
    const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
    return [meta, bytes.subarray(4 + length)];
}}

function dataUrl(mime, bytes) {{
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return `data:${{mime}};base64,${{btoa(binary)}}`;
}}

function build(parent) {{
    const root = document.createElement("div");
    root.className = "fl-root";
    const img = document.createElement("img");
    img.className = "{CSS_CLASS}";
    img.draggable = false;
    img.tabIndex = 0;
    img.setAttribute("aria-keyshortcuts", "ArrowLeft ArrowRight ArrowUp ArrowDown Enter Space");
    const point = document.createElement("div");
    point.className = "fl-key-point";
    point.setAttribute("aria-hidden", "true");
    root.append(img, point);
    parent.appendChild(root);
    const state = {{ root, img, point, key: [0.5, 0.5], send: null }};
    const clamp = (v) => Math.min(Math.max(v, 0), 1);
    const commit = (x, y) => {{
        state.key = [clamp(x), clamp(y)];
        clickCount += 1;
        if (state.send) state.send(state.key[0], state.key[1], Date.now() * 1000 + (clickCount % 1000));
    }};
    const showKeyPoint = () => {{
        point.style.left = `${{state.key[0] * 100}}%`;
        point.style.top = `${{state.key[1] * 100}}%`;
    }};
    img.addEventListener("click", (event) => {{
        const box = img.getBoundingClientRect();
        if (!box.width || !box.height) return;
        root.classList.remove("fl-keyboard");
        commit((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
    }});
    img.addEventListener("keydown", (event) => {{
        const step = event.shiftKey ? KEY_STEP_LARGE : KEY_STEP;
        const moves = {{ ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }};
        if (event.key in moves) {{
            const [dx, dy] = moves[event.key];
            state.key = [clamp(state.key[0] + dx), clamp(state.key[1] + dy)];
        }} else if (event.key === "Enter" || event.key === " ") {{
            commit(state.key[0], state.key[1]);
        }} else {{
            return;
        }}
        event.preventDefault();
        root.classList.add("fl-keyboard");
        showKeyPoint();
    }});
    img.addEventListener("blur", () => root.classList.remove("fl-keyboard"));
    return state;
}}

export default function (component) {{
    const {{ data, parentElement, setTriggerValue }} = component;
    const state = parentElement.__flClickImage || (parentElement.__flClickImage = build(parentElement));
    state.send = (x, y, stamp) => setTriggerValue("click", {{ x, y, stamp }});
    const {{ img }} = state;
    const [meta, image] = unpack(data);
    // Size first, from Python's numbers: the layout has the right height before the image decodes.
    img.width = meta.width;
    img.height = meta.height;
    img.style.aspectRatio = `${{meta.width}} / ${{meta.height}}`;
    img.style.cursor = meta.cursor;
    img.alt = meta.alt;
    const src = dataUrl(meta.mime, image);
    if (img.getAttribute("src") !== src) img.src = src;
    if (meta.point) state.key = meta.point;
    return () => {{ state.send = null; }};
}}
"""

_component = st.components.v2.component(COMPONENT_NAME, css=_CSS, js=_JS)


def encode_image(image_hwc_u8: np.ndarray, image_format: ImageFormat = "JPEG", quality: int = 80) -> bytes:
    """An ``H×W×3`` uint8 RGB image as a JPEG (at ``quality``) or PNG file.

    >>> encode_image(np.zeros((2, 3, 3), np.uint8), "PNG")[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    if image_format == "JPEG":
        Image.fromarray(image_hwc_u8).save(buffer, format="JPEG", quality=quality)
    elif image_format == "PNG":
        Image.fromarray(image_hwc_u8).save(buffer, format="PNG", compress_level=1)
    else:
        raise ValueError(f"image_format must be 'JPEG' or 'PNG', not {image_format!r}")
    return buffer.getvalue()


def pack_payload(meta: Mapping[str, Any], image: bytes) -> bytes:
    """The element's ``data``: a 4-byte big-endian length, that many bytes of JSON ``meta``,
    then the image file. Bytes, not JSON: no base64 and no JSON pass over the image on the
    server (per view and click), and a third less to send.

    >>> unpack_payload(pack_payload({"width": 3}, b"JPEG"))
    ({'width': 3}, b'JPEG')
    """
    header = json.dumps(meta, separators=(",", ":")).encode()
    return len(header).to_bytes(4, "big") + header + image


def unpack_payload(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """``(meta, image file)`` from :func:`pack_payload`'s bytes (the load benchmark reads them)."""
    length = int.from_bytes(payload[:4], "big")
    return json.loads(payload[4:4 + length]), payload[4 + length:]


def _click_state_key(key: str) -> str:
    return f"{key}__last_click"


def _store_click(key: str) -> None:
    """The ``click`` trigger's callback: keep the click under a plain session-state key, so that
    :func:`last_click` (called for every view on every run) does not go through the
    component's state presenter, which costs about 0.3 ms per read."""
    value = st.session_state.get(key)
    click = value.get("click") if isinstance(value, Mapping) else None
    try:
        x, y, stamp = float(click["x"]), float(click["y"]), int(click["stamp"])
    except (KeyError, TypeError, ValueError):
        return
    if np.isfinite(x) and np.isfinite(y):
        st.session_state[_click_state_key(key)] = Click(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0), stamp)


def clickable_image(image_hwc_u8: np.ndarray, *, key: str, alt: str, cursor: Cursor = "pointer",
                    image_format: ImageFormat = "JPEG", quality: int = 80,
                    point: tuple[float, float] | None = None) -> None:
    """Show ``image_hwc_u8`` (``H×W×3`` uint8 RGB) at the column's width, clickable.

    ``key`` names the element (no ``__`` in it: Streamlit reserves that); ``alt`` is the
    image's text alternative. ``point``, normalised ``(x, y)``, is where the keyboard point
    starts (the current reference, say). Read clicks with :func:`last_click` ``(key)``.
    """
    if image_hwc_u8.ndim != 3 or image_hwc_u8.shape[2] != 3 or image_hwc_u8.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {image_hwc_u8.dtype} {image_hwc_u8.shape}")
    height, width = image_hwc_u8.shape[:2]
    meta = {"mime": f"image/{image_format.lower()}", "width": int(width), "height": int(height), "alt": alt,
            "cursor": cursor, "point": [float(point[0]), float(point[1])] if point else None}
    _component(key=key, data=pack_payload(meta, encode_image(image_hwc_u8, image_format, quality)),
               width="stretch", height="content", on_click_change=functools.partial(_store_click, key))


def last_click(key: str) -> Click | None:
    """The latest click on the :func:`clickable_image` ``key`` in this session, or None.

    Stored when the click's run starts, so it is there before the element is drawn again
    (the page must read it first, so that the views it draws already show the new point).
    Compare :attr:`Click.stamp` with the last one handled to see whether it is new.
    """
    return st.session_state.get(_click_state_key(key))
