"""Robust image loading: anything a user can hand us becomes one RGB image.

:func:`load_image` accepts a path, raw bytes, a binary file-like (such as
Streamlit's ``UploadedFile``), a numpy array or a PIL image, and returns a fully
decoded ``RGB`` :class:`PIL.Image.Image`. Every failure (missing file, not an
image, truncated data, too small, too large) is an :class:`ImageLoadError` whose
message names the source and says what to do next; raw PIL/OS tracebacks never
reach the caller.

Conversion rules, in one place:

* alpha (``RGBA``, ``LA``, palette with transparency) is composited over white;
* high-bit-depth integers (``I;16``, ``I;16B``, ``I``, uint16 arrays) are divided
  by ``2**bits - 1``, where ``bits`` is the smallest depth of at least 8 that holds
  the image's maximum, so 16-bit data spanning 0..65535 maps onto 0..255 and 12-bit
  scans (0..4095) also fill the 8-bit range, with ordering kept; integer data with
  negative values is stretched from its minimum to its maximum instead;
* floats (``F``) in [0, 1] are scaled by 255; ``F`` images outside [0, 1] are
  stretched min..max (float *arrays* must lie in [0, 1]);
* EXIF orientation is applied, and a multi-frame file gives its first frame.

>>> import numpy as np
>>> load_image(np.zeros((32, 48), np.uint8)).size
(48, 32)
>>> to_rgb_array(load_image(np.ones((20, 30, 4), np.float32))).shape
(20, 30, 3)
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage.exposure import rescale_intensity

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "ImageLoadError",
    "to_rgb_image",
    "ImageSource",
    "load_image",
    "to_rgb_array",
    "DISPLAY_PX",
    "display_image",
]

DISPLAY_PX: int = 512
"""Longest side of the photos the app draws overlays on."""

DEFAULT_MAX_PIXELS: int = 50_000_000
"""Largest accepted ``width * height``; checked from the header before decoding."""

MIN_SIDE: int = 16
"""Smallest accepted width or height in pixels."""

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO,
                    np.ndarray, Image.Image]
"""Everything :func:`load_image` accepts."""

_WHITE_RGBA = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError,
                  TypeError, MemoryError, Image.DecompressionBombError)


class ImageLoadError(ValueError):
    """An image could not be loaded; the message names the source and the fix."""


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               min_side: int = MIN_SIDE, name: str | None = None) -> Image.Image:
    """Load ``source`` as a fully decoded ``RGB`` PIL image (``H x W``, 8 bit).

    Args:
        source: a path (``str``/``Path``), encoded bytes, a binary file-like with
            ``.read()`` (e.g. Streamlit's ``UploadedFile``), a numpy array
            ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``
            of uint8/uint16/other integers, bool, or float in [0, 1], or a PIL image
            (its current frame is used; a new image is returned, the input is not changed).
        max_pixels: the largest ``width * height`` accepted. File headers are
            checked before any pixel is decoded.
        min_side: the smallest width or height accepted.
        name: how to call the source in error messages (defaults to the path,
            the file-like's ``.name``, or a description of the object).

    Returns:
        A new ``RGB`` image that owns its pixels (no open file behind it).

    Raises:
        ImageLoadError: the source is missing, empty, not an image, truncated,
            smaller than ``min_side`` or larger than ``max_pixels``.
        TypeError: ``source`` is none of the accepted types.

    >>> load_image(b"", name="cat.jpg")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    featurelens.images.loading.ImageLoadError: 'cat.jpg' is empty (0 bytes): ...; upload the file again...
    """
    label = repr(name) if name else _describe(source)
    if isinstance(source, Image.Image):
        return _finish(source, label, max_pixels, min_side)
    if isinstance(source, np.ndarray):
        return _from_array(source, label, max_pixels, min_side)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(source), label, max_pixels, min_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), label, max_pixels, min_side)
    if hasattr(source, "read"):
        return _from_bytes(_read_all(source, label), label, max_pixels, min_side)
    raise TypeError(
        f"load_image expected a path, bytes, a binary file-like, a numpy array or a "
        f"PIL image, got {type(source).__name__}")


def to_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image of any mode or from an array (``image_hwc_u8``,
    grayscale, 16-bit, float …), by the same conversion rules as :func:`load_image`.

    >>> to_rgb_image(np.full((2, 3), 65535, np.uint16)).getpixel((0, 0))
    (255, 255, 255)
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else _to_rgb(image, "the image")
    return load_image(image, min_side=1)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """PIL image → ``image_hwc_u8``: a writable, C-contiguous ``(H, W, 3)`` uint8 array.

    Non-RGB images go through the same conversion rules as :func:`load_image`.

    >>> to_rgb_array(Image.new("L", (4, 2), 7))[0, 0].tolist()
    [7, 7, 7]
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"to_rgb_array expected a PIL image, got {type(image).__name__}; "
                        f"call load_image(...) first")
    rgb = image if image.mode == "RGB" else _to_rgb(image, "the image")
    image_hwc_u8 = np.array(rgb, dtype=np.uint8, copy=True, order="C")
    return image_hwc_u8


def display_image(image: Image.Image | np.ndarray, max_side: int = DISPLAY_PX) -> np.ndarray:
    """``image_hwc_u8`` in the image's own aspect ratio, shrunk (bicubic) so its longest side is
    at most ``max_side``; smaller images keep their size.

    >>> display_image(np.zeros((300, 900, 3), np.uint8), 512).shape
    (171, 512, 3)
    """
    pil = to_rgb_image(image)
    if max(pil.size) > max_side:
        pil = ImageOps.contain(pil, (max_side, max_side), Image.BICUBIC)
    return np.asarray(pil)


# --- sources ------------------------------------------------------------------

def _describe(source: object) -> str:
    """A short human label for error messages (file names come quoted)."""
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return repr(file_name)
    if isinstance(source, np.ndarray):
        return f"the array of shape {source.shape} ({source.dtype})"
    if isinstance(source, Image.Image):
        return f"the {source.mode} PIL image of size {source.width}x{source.height}"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"the image data ({len(source):,} bytes)"
    return f"the {type(source).__name__} object"


def _read_all(file: BinaryIO, label: str) -> bytes:
    """Every byte of a binary file-like (``getvalue()`` when it has one, so a
    previous read does not leave us at the end)."""
    try:
        data = file.getvalue() if hasattr(file, "getvalue") else file.read()
    except OSError as exc:
        raise ImageLoadError(f"could not read {label}: {exc}; check that the file is "
                             f"still open and readable") from exc
    if isinstance(data, str):
        raise ImageLoadError(f"{label} was opened in text mode; open it with 'rb' "
                             f"(binary) and try again")
    return bytes(data)


def _from_path(path: Path, label: str, max_pixels: int, min_side: int) -> Image.Image:
    """Decode the image file at ``path``."""
    if not path.exists():
        raise ImageLoadError(f"image file not found: {label}; check the path "
                             f"(relative paths start at {Path.cwd()})")
    if path.is_dir():
        raise ImageLoadError(f"{label} is a folder, not an image file; pass one file "
                             f"or use featurelens.images.folder_images for folders")
    if path.stat().st_size == 0:
        raise ImageLoadError(_empty_message(label))
    try:
        with open(path, "rb") as file:
            return _decode(file, label, max_pixels, min_side)
    except PermissionError as exc:
        raise ImageLoadError(f"no permission to read {label}; check the file's "
                             f"permissions") from exc


def _from_bytes(data: bytes, label: str, max_pixels: int, min_side: int) -> Image.Image:
    """Decode encoded image bytes."""
    if not data:
        raise ImageLoadError(_empty_message(label))
    return _decode(io.BytesIO(data), label, max_pixels, min_side)


def _empty_message(label: str) -> str:
    return (f"{label} is empty (0 bytes): the upload or download did not complete; "
            f"upload the file again or pick another one.")


def _decode(file: BinaryIO, label: str, max_pixels: int, min_side: int) -> Image.Image:
    """Open (header only), check the size, then decode ``file`` to RGB.

    Pillow's own bomb *warning* is silenced because ``max_pixels`` is checked on the
    header before decoding; its bomb *error* (over twice ``Image.MAX_IMAGE_PIXELS``)
    becomes an :class:`ImageLoadError`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(file)
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(_bomb_message(label, max_pixels, exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageLoadError(
                f"{label} is not an image Pillow can read (unknown or corrupt format); "
                f"save it as PNG or JPEG and try again") from exc
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(_corrupt_message(label, exc)) from exc
        with opened:
            return _finish(opened, label, max_pixels, min_side)


def _bomb_message(label: str, max_pixels: int, exc: Exception) -> str:
    """Message for Pillow's hard decompression-bomb limit (hit before our header check)."""
    return (f"{label} is too large to open safely ({exc}); resize it below the limit of "
            f"{max_pixels:,} pixels first")


def _corrupt_message(label: str, exc: Exception) -> str:
    return (f"{label} could not be decoded, the file is truncated or corrupt "
            f"({type(exc).__name__}: {exc}); re-export or re-download it and try again")


# --- checks and decoding --------------------------------------------------------

def _check_size(width: int, height: int, label: str, max_pixels: int,
                min_side: int) -> None:
    """Refuse images outside ``min_side`` .. ``max_pixels`` (uses header sizes only)."""
    if width < min_side or height < min_side:
        raise ImageLoadError(
            f"{label} is {width}x{height} pixels, smaller than the minimum of "
            f"{min_side} pixels per side; use a larger image")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{label} is {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,} pixels; resize it first")


def _finish(image: Image.Image, label: str, max_pixels: int,
            min_side: int) -> Image.Image:
    """Size check, decode, EXIF-orient and convert one PIL image to a new RGB image."""
    _check_size(image.width, image.height, label, max_pixels, min_side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image.load()
            oriented = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(_bomb_message(label, max_pixels, exc)) from exc
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(_corrupt_message(label, exc)) from exc
    rgb = _to_rgb(oriented, label)
    return rgb if rgb is not image else rgb.copy()


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    """Any PIL mode → ``RGB`` by the module's rules (alpha over white, bit-depth
    scaling for 16/32-bit and float modes)."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        gray_hw_u8 = _scale_to_u8(np.asarray(image), label, strict_float=False)
        return Image.fromarray(gray_hw_u8).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _over_white(image.convert("RGBA"))
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageLoadError(f"{label} uses the image mode {mode!r}, which cannot be "
                             f"converted to RGB; save it as an RGB PNG or JPEG") from exc


def _over_white(rgba: Image.Image) -> Image.Image:
    """Composite an ``RGBA`` image over an opaque white background → ``RGB``."""
    background = Image.new("RGBA", rgba.size, _WHITE_RGBA)
    return Image.alpha_composite(background, rgba).convert("RGB")


# --- numpy arrays -----------------------------------------------------------------

def _from_array(array: np.ndarray, label: str, max_pixels: int,
                min_side: int) -> Image.Image:
    """``(H, W)`` or ``(H, W, C)`` array with ``C`` in 1..4 → RGB image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageLoadError(
            f"{label} is not an image array: expected (H, W) or (H, W, C) with C in "
            f"1..4 (channels last); a channels-first (C, H, W) array must be converted "
            f"to channels-last first")
    _check_size(array.shape[1], array.shape[0], label, max_pixels, min_side)
    pixels_u8 = _scale_to_u8(array, label, strict_float=True)
    image = Image.fromarray(np.ascontiguousarray(pixels_u8))
    return _to_rgb(image, label)


def _scale_to_u8(values: np.ndarray, label: str, *, strict_float: bool) -> np.ndarray:
    """Any-dtype pixel array (any shape) → uint8 of the same shape.

    bool → {0, 255}; uint8 unchanged; other integers ≥ 0 divided by
    ``2**bits - 1`` (``bits`` ≥ 8 just holds the max); negative integers and
    out-of-[0, 1] floats (when not ``strict_float``) stretched min..max.
    """
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(values.dtype, np.integer):
        return _scale_integers(values)
    if np.issubdtype(values.dtype, np.floating):
        return _scale_floats(values.astype(np.float64), label, strict_float)
    raise ImageLoadError(f"{label} has dtype {values.dtype}, which is not an image "
                         f"dtype; use uint8, uint16, bool or float in [0, 1]")


def _scale_integers(values: np.ndarray) -> np.ndarray:
    """Integer pixels → uint8 by bit depth (or min..max when negatives exist)."""
    low, high = int(values.min()), int(values.max())
    if low < 0:
        return _stretch(values.astype(np.float64), float(low), float(high))
    bits = max(8, high.bit_length())
    scaled = values.astype(np.float64) * (255.0 / float(2**bits - 1))
    return np.rint(scaled).astype(np.uint8)


def _scale_floats(values: np.ndarray, label: str, strict: bool) -> np.ndarray:
    """Float pixels in [0, 1] → uint8; outside [0, 1]: stretched, or refused if strict."""
    if not np.all(np.isfinite(values)):
        raise ImageLoadError(f"{label} contains NaN or infinite values; replace them "
                             f"(e.g. np.nan_to_num) before loading")
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return np.rint(values * 255.0).astype(np.uint8)
    if strict:
        raise ImageLoadError(f"{label} has float values in [{low:g}, {high:g}], but float "
                             f"images must lie in [0, 1]; divide by the maximum or pass "
                             f"uint8 values")
    return _stretch(values, low, high)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linearly map ``low..high`` onto 0..255 (a constant image becomes 0)."""
    if high - low == 0.0:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint(rescale_intensity(values, in_range=(low, high), out_range=(0.0, 255.0))).astype(np.uint8)
