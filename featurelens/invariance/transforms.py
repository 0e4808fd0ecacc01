"""Geometric transforms of an image and where a point of the original goes in each.

A :class:`Transform` is one rotation (degrees, counter-clockwise, about the image centre),
one zoom towards a point (factor ≥ 1: the window of ``1/factor`` of the image around the
point, clamped inside the image, blown up to the full size) or a horizontal flip. Points are
normalised ``(x, y)`` in [0, 1] (x to the right, y down), the way the pages pass clicks.

:func:`map_point` sends a point of the original to the transformed image (None when it
leaves the frame); :func:`unmap_point` goes back (None when the point shows padding).
Rotation pads with black (zeros), so the corners of a rotated photo are not the photo:
:func:`valid_mask` says which pixels are.

>>> t = Transform("rotate", 90.0)
>>> map_point(t, (0.75, 0.5))          # right of the centre → above it (counter-clockwise)
(0.5, 0.25)
>>> unmap_point(t, (0.5, 0.25))
(0.75, 0.5)
>>> map_point(Transform("zoom", 2.0, (0.5, 0.5)), (0.1, 0.5)) is None   # outside the window
True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from skimage.transform import AffineTransform, rotate, warp

__all__ = ["XY", "TransformKind", "TRANSFORM_KINDS", "Transform", "TransformError", "DEFAULT_SWEEPS", "MAX_TRANSFORMS",
           "MAX_ZOOM", "parse_transforms", "sweep", "apply_transform", "valid_mask", "affine", "map_point", "unmap_point"]

XY = tuple[float, float]
TransformKind = Literal["rotate", "zoom", "flip"]
TRANSFORM_KINDS: dict[str, str] = {"rotate": "Rotation (degrees)", "zoom": "Zoom towards a point (×)",
                                   "flip": "Horizontal flip"}
"""Transform families by key, with the chart's axis title."""

DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {"rotate": (0, 45, 90, 135, 180, 225, 270, 315),
                                                "zoom": (1, 1.5, 2, 3, 4), "flip": (0, 1)}
MAX_TRANSFORMS = 12
MAX_ZOOM = 8.0
_EPS = 1e-9


class TransformError(ValueError):
    """A transform list that cannot be used; the message says what to type instead."""


@dataclass(frozen=True)
class Transform:
    """One transform: ``kind``, its ``value`` (degrees, zoom factor, or 1 = flipped / 0 = not)
    and, for zooms, the normalised ``center`` zoomed towards."""

    kind: TransformKind
    value: float
    center: XY = (0.5, 0.5)

    @property
    def label(self) -> str:
        """``"45°"``, ``"2×"``, ``"flipped"`` / ``"original"``."""
        if self.kind == "rotate":
            return f"{self.value:g}°"
        if self.kind == "zoom":
            return f"{self.value:g}×"
        return "flipped" if self.value else "original"

    @property
    def is_identity(self) -> bool:
        return (self.kind == "rotate" and self.value % 360 == 0) or (self.kind == "zoom" and self.value == 1) \
            or (self.kind == "flip" and not self.value)


def parse_transforms(kind: str, text: str | Sequence[float], center: XY = (0.5, 0.5)) -> tuple[Transform, ...]:
    """A typed list (``"0, 45, 90"`` or numbers) → transforms of ``kind``, duplicates dropped,
    in the order given. Flips ignore ``text``: the original and the flipped image.

    >>> [t.label for t in parse_transforms("zoom", "1, 2 ,2, 4")]
    ['1×', '2×', '4×']
    >>> try:
    ...     parse_transforms("rotate", "90, ninety")
    ... except TransformError as exc:
    ...     message = str(exc)
    >>> message
    "'ninety' is not a number; type numbers separated by commas, e.g. 0, 45, 90"
    """
    if kind not in TRANSFORM_KINDS:
        raise TransformError(f"unknown transform {kind!r}; choose one of {', '.join(TRANSFORM_KINDS)}")
    if not all(0.0 <= float(v) <= 1.0 for v in center):
        raise TransformError(f"the zoom centre {tuple(center)} must be a normalised point, each value in [0, 1]")
    if kind == "flip":
        return (Transform("flip", 0.0), Transform("flip", 1.0))
    values = [part.strip() for part in re.split(r"[,;\s]+", text) if part.strip()] if isinstance(text, str) \
        else list(text)
    numbers = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            shown = value if len(str(value)) <= 20 else f"{str(value)[:20]}…"
            raise TransformError(f"{shown!r} is not a number; type numbers separated by commas, e.g. "
                                 f"{', '.join(f'{v:g}' for v in DEFAULT_SWEEPS[kind][:3])}") from None
        if not math.isfinite(number):
            raise TransformError(f"{value!r} is not a finite number")
        if kind == "zoom" and not 1.0 <= number <= MAX_ZOOM:
            raise TransformError(f"zoom {number:g}× is out of range: zoom factors go from 1 (the whole image) "
                                 f"to {MAX_ZOOM:g}")
        numbers.append(round(number, 3))
    numbers = list(dict.fromkeys(numbers))
    if not numbers:
        raise TransformError("the list is empty; type at least one value, e.g. "
                             + ", ".join(f"{v:g}" for v in DEFAULT_SWEEPS[kind]))
    if len(numbers) > MAX_TRANSFORMS:
        raise TransformError(f"{len(numbers)} values given; a sweep has at most {MAX_TRANSFORMS}")
    return tuple(Transform(kind, v, tuple(float(c) for c in center) if kind == "zoom" else (0.5, 0.5))
                 for v in numbers)


