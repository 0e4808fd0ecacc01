"""Compositing: similarity maps → coloured heat maps over the photo.

Pure numpy (matplotlib is used once per colormap, to build a ``(256, 3)`` uint8 lookup
table; no figures). A 224x224 overlay renders in about a millisecond, so a page can redraw
on every hover.

Pipeline of :func:`render_overlay`:

1. a colour scale maps the float ``sim_hw`` to [0, 1] — ``adaptive`` stretches the values
   shown (IFeaLiD), ``fixed`` uses a given range such as the metric's natural range, so
   the same value has the same colour in every image and layer (ISO);
2. the map is upsampled to the image size — ``nearest`` keeps each feature cell a clean
   block, which shows the layer's true resolution;
3. colours come from a perceptual colormap and are alpha-blended over the photo, which is
   shown in grayscale by default so its colours do not compete with the heat map;
4. optional rings mark the reference (white) and a pinned location (orange).

>>> image_hwc_u8 = np.full((8, 8, 3), 200, np.uint8)
>>> sim_hw = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
>>> out_hwc_u8 = render_overlay(image_hwc_u8, sim_hw, opacity=1.0)
>>> out_hwc_u8.shape, out_hwc_u8.dtype
((8, 8, 3), dtype('uint8'))
>>> bool((out_hwc_u8[:4, :4] == colormap_lut("magma")[0]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Literal

import numpy as np
from PIL import Image, ImageDraw
from skimage.exposure import rescale_intensity

__all__ = [
    "ColorScale",
    "COLOR_SCALES",
    "get_color_scale",
    "scale_range",
    "shared_range",
    "normalize_map",
    "Colormap",
    "COLORMAPS",
    "colormap_lut",
    "colormap_stops",
    "colorbar_image",
    "UPSAMPLE_MODES",
    "upsample_map",
    "base_image",
    "blend",
    "draw_ring",
    "MARKER_COLORS",
    "PIN_RING_SCALE",
    "render_overlay",
    "render_channel",
]

Range = tuple[float, float]
BaseMode = Literal["gray", "color"]
UpsampleMode = Literal["nearest", "bilinear"]


# --------------------------------------------------------------------------- colour scales


def _adaptive_range(map_hw: np.ndarray, value_range: Range | None) -> Range:
    if value_range is not None:  # a shared adaptive range, e.g. from shared_range()
        return float(value_range[0]), float(value_range[1])
    return float(map_hw.min()), float(map_hw.max())


def _fixed_range(map_hw: np.ndarray, value_range: Range | None) -> Range:
    if value_range is None:
        raise ValueError(
            "the 'fixed' colour scale needs value_range=(lo, hi): pass get_metric(key).value_range for a "
            "bounded metric, or shared_range(maps) for an unbounded one"
        )
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must have lo < hi; got {value_range}")
    return lo, hi


@dataclass(frozen=True)
class ColorScale:
    """How float values become positions on the colormap.

    ``data_dependent``: the range follows the values shown. ``needs_value_range``: the
    caller must pass ``value_range``. ``range_fn(map_hw, value_range) -> (lo, hi)``.
    """

    key: str
    display_name: str
    description: str
    data_dependent: bool
    needs_value_range: bool
    range_fn: Callable[[np.ndarray, Range | None], Range]


COLOR_SCALES: dict[str, ColorScale] = {s.key: s for s in (
    ColorScale("adaptive", "Adaptive (stretch to view)",
               "Lowest shown value is dark, highest is bright (IFeaLiD): maximum contrast, "
               "but colours are not comparable between views.", True, False, _adaptive_range),
    ColorScale("fixed", "Fixed (metric range)",
               "Colours follow a fixed range such as the metric's natural range (ISO): the same "
               "value has the same colour in every image and layer.", False, True, _fixed_range),
)}


def get_color_scale(key: str | ColorScale) -> ColorScale:
    """The registered :class:`ColorScale` named ``key``.

    >>> get_color_scale("fixed").needs_value_range
    True
    """
    if isinstance(key, ColorScale):
        return key
    if key not in COLOR_SCALES:
        raise KeyError(f"unknown colour scale {key!r}; choose one of {list(COLOR_SCALES)}")
    return COLOR_SCALES[key]


def _check_finite(map_hw: np.ndarray) -> None:
    if not np.isfinite(map_hw).all():
        raise ValueError("the map contains NaN or inf; compute it with featurelens.similarity, whose metrics "
                         "always return finite values")


def scale_range(map_hw: Any, scale: str = "adaptive", value_range: Range | None = None) -> Range:
    """The ``(lo, hi)`` that ``scale`` maps to the ends of the colormap (for a legend).

    >>> scale_range(np.array([[0.25, 0.75]]))
    (0.25, 0.75)
    >>> scale_range(np.array([[0.2, 0.6]]), "fixed", (-1, 1))
    (-1.0, 1.0)
    """
    map_arr = np.asarray(map_hw, dtype=np.float32)
    _check_finite(map_arr)
    return get_color_scale(scale).range_fn(map_arr, value_range)


def shared_range(maps: Iterable[Any]) -> Range:
    """One ``(min, max)`` over several maps, so an adaptive scale can be shared by many
    images (pass it as ``value_range``).

    >>> shared_range([np.array([[0.0, 2.0]]), np.array([[-1.0]])])
    (-1.0, 2.0)
    """
    bounds = [(float(np.min(m)), float(np.max(m))) for m in maps]
    if not bounds:
        raise ValueError("shared_range needs at least one map")
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def normalize_map(sim_hw: Any, scale: str = "adaptive", value_range: Range | None = None) -> np.ndarray:
    """Map values to float32 [0, 1] with a colour scale; values outside the range are clipped.

    A constant map (``lo == hi``) has no contrast to show and becomes 0.5 everywhere.

    >>> normalize_map(np.array([[1.0, 3.0, 2.0]]))
    array([[0. , 1. , 0.5]], dtype=float32)
    >>> normalize_map(np.array([[0.0, 0.5]]), "fixed", (-1.0, 1.0))
    array([[0.5 , 0.75]], dtype=float32)
    >>> normalize_map(np.full((1, 2), 7.0))
    array([[0.5, 0.5]], dtype=float32)
    """
    map_arr = np.asarray(sim_hw, dtype=np.float32)
    lo, hi = scale_range(map_arr, scale, value_range)
    if not hi - lo > 1e-12:
        return np.full(map_arr.shape, 0.5, np.float32)
    return rescale_intensity(map_arr, in_range=(lo, hi), out_range=(0.0, 1.0)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- colormaps


@dataclass(frozen=True)
class Colormap:
    """A colormap offered to users. ``perceptually_uniform``: equal value steps look equally
    different (turbo is not, but has more distinct hues)."""

    key: str
    display_name: str
    perceptually_uniform: bool


COLORMAPS: dict[str, Colormap] = {c.key: c for c in (
    Colormap("magma", "Magma", True),
    Colormap("viridis", "Viridis", True),
    Colormap("inferno", "Inferno", True),
    Colormap("cividis", "Cividis (colour-blind safe)", True),
    Colormap("turbo", "Turbo (rainbow)", False),
)}


@lru_cache(maxsize=None)
def _lut(cmap: str) -> np.ndarray:
    from matplotlib import colormaps  # no pyplot: no figures, no backend

    lut = np.round(colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colormap_lut(cmap: str = "magma") -> np.ndarray:
    """Read-only ``(256, 3)`` uint8 lookup table of a registered colormap.

    >>> colormap_lut("viridis").shape
    (256, 3)
    """
    if cmap not in COLORMAPS:
        raise KeyError(f"unknown colormap {cmap!r}; choose one of {list(COLORMAPS)}")
    return _lut(cmap)


def colormap_stops(cmap: str = "magma", n: int = 5) -> list[tuple[float, str]]:
    """``n`` evenly spaced ``(position, '#rrggbb')`` stops, e.g. for a CSS gradient legend.

    >>> colormap_stops("viridis", 2)
    [(0.0, '#440154'), (1.0, '#fde725')]
    """
    if n < 2:
        raise ValueError(f"need at least 2 stops; got n={n}")
    lut = colormap_lut(cmap)
    positions = np.linspace(0.0, 1.0, n)
    return [(float(p), "#%02x%02x%02x" % tuple(lut[int(round(p * 255))])) for p in positions]


def colorbar_image(cmap: str = "magma", lo: float = 0.0, hi: float = 1.0, height: int = 256, width: int = 16,
                   *, full_range: Range | None = None,
                   background: tuple[int, int, int] = (48, 48, 48)) -> np.ndarray:
    """A vertical legend ``(height, width, 3)`` uint8, high values at the top.

    Without ``full_range`` the whole bar runs from ``lo`` (bottom) to ``hi`` (top). With
    ``full_range=(a, b)`` the bar spans ``a..b`` and only the ``lo..hi`` band is coloured,
    which shows how far an adaptive scale stretched (as IFeaLiD's legend does).

    >>> bar = colorbar_image("magma", 0.0, 1.0, height=4, width=2, full_range=(-1.0, 1.0))
    >>> bar.shape, bool((bar[-1] == 48).all()), bool((bar[0, 0] == colormap_lut("magma")[255]).all())
    ((4, 2, 3), True, True)
    """
    lut = colormap_lut(cmap)
    top, bottom = (hi, lo) if full_range is None else (full_range[1], full_range[0])
    values_h = np.linspace(top, bottom, height, dtype=np.float64)
    span = hi - lo
    pos_h = np.full(height, 0.5) if span <= 0 else (values_h - lo) / span
    inside_h = (values_h >= min(lo, hi) - 1e-9) & (values_h <= max(lo, hi) + 1e-9)
    rows_h3 = lut[np.clip(np.round(pos_h * 255), 0, 255).astype(np.uint8)]
    rows_h3[~inside_h] = background
    return np.ascontiguousarray(np.broadcast_to(rows_h3[:, None, :], (height, width, 3)))


# --------------------------------------------------------------------------- upsampling


UPSAMPLE_MODES: dict[str, str] = {
    "nearest": "Blocks: each feature cell becomes a clean square, showing the layer's true resolution.",
    "bilinear": "Smooth: interpolates between cell centres (align_corners=False); prettier, less honest.",
}


@lru_cache(maxsize=64)
def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel (by pixel centre); integer ratios give equal blocks."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp), n_in - 1)


@lru_cache(maxsize=64)
def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel: the two source indices and the weight of the second, with
    align_corners=False semantics."""
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _bilinear(map_hw: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    # gathers and element-wise blends only: a BLAS matmul of these tiny matrices is slower
    # than this when the BLAS thread pool competes with other work on a small machine
    r0, r1, wr = _bilinear_taps(map_hw.shape[0], out_h)
    c0, c1, wc = _bilinear_taps(map_hw.shape[1], out_w)
    rows = map_hw[r0] * (1.0 - wr)[:, None] + map_hw[r1] * wr[:, None]
    return rows[:, c0] * (1.0 - wc) + rows[:, c1] * wc


def upsample_map(map_hw: Any, size_hw: tuple[int, int], mode: UpsampleMode = "nearest") -> np.ndarray:
    """Resize a float ``(h, w)`` map to ``size_hw`` → float32 ``(H, W)``.

    ``nearest`` turns each cell into a block; ``bilinear`` matches
    ``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)``.

    >>> upsample_map(np.array([[0.0, 1.0]]), (2, 4))
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.]], dtype=float32)
    >>> upsample_map(np.array([[0.0, 1.0]]), (1, 4), "bilinear")
    array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
    """
    map_arr = np.asarray(map_hw, dtype=np.float32)
    if map_arr.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) map; got shape {map_arr.shape}. Index the image first.")
    out_h, out_w = int(size_hw[0]), int(size_hw[1])
    if mode == "nearest":
        return map_arr[_nearest_index(map_arr.shape[0], out_h)[:, None], _nearest_index(map_arr.shape[1], out_w)]
    if mode == "bilinear":
        return _bilinear(map_arr, out_h, out_w)
    raise ValueError(f"unknown upsample mode {mode!r}; choose one of {list(UPSAMPLE_MODES)}")


# --------------------------------------------------------------------------- compositing


MARKER_COLORS: dict[str, tuple[int, int, int]] = {"reference": (255, 255, 255), "pinned": (255, 140, 0)}
PIN_RING_SCALE = 1.6  # the pinned ring is wider, so it shows when pinned at the reference itself


def _check_image(image_hwc_u8: Any) -> np.ndarray:
    image = np.asarray(image_hwc_u8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB image (H, W, 3) uint8; got shape {image.shape} dtype {image.dtype}. "
                         "Convert with np.asarray(PIL.Image.open(path).convert('RGB')).")
    return image


def base_image(image_hwc_u8: Any, base: BaseMode = "gray") -> np.ndarray:
    """The photo under the heat map: ``gray`` → uint8 ``(H, W, 1)`` luma (ITU-R 601, as Pillow's
    ``convert("L")``; broadcasts over RGB), ``color`` → the image itself ``(H, W, 3)``.

    >>> base_image(np.array([[[255, 0, 0]]], np.uint8))[0, 0]
    array([76], dtype=uint8)
    """
    image = _check_image(image_hwc_u8)
    if base == "color":
        return image
    if base != "gray":
        raise ValueError(f"unknown base {base!r}; use 'gray' (default, colours do not interfere) or 'color'")
    return np.asarray(Image.fromarray(image).convert("L"))[..., None]


def _rgb_image(pixels_hwc_u8: np.ndarray) -> Image.Image:
    """An RGB PIL image from ``(H, W, 3)`` or gray ``(H, W, 1)`` uint8 pixels."""
    if pixels_hwc_u8.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(pixels_hwc_u8[..., 0])).convert("RGB")
    return Image.fromarray(np.ascontiguousarray(pixels_hwc_u8))


