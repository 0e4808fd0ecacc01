"""Behaviour of featurelens.images.load_image on real photos written in many formats."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from skimage import data

from featurelens.images import (DEFAULT_MAX_PIXELS, MIN_SIDE, ImageLoadError, load_image,
                                to_rgb_array)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def chelsea_hwc_u8() -> np.ndarray:
    return data.chelsea()  # (300, 451, 3) uint8


@pytest.fixture(scope="module")
def camera_hw_u8() -> np.ndarray:
    return data.camera()  # (512, 512) uint8, spans 0..255


def _save(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but holds almost no pixel data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


# --- formats and modes ------------------------------------------------------------

def test_rgb_png_path_loads_pixel_exact(tmp_path, chelsea_hwc_u8):
    path = _save(Image.fromarray(chelsea_hwc_u8), tmp_path / "chelsea.png")
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(to_rgb_array(image), chelsea_hwc_u8)


def test_loaded_image_is_decoded_and_detached_from_its_file(tmp_path, chelsea_hwc_u8):
    path = _save(Image.fromarray(chelsea_hwc_u8), tmp_path / "chelsea.jpg", quality=95)
    image = load_image(str(path))
    path.unlink()
    assert to_rgb_array(image).shape == (300, 451, 3)


def test_16bit_png_spanning_full_range_maps_to_full_8bit_range(tmp_path, camera_hw_u8):
    camera_hw_u16 = camera_hw_u8.astype(np.uint16) * 257  # 0..65535
    path = _save(Image.fromarray(camera_hw_u16), tmp_path / "xray16.png")
    assert Image.open(path).mode == "I;16"
    rgb = to_rgb_array(load_image(path))
    assert rgb.min() == camera_hw_u8.min() and rgb.max() == camera_hw_u8.max() == 255
    np.testing.assert_array_equal(rgb[:, :, 0], camera_hw_u8)  # not saturated
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_12bit_values_in_16bit_png_fill_8bit_range_and_keep_order(tmp_path, camera_hw_u8):
    scan_hw_u16 = camera_hw_u8.astype(np.uint16) * 16  # 0..4080, a 12-bit scan
    path = _save(Image.fromarray(scan_hw_u16), tmp_path / "scan12.png")
    gray = to_rgb_array(load_image(path))[:, :, 0].astype(int)
    assert gray.max() >= 254
    assert np.abs(gray - camera_hw_u8).max() <= 1
    order = np.argsort(scan_hw_u16, axis=None, kind="stable")
    assert np.all(np.diff(gray.ravel()[order]) >= 0)


@pytest.mark.parametrize("mode", ["I;16B", "I;16"])
def test_16bit_tiff_in_either_byte_order_scales_by_bit_depth(tmp_path, camera_hw_u8, mode):
    dtype = ">u2" if mode == "I;16B" else "<u2"
    values_hw = (camera_hw_u8.astype(np.uint32) * 257).astype(dtype)
    image = Image.frombytes(mode, (512, 512), values_hw.tobytes())
    path = _save(image, tmp_path / "scan.tif")
    assert Image.open(path).mode == mode
    np.testing.assert_array_equal(to_rgb_array(load_image(path))[:, :, 1], camera_hw_u8)


def test_32bit_integer_image_with_negative_values_is_stretched(tmp_path, camera_hw_u8):
    hounsfield_hw = camera_hw_u8.astype(np.int32) * 8 - 1024  # CT-like, -1024..1016
    path = _save(Image.fromarray(hounsfield_hw), tmp_path / "ct.tif")
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(to_rgb_array(load_image(path))[:, :, 0], camera_hw_u8)


@pytest.mark.parametrize("scale", [1.0 / 255.0, 4.0])
def test_float_image_in_unit_range_or_beyond_maps_onto_8bit(tmp_path, camera_hw_u8, scale):
    values_hw = camera_hw_u8.astype(np.float32) * np.float32(scale)
    path = _save(Image.fromarray(values_hw), tmp_path / "float.tif")
    assert Image.open(path).mode == "F"
    gray = to_rgb_array(load_image(path))[:, :, 0].astype(int)
    assert np.abs(gray - camera_hw_u8).max() <= 1


def test_transparent_rgba_pixels_become_white(tmp_path, chelsea_hwc_u8):
    alpha_hw = np.full(chelsea_hwc_u8.shape[:2], 255, np.uint8)
    alpha_hw[:, :100] = 0
    alpha_hw[:, 100:200] = 128
    rgba_hwc = np.dstack([chelsea_hwc_u8, alpha_hw])
    path = _save(Image.fromarray(rgba_hwc), tmp_path / "cutout.png")
    rgb = to_rgb_array(load_image(path)).astype(int)
    assert np.all(rgb[:, :100] == 255)
    half = chelsea_hwc_u8[:, 100:200].astype(int)
    assert np.abs(rgb[:, 100:200] - (half * 128 + 255 * 127) / 255).max() <= 1
    np.testing.assert_array_equal(rgb[:, 200:], chelsea_hwc_u8[:, 200:])


def test_palette_png_with_transparent_index_loads_colours_and_white(tmp_path,
                                                                    chelsea_hwc_u8):
    palette_image = Image.fromarray(chelsea_hwc_u8).quantize(colors=32)
    index_hw = np.asarray(palette_image)
    path = _save(palette_image, tmp_path / "palette.png", transparency=0)
    assert Image.open(path).mode == "P" and (index_hw == 0).any()
    rgb = to_rgb_array(load_image(path))
    expected = np.asarray(palette_image.convert("RGB"))
    assert np.all(rgb[index_hw == 0] == 255)
    np.testing.assert_array_equal(rgb[index_hw != 0], expected[index_hw != 0])


def test_grayscale_jpeg_becomes_rgb_with_equal_channels(tmp_path, camera_hw_u8):
    path = _save(Image.fromarray(camera_hw_u8), tmp_path / "camera.jpg", quality=95)
    rgb = to_rgb_array(load_image(path))
    assert rgb.shape == (512, 512, 3)
    assert np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1],
                                                                           rgb[:, :, 2])
    assert np.abs(rgb[:, :, 0].astype(int) - camera_hw_u8).mean() < 2


def test_cmyk_jpeg_converts_back_to_rgb(tmp_path, chelsea_hwc_u8):
    cmyk = Image.fromarray(chelsea_hwc_u8).convert("CMYK")
    path = _save(cmyk, tmp_path / "print.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = to_rgb_array(load_image(path)).astype(int)
    assert np.abs(rgb - chelsea_hwc_u8).mean() < 4


def test_one_bit_png_loads_as_black_and_white(tmp_path, camera_hw_u8):
    path = _save(Image.fromarray(camera_hw_u8 > 128), tmp_path / "mask.png")
    assert Image.open(path).mode == "1"
    rgb = to_rgb_array(load_image(path))
    np.testing.assert_array_equal(rgb[:, :, 0], np.where(camera_hw_u8 > 128, 255, 0))


def test_exif_orientation_is_applied(tmp_path, chelsea_hwc_u8):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(Image.fromarray(chelsea_hwc_u8), tmp_path / "phone.jpg", quality=95,
                 exif=exif)
    rgb = to_rgb_array(load_image(path)).astype(int)
    assert rgb.shape == (451, 300, 3)
    clockwise = np.rot90(chelsea_hwc_u8, k=-1).astype(int)
    counter = np.rot90(chelsea_hwc_u8, k=1).astype(int)
    assert np.abs(rgb - clockwise).mean() < 3 < np.abs(rgb - counter).mean()


def test_multi_frame_tiff_gives_its_first_frame(tmp_path, chelsea_hwc_u8, camera_hw_u8):
    first, second = Image.fromarray(chelsea_hwc_u8), Image.fromarray(camera_hw_u8)
    path = _save(first, tmp_path / "stack.tif", save_all=True, append_images=[second])
    assert Image.open(path).n_frames == 2
    np.testing.assert_array_equal(to_rgb_array(load_image(path)), chelsea_hwc_u8)


# --- other sources --------------------------------------------------------------

def test_bytes_and_file_like_with_name_load(chelsea_hwc_u8):
    png = _encoded(Image.fromarray(chelsea_hwc_u8), "PNG")
    upload = io.BytesIO(png)
    upload.name = "cat.png"
    upload.read()  # a page read it once already; getvalue() still sees everything
    for source in (png, bytearray(png), memoryview(png), upload):
        np.testing.assert_array_equal(to_rgb_array(load_image(source)), chelsea_hwc_u8)


def test_errors_name_the_uploaded_file():
    class Upload:  # only read() and name, like a minimal upload object
        name = "holiday.jpg"

        def read(self) -> bytes:
            return b"GIF89a but not really"

    with pytest.raises(ImageLoadError, match=r"'holiday\.jpg' is not an image.*PNG or JPEG"):
        load_image(Upload())


@pytest.mark.parametrize("make, expected", [
    (lambda c: c[:, :, 0], lambda c: np.repeat(c[:, :, :1], 3, axis=2)),
    (lambda c: c[:, :, :1], lambda c: np.repeat(c[:, :, :1], 3, axis=2)),
    (lambda c: c, lambda c: c),
    (lambda c: np.dstack([c, np.full(c.shape[:2], 255, np.uint8)]), lambda c: c),
    (lambda c: c.astype(np.uint16) * 257, lambda c: c),
    (lambda c: c.astype(np.float32) / 255, lambda c: c),
])
def test_numpy_arrays_of_each_layout_and_dtype_load(chelsea_hwc_u8, make, expected):
    np.testing.assert_array_equal(to_rgb_array(load_image(make(chelsea_hwc_u8))),
                                  expected(chelsea_hwc_u8))


def test_bool_array_loads_as_black_and_white(camera_hw_u8):
    rgb = to_rgb_array(load_image(camera_hw_u8 > 100))
    assert set(np.unique(rgb).tolist()) == {0, 255}


def test_pil_images_in_any_mode_load_as_new_rgb_images(chelsea_hwc_u8):
    original = Image.fromarray(chelsea_hwc_u8)
    la = original.convert("LA")
    loaded = load_image(la)
    assert loaded.mode == "RGB" and la.mode == "LA"
    np.testing.assert_array_equal(to_rgb_array(loaded)[:, :, 0], np.asarray(la)[:, :, 0])
    assert load_image(original) is not original


@pytest.mark.parametrize("array, hint", [
    (np.zeros((3, 64, 64), np.uint8), r"channels-last"),
    (np.full((32, 32), 2.5, np.float32), r"float images must lie in \[0, 1\]"),
    (np.full((32, 32), np.nan, np.float32), r"NaN or infinite"),
])
def test_unusable_arrays_are_refused_with_a_hint(array, hint):
    with pytest.raises(ImageLoadError, match=hint):
        load_image(array)


def test_unsupported_source_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"path, bytes.*got int"):
        load_image(42)


# --- failures ----------------------------------------------------------------------

def test_truncated_jpeg_is_refused_not_half_decoded(tmp_path, chelsea_hwc_u8):
    jpeg = _encoded(Image.fromarray(chelsea_hwc_u8), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg[: len(jpeg) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ImageLoadError, match=r"cut\.jpg' could not be decoded.*truncated"
                                             r".*re-download"):
        load_image(path)


def test_text_file_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: milk, eggs\n")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg' is not an image.*save it as"):
        load_image(path)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(ImageLoadError, match=r"not found: '.*nope\.png'; check the path"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match=r"is a folder.*folder_images"):
        load_image(tmp_path)


@pytest.mark.parametrize("source", [b"", io.BytesIO(b"")])
def test_empty_data_is_refused(source):
    with pytest.raises(ImageLoadError, match=r"'upload\.png' is empty.*upload the file again"):
        load_image(source, name="upload.png")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "zero.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"zero\.png' is empty"):
        load_image(path)


def test_one_pixel_png_is_too_small(tmp_path):
    path = _save(Image.new("RGB", (1, 1), (200, 10, 10)), tmp_path / "dot.png")
    with pytest.raises(ImageLoadError,
                       match=rf"1x1 pixels, smaller than the minimum of {MIN_SIDE}"):
        load_image(path)
    assert load_image(path, min_side=1).size == (1, 1)


def test_too_many_pixels_is_refused_from_the_header_before_decoding(tmp_path,
                                                                    chelsea_hwc_u8):
    png = _encoded(Image.fromarray(chelsea_hwc_u8), "PNG")
    path = tmp_path / "big.png"
    path.write_bytes(png[: len(png) // 2])  # decoding would fail as truncated instead
    with pytest.raises(ImageLoadError, match=r"451x300 = 135,300 pixels, over the limit "
                                             r"of 10,000 pixels; resize it"):
        load_image(path, max_pixels=10_000)


@pytest.mark.parametrize("side", [10_000, 100_000])  # Pillow warns / Pillow refuses
def test_decompression_bombs_give_a_load_error_and_no_warning(side):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageLoadError, match=rf"limit of {DEFAULT_MAX_PIXELS:,} pixels"):
            load_image(_png_header_only(side, side), name="bomb.png")


def test_to_rgb_array_is_contiguous_writable_uint8(chelsea_hwc_u8):
    rgb = to_rgb_array(load_image(chelsea_hwc_u8))
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous and rgb.flags.writeable
    assert to_rgb_array(Image.new("P", (20, 20))).shape == (20, 20, 3)
    with pytest.raises(TypeError, match=r"call load_image"):
        to_rgb_array(chelsea_hwc_u8)


# --- shared real-data fixtures -----------------------------------------------------

def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared fixture data not present: {path}")
    return path


def test_single_channel_imagenet_jpeg_loads_as_rgb():
    path = _shared("imagenet-samples/n02096051_Airedale.JPEG")
    assert Image.open(path).mode == "L"
    rgb = to_rgb_array(load_image(path))
    assert rgb.shape == (256, 256, 3)
    np.testing.assert_array_equal(rgb[:, :, 0], np.asarray(Image.open(path)))
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_chest_xrays_load_with_their_grey_levels():
    folder = _shared("chestxray-nih")
    paths = sorted(folder.glob("*.png"))[:3]
    assert paths, f"no PNGs in {folder}"
    for path in paths:
        gray_hw = np.asarray(Image.open(path).convert("L"))
        rgb = to_rgb_array(load_image(path))
        np.testing.assert_array_equal(rgb[:, :, 1], gray_hw)
