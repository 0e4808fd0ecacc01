"""What a browser needs to draw similarity views itself, following the pointer (IFeaLiD, ISO).

Python sends, once per image/layer set, the photos (JPEG) and every feature grid quantised to
8 bit (16 as an option) with one scale per cell (:mod:`.quantize`); on each pointer move the
browser computes the map of the hovered cell with the same formulas as :mod:`.metrics`, colours
it through the same colour scale and lookup table as :mod:`.overlays` and draws the rings.
Python stays the source of truth for state: the reference, pin, channel and settings travel in
a small JSON part next to the assets, and a click sends the new reference back.

Wire format (:func:`pack_hover`): a 4-byte big-endian length, that much UTF-8 JSON (the state,
with an ``assets`` description of where each blob lies), then the assets' blob. Blobs start on
4-byte boundaries, so the browser reads float32 scales in place.

>>> import numpy as np
>>> feats = {"a": np.ones((2, 2, 3), np.float32), "b": np.ones((1, 1, 5), np.float32)}
>>> assets = hover_assets([np.zeros((8, 8, 3), np.uint8)], [feats])
>>> [(g["layer"], g["grid"], g["bits"]) for g in assets.meta["grids"]]
[('a', [2, 2, 3], 8), ('b', [1, 1, 5], 8)]
>>> header, blob = unpack_hover(pack_hover(assets, {"mode": "layers"}))
>>> header["mode"], header["assets"]["key"] == assets.key, len(blob) == len(assets.blob)
('layers', True, True)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from .metrics import get_metric
from .overlays import MARKER_COLORS, PIN_RING_SCALE, colormap_lut
from .quantize import Bits, quantize_vectors
from .views import CELL_COLOR, GRID_COLOR, OverlaySettings

__all__ = ["HoverMode", "HoverAssets", "hover_assets", "hover_state", "pack_hover", "unpack_hover"]

HoverMode = Literal["layers", "images", "pair", "channels"]
XY = tuple[float, float]


@dataclass(frozen=True)
class HoverAssets:
    """Photos and quantised grids of one image/layer set, packed once.

    ``meta``: ``{"key", "photos": [{"width", "height", "at": [offset, length]}],
    "grids": [{"image", "layer", "grid": [h, w, c], "bits", "codes": [offset, length],
    "scales": [offset, length], "signed": bool}]}`` (``signed``: the grid has negative
    values, which picks the angular formula). ``blob``: the bytes those offsets point into.
    ``key`` is a digest of the content: the browser decodes a set once, however often it is sent.
    """

    meta: dict[str, Any]
    blob: bytes

    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def nbytes(self) -> int:
        return len(self.blob)


def _jpeg(image_hwc_u8: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_hwc_u8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class _BlobWriter:
    """Concatenates byte strings on 4-byte boundaries and remembers where each one went."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        pad = -self.size % 4
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def hover_assets(displays_hwc_u8: Sequence[np.ndarray], feats_per_image: Sequence[Mapping[str, np.ndarray]],
                 *, bits: Bits = 8, jpeg_quality: int = 90) -> HoverAssets:
    """Pack photos and feature grids for the browser.

    ``displays_hwc_u8``: one ``H×W×3`` uint8 photo per image, as shown. ``feats_per_image``:
    for each image, ``{layer: feats_hwc}`` of the layers to show (float, any grid). Grids are
    listed image by image, in each mapping's order.
    """
    if len(displays_hwc_u8) != len(feats_per_image):
        raise ValueError(f"{len(displays_hwc_u8)} photos but {len(feats_per_image)} feature sets; give one per image")
    writer, photos, grids = _BlobWriter(), [], []
    for index, (display, feats) in enumerate(zip(displays_hwc_u8, feats_per_image)):
        display = np.asarray(display)
        if display.ndim != 3 or display.shape[2] != 3 or display.dtype != np.uint8:
            raise ValueError(f"photo {index}: expected H×W×3 uint8, got {display.dtype} {display.shape}")
        photos.append({"width": int(display.shape[1]), "height": int(display.shape[0]),
                       "at": writer.add(_jpeg(display, jpeg_quality))})
        for layer, feats_hwc in feats.items():
            feats_hwc = np.asarray(feats_hwc, dtype=np.float32)
            if feats_hwc.ndim != 3:
                raise ValueError(f"image {index}, layer {layer!r}: expected feats_hwc (H, W, C), got {feats_hwc.shape}")
            codes_hwc, scale_hw = quantize_vectors(feats_hwc, bits)
            grids.append({"image": index, "layer": layer, "grid": list(feats_hwc.shape), "bits": bits,
                          "codes": writer.add(codes_hwc.astype(codes_hwc.dtype.newbyteorder("<")).tobytes()),
                          "scales": writer.add(scale_hw.astype("<f4").tobytes()),
                          "signed": bool(feats_hwc.size and feats_hwc.min() < 0)})
    blob = b"".join(writer.parts)
    meta = {"key": hashlib.sha256(blob).hexdigest()[:24], "photos": photos, "grids": grids}
    return HoverAssets(meta, blob)


def _grid_index(assets: HoverAssets, image: int, layer: str) -> int:
    for index, grid in enumerate(assets.meta["grids"]):
        if grid["image"] == image and grid["layer"] == layer:
            return index
    raise KeyError(f"no grid of layer {layer!r} for image {image} in these assets")