def sweep(kind: str, center: XY = (0.5, 0.5)) -> tuple[Transform, ...]:
    """The default sweep of ``kind``: rotations 0–315° in 45° steps, zooms 1×–4×, the flip."""
    return parse_transforms(kind, DEFAULT_SWEEPS.get(kind, ()), center)


def _zoom_origin(t: Transform) -> XY:
    """Top-left corner (normalised) of the zoom window, kept inside the image."""
    side = 1.0 / t.value
    return tuple(min(max(c - side / 2, 0.0), 1.0 - side) for c in t.center)


def _rotate_px(x: float, y: float, wh: tuple[int, int], degrees: float) -> XY:
    cx, cy = wh[0] / 2, wh[1] / 2
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    dx, dy = x - cx, y - cy
    return cx + dx * cos + dy * sin, cy - dx * sin + dy * cos


def _inside(xy: XY) -> XY | None:
    x, y = (0.0 if abs(v) < _EPS else 1.0 if abs(v - 1) < _EPS else v for v in xy)
    return (round(x, 9), round(y, 9)) if 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 else None


def affine(t: Transform, image_wh: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The transform as a ``(2, 3)`` matrix on normalised points: ``(x', y') = M @ (x, y, 1)``
    (every sweep is affine: a flip, a crop-and-scale, a rotation about the centre). The
    browser's views map the pointer with it; :func:`map_point` does too, then checks the frame.

    >>> affine(Transform("flip", 1.0)).tolist()
    [[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    if t.kind == "flip":
        return np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]) if t.value else np.eye(2, 3)
    if t.kind == "zoom":
        u0, v0 = _zoom_origin(t)
        return np.array([[t.value, 0.0, -u0 * t.value], [0.0, t.value, -v0 * t.value]])
    w, h = image_wh
    a = math.radians(t.value)
    cos, sin = math.cos(a), math.sin(a)  # _rotate_px in normalised coordinates (aspect ratio h / w)
    return np.array([[cos, sin * h / w, 0.5 - 0.5 * cos - 0.5 * sin * h / w],
                     [-sin * w / h, cos, 0.5 + 0.5 * sin * w / h - 0.5 * cos]])


def map_point(t: Transform, xy: XY, image_wh: tuple[int, int] = (1, 1)) -> XY | None:
    """Where normalised point ``xy`` of the original lies in the transformed image
    (normalised), or None when it leaves the frame. ``image_wh``: the image's size, which a
    rotation of a non-square image needs (its centre and aspect ratio)."""
    x, y = affine(t, image_wh) @ np.array([float(xy[0]), float(xy[1]), 1.0])
    return _inside((float(x), float(y)))


def unmap_point(t: Transform, xy: XY, image_wh: tuple[int, int] = (1, 1)) -> XY | None:
    """Inverse of :func:`map_point`: the point of the original shown at ``xy`` of the
    transformed image, or None when ``xy`` shows padding (a rotated photo's corners)."""
    x, y = float(xy[0]), float(xy[1])
    if t.kind == "flip":
        return _inside((1.0 - x, y) if t.value else (x, y))
    if t.kind == "zoom":
        u0, v0 = _zoom_origin(t)
        return _inside((u0 + x / t.value, v0 + y / t.value))
    w, h = image_wh
    px, py = _rotate_px(x * w, y * h, (w, h), -t.value)
    return _inside((px / w, py / h))


def apply_transform(image_hwc: np.ndarray, t: Transform, *, order: int = 1) -> np.ndarray:
    """``image_hwc`` (``H×W×C`` or ``H×W``, uint8 or float) transformed, same size and dtype.
    Rotation pads with zeros (black); ``order`` is the spline order (0 nearest, 1 bilinear).

    >>> grid_hw = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> apply_transform(grid_hw, Transform("rotate", 90), order=0)[0].tolist()   # top row ← right column
    [3, 7, 11, 15]
    >>> apply_transform(grid_hw, Transform("zoom", 2, (0.0, 0.0)), order=0)[:2, :2].tolist()
    [[0, 0], [0, 0]]
    """
    array = np.asarray(image_hwc)
    if array.ndim not in (2, 3) or array.shape[0] < 1 or array.shape[1] < 1:
        raise TransformError(f"expected an H×W or H×W×C image, got shape {array.shape}")
    if t.is_identity:
        return array.copy()
    if t.kind == "flip":
        return array[:, ::-1].copy()
    h, w = array.shape[:2]
    if t.kind == "rotate":
        out = rotate(array.astype(np.float64), t.value, order=order, mode="constant", cval=0.0,
                     preserve_range=True)
    else:
        u0, v0 = _zoom_origin(t)
        # output pixel centre j + .5 shows source x0 + (j + .5) / z; skimage's coordinates put pixel centres at j
        shift = (u0 * w + 0.5 / t.value - 0.5, v0 * h + 0.5 / t.value - 0.5)
        inverse = AffineTransform(scale=(1.0 / t.value, 1.0 / t.value), translation=shift)
        out = warp(array.astype(np.float64), inverse, order=order, mode="edge", preserve_range=True)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(array.dtype)
    return out.astype(array.dtype)


def valid_mask(t: Transform, image_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1]: how much of each pixel of the transformed image is the
    photo (1) rather than padding (0). Only rotations pad."""
    ones_hw = np.ones(tuple(int(v) for v in image_hw), np.float32)
    return apply_transform(ones_hw, t, order=1) if t.kind == "rotate" else ones_hw