def blend(base_hwc_u8: np.ndarray, layer_hwc_u8: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """``base·(1 − α) + layer·α`` → uint8 ``(H, W, 3)`` (Pillow's ``Image.blend``, or
    ``Image.composite`` for a per-pixel α quantised to 1/255).

    ``alpha`` is a number or an ``(H, W)`` array in [0, 1]; α = 0 returns the base exactly,
    α = 1 the layer. ``base_hwc_u8`` may be gray ``(H, W, 1)``.

    >>> blend(np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 200, np.uint8), 0.5)[0, 0]
    array([100, 100, 100], dtype=uint8)
    """
    alpha_arr = np.asarray(alpha, dtype=np.float32)
    if alpha_arr.size and (alpha_arr.min() < 0 or alpha_arr.max() > 1):
        raise ValueError(f"opacity must lie in [0, 1]; got {alpha if alpha_arr.ndim == 0 else 'an array outside it'}")
    return np.array(_blend_image(base_hwc_u8, layer_hwc_u8, alpha_arr))


def _blend_image(base_hwc_u8: np.ndarray, layer_hwc_u8: np.ndarray, alpha_arr: np.ndarray) -> Image.Image:
    base, layer = _rgb_image(base_hwc_u8), _rgb_image(layer_hwc_u8)
    if alpha_arr.ndim == 0:
        return Image.blend(base, layer, float(alpha_arr))
    return Image.composite(layer, base, Image.fromarray(np.rint(alpha_arr * 255).astype(np.uint8)))


def draw_ring(out_hwc_u8: np.ndarray, xy: tuple[float, float], color: tuple[int, int, int], radius: float) -> None:
    """In place: a 2 px ring of ``color`` with a 1 px dark outline on each side, centred at
    continuous pixel coordinates ``xy`` (pixel ``(i, j)`` has its centre at ``(j + .5, i + .5)``).

    >>> image = np.zeros((32, 32, 3), np.uint8); draw_ring(image, (16, 16), (255, 255, 255), 6)
    >>> image[16, 22].tolist(), image[16, 16].tolist()
    ([255, 255, 255], [0, 0, 0])
    """
    _check_marker(xy, out_hwc_u8.shape[:2])
    canvas = Image.fromarray(out_hwc_u8)
    _ring(ImageDraw.Draw(canvas), xy, color, radius)
    out_hwc_u8[...] = np.asarray(canvas)


def _check_marker(xy: tuple[float, float], size_hw: tuple[int, ...]) -> None:
    height, width = size_hw[:2]
    x, y = float(xy[0]), float(xy[1])
    if not (0 <= x <= width and 0 <= y <= height):
        raise ValueError(f"marker (x={x:g}, y={y:g}) lies outside the {width}x{height} image; "
                         "place it with cell_center_px() on the displayed image size")


def _ring(draw: ImageDraw.ImageDraw, xy: tuple[float, float], color: tuple[int, int, int], radius: float) -> None:
    # Pillow's ellipse box spans pixel indices x0..x1 inclusive; continuous point x sits at index x - 0.5,
    # so a ring of outer radius R around it has the box x - 0.5 ± (R - 0.5)
    for outer, width, fill in ((radius + 2, 4, (0, 0, 0)), (radius + 1, 2, tuple(color))):
        half = outer - 0.5
        draw.ellipse((xy[0] - 0.5 - half, xy[1] - 0.5 - half, xy[0] - 0.5 + half, xy[1] - 0.5 + half),
                     outline=fill, width=width)


@lru_cache(maxsize=None)
def _lut_packed(cmap: str) -> np.ndarray:
    """The LUT as ``(256,)`` uint32 (RGB + a zero byte): one gather per pixel instead of three."""
    lut4 = np.zeros((256, 4), np.uint8)
    lut4[:, :3] = colormap_lut(cmap)
    return lut4.view(np.uint32).ravel()


def _heat_image(sim_hw: np.ndarray, size_hw: tuple[int, int], scale: str, value_range: Range | None,
                cmap: str, upsample: UpsampleMode) -> Image.Image:
    """Colour the normalised map and bring it to ``size_hw`` → an ``RGBX`` PIL image that shares
    the packed colour buffer (no copy)."""
    lut_256 = _lut_packed(cmap) if cmap in COLORMAPS else colormap_lut(cmap)  # the latter raises
    norm_hw = normalize_map(sim_hw, scale, value_range)
    if norm_hw.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) map; got shape {norm_hw.shape}. Index the image first.")
    if upsample == "nearest":  # colour the small grid, then repeat colours: cheapest
        packed_hw = lut_256[(norm_hw * 255 + 0.5).astype(np.uint8)]
        packed_hw = packed_hw.take(_nearest_index(norm_hw.shape[0], size_hw[0]), axis=0)
        packed_hw = packed_hw.take(_nearest_index(norm_hw.shape[1], size_hw[1]), axis=1)
    else:
        up_hw = upsample_map(norm_hw, size_hw, upsample)
        packed_hw = lut_256.take((np.clip(up_hw, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    packed_hw = np.ascontiguousarray(packed_hw)
    return Image.frombuffer("RGBX", (size_hw[1], size_hw[0]), packed_hw, "raw", "RGBX", 0, 1)


def _photo_image(image_hwc_u8: np.ndarray, base: BaseMode) -> Image.Image:
    """The photo under the heat map as an ``RGBX`` PIL image (gray by default)."""
    if base not in ("gray", "color"):
        raise ValueError(f"unknown base {base!r}; use 'gray' (default, colours do not interfere) or 'color'")
    photo = Image.fromarray(image_hwc_u8)
    return (photo.convert("L") if base == "gray" else photo).convert("RGBX")


def render_overlay(image_hwc_u8: Any, sim_hw: Any, *, scale: str = "adaptive", value_range: Range | None = None,
                   cmap: str = "magma", opacity: float = 0.6, base: BaseMode = "gray",
                   upsample: UpsampleMode = "nearest", marker_xy: tuple[float, float] | None = None,
                   pin_xy: tuple[float, float] | None = None, marker_radius: float | None = None) -> np.ndarray:
    """Heat map of ``sim_hw`` (float ``(h, w)``, any grid) over the photo → uint8 ``(H, W, 3)``.

    ``scale``/``value_range``: see :func:`normalize_map`. ``opacity`` in [0, 1] (0 shows only
    the base). ``base``: ``gray`` (default) or ``color``. ``marker_xy`` / ``pin_xy``: pixel
    coordinates of the reference (white ring) and a pinned location (orange ring).
    ``marker_radius`` defaults to 3% of the shorter side (at least 4 px).

    >>> out = render_overlay(np.zeros((32, 32, 3), np.uint8), np.eye(4), opacity=0.0, marker_xy=(16, 16))
    >>> out[16, 16].tolist(), out[16, 20].tolist()
    ([0, 0, 0], [255, 255, 255])
    """
    image = _check_image(image_hwc_u8)
    return _render_on(_photo_image(image, base), sim_hw, scale=scale, value_range=value_range, cmap=cmap,
                      opacity=opacity, upsample=upsample, marker_xy=marker_xy, pin_xy=pin_xy,
                      marker_radius=marker_radius)


def _render_on(photo: Image.Image, sim_hw: Any, *, scale: str, value_range: Range | None, cmap: str,
               opacity: float, upsample: UpsampleMode, marker_xy: tuple[float, float] | None,
               pin_xy: tuple[float, float] | None, marker_radius: float | None) -> np.ndarray:
    """:func:`render_overlay` on a photo already made by :func:`_photo_image`: views of one
    photo (several layers) convert it once, not once per view."""
    size_hw = (photo.height, photo.width)
    heat = _heat_image(np.asarray(sim_hw), size_hw, scale, value_range, cmap, upsample)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1]; got {opacity}")
    canvas = Image.blend(photo, heat, float(opacity))
    radius = marker_radius if marker_radius is not None else max(4.0, round(0.03 * min(size_hw)))
    draw = ImageDraw.Draw(canvas)
    for xy, color, ring_radius in ((pin_xy, MARKER_COLORS["pinned"], radius * PIN_RING_SCALE),
                                   (marker_xy, MARKER_COLORS["reference"], radius)):
        if xy is not None:
            _check_marker(xy, size_hw)
            _ring(draw, xy, color, ring_radius)
    return np.array(canvas.convert("RGB"))


def render_channel(image_hwc_u8: Any, channel_hw: Any, **kwargs: Any) -> np.ndarray:
    """One feature channel (from ``similarity.channel_map``) over the photo: IFeaLiD's channel
    view. Same keywords and defaults as :func:`render_overlay` (adaptive scale).

    >>> render_channel(np.zeros((4, 4, 3), np.uint8), np.ones((2, 2))).shape
    (4, 4, 3)
    """
    return render_overlay(image_hwc_u8, channel_hw, **kwargs)