def _point(xy: XY | None) -> list[float] | None:
    return None if xy is None else [min(max(float(xy[0]), 0.0), 1.0), min(max(float(xy[1]), 0.0), 1.0)]


def _view_row(assets: HoverAssets, image: int, layer: str, label: str, channel: int | None = None,
              opacity: float | None = None) -> dict[str, Any]:
    row = {"grid": _grid_index(assets, image, layer), "image": image, "layer": layer, "label": label}
    if channel is not None:
        row["channel"] = int(channel)
    if opacity is not None:
        row["opacity"] = float(opacity)
    return row


def hover_state(assets: HoverAssets, views: Sequence[tuple[int, str, str]], settings: OverlaySettings, *,
                mode: HoverMode, ref: tuple[int, XY], pin: tuple[int, XY] | None = None,
                channel: tuple[str, int] | None = None, per_row: int = 4,
                caption: str = "", ref_seq: int = 0, max_height: str | None = None,
                affines: Sequence[Sequence[float]] | None = None, channel_everywhere: bool = False) -> dict[str, Any]:
    """The JSON-ready state of a set of views over ``assets``.

    ``views``: ``(image index, layer, label)`` per view, in display order, optionally followed
    by the view's channel and its own opacity (``channels`` mode). ``mode``:
    ``layers`` (one image, each view takes its reference at the same normalised point of its
    own layer), ``images`` (one layer; the hovered image's cell is the reference of every
    image, one colour range for all) or ``pair`` (view 0 shows the grid and the chosen square
    of image A, view 1 image B coloured by similarity to it, on B's own range, best match
    marked) or ``channels`` (tiles of single channels, each with its channel, then one large
    view that shows the hovered tile's channel, else ``channel``'s). ``ref``/``pin``: ``(image index, (x, y))``, normalised. ``channel``: show this
    ``(layer, channel)``'s activation in that layer's views instead of similarity.
    ``caption``: model, metric, scale… for an exported figure. ``ref_seq``: bump it when Python
    moves the reference (a preset, a link), so the browser drops its own. ``max_height``: a
    CSS length no view grows taller than (e.g. ``"calc(100vh - 200px)"`` on a projector).
    ``affines`` (``images`` mode): per view, the ``(2, 3)`` map from image 0's normalised points to
    the view's (transformed copies of image 0): the pointer on any view stands for image 0's point
    it shows, and every view rings its own place of that point. ``channel_everywhere``: the
    channel is shown in every view whose layer has that many channels, not only ``channel``'s layer.
    """
    if mode not in ("layers", "images", "pair", "channels"):
        raise ValueError(f"unknown hover mode {mode!r}; use 'layers', 'images', 'pair' or 'channels'")
    if mode == "pair" and len(views) != 2:
        raise ValueError(f"the pair mode shows two views (A with its grid, B coloured); got {len(views)}")
    if mode == "channels" and (channel is None or any(len(v) < 4 for v in views[:-1])):
        raise ValueError("the channels mode needs channel=(layer, index) for the large view and a channel per tile")
    metric = get_metric(settings.metric)
    view_rows = [_view_row(assets, *view) for view in views]
    if affines is not None:
        if mode != "images" or len(affines) != len(views):
            raise ValueError("affines: one (2, 3) matrix per view, in the images mode")
        for row, matrix in zip(view_rows, affines):
            row["affine"] = [float(v) for v in np.asarray(matrix, dtype=float).reshape(6)]
    return {
        "mode": mode,
        "views": view_rows,
        "metric": metric.key,
        "metric_name": metric.display_name,
        "scale": settings.scale,
        "value_range": list(metric.value_range) if metric.bounded else None,
        "lut": colormap_lut(settings.cmap).reshape(-1).tolist(),
        "opacity": settings.opacity,
        "base": settings.base,
        "upsample": settings.upsample,
        "ref": {"image": int(ref[0]), "xy": _point(ref[1])},
        "pin": None if pin is None else {"image": int(pin[0]), "xy": _point(pin[1])},
        "channel": None if channel is None else {"layer": channel[0], "index": int(channel[1]),
                                                 "all": bool(channel_everywhere)},
        "per_row": int(per_row),
        "max_height": max_height,
        "mapped": affines is not None,
        "caption": caption,
        "ref_seq": int(ref_seq),
        "colors": {"reference": list(MARKER_COLORS["reference"]), "pinned": list(MARKER_COLORS["pinned"]),
                   "cell": list(CELL_COLOR), "grid": list(GRID_COLOR), "pin_ring_scale": PIN_RING_SCALE},
    }


def pack_hover(assets: HoverAssets, state: Mapping[str, Any]) -> bytes:
    """``state`` (JSON-ready, e.g. from :func:`hover_state`) and the assets as one byte string."""
    header = json.dumps({**state, "assets": assets.meta}, separators=(",", ":")).encode()
    pad = -(4 + len(header)) % 4  # the blob starts on a 4-byte boundary of the whole payload
    header += b" " * pad
    return len(header).to_bytes(4, "big") + header + assets.blob


def unpack_hover(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """``(header, blob)`` from :func:`pack_hover`'s bytes."""
    length = int.from_bytes(payload[:4], "big")
    return json.loads(payload[4:4 + length]), payload[4 + length:]
