"""The image pipeline on inputs made here with Pillow: what it refuses and what it strips."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import struct
import zlib
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, ImageFile, features

from media_service.adapters.images import ProcessedPhoto, process
from media_service.domain.errors import MediaError
from media_service.domain.photo_rules import (
    JPEG_MAGIC,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    PNG_MAGIC,
)

pytestmark = pytest.mark.unit


def photo(size: tuple[int, int] = (1000, 800), mode: str = "RGB") -> Image.Image:
    """A photographic-ish test image: a gradient with noise, so JPEG cannot shrink it to nothing."""
    grey = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    rgb = Image.merge("RGB", (grey, noise, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return rgb if mode == "RGB" else rgb.convert(mode)


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_bit_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any declared size, built row by row without allocating the pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then zero bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return PNG_MAGIC + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its SOF0 header patched to declare another size."""
    sof = data.index(b"\xff\xc0")
    # marker(2) length(2) precision(1) height(2) width(2)
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def refused(data: bytes) -> MediaError:
    with pytest.raises(MediaError) as caught:
        process(data)
    return caught.value


# --- refusals ---------------------------------------------------------------------------------


def test_empty_file_is_refused() -> None:
    error = refused(b"")
    assert error.code == "media.empty"


def test_one_byte_over_three_megabytes_is_refused_as_too_large() -> None:
    error = refused(JPEG_MAGIC + bytes(MAX_UPLOAD_BYTES + 1 - len(JPEG_MAGIC)))
    assert (error.code, error.status) == ("media.too_large", 413)


def test_exactly_three_megabytes_is_not_too_large() -> None:
    error = refused(JPEG_MAGIC + bytes(MAX_UPLOAD_BYTES - len(JPEG_MAGIC)))
    assert error.code == "media.corrupt"


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(photo())
    error = refused(data[: len(data) // 2])
    assert (error.code, error.status) == ("media.corrupt", 422)


def test_truncated_png_is_corrupt() -> None:
    data = encode(photo(), "PNG")
    assert refused(data[: len(data) // 2]).code == "media.corrupt"


def test_exactly_800_by_600_is_refused() -> None:
    error = refused(encode(photo((800, 600))))
    assert (error.code, error.status) == ("media.resolution_too_low", 422)
    assert "分辨率需大于800×600" in error.message


@pytest.mark.parametrize("size", [(600, 800), (801, 600), (800, 601), (2000, 600), (600, 2000)])
def test_not_larger_than_800_by_600_either_way_is_refused(size: tuple[int, int]) -> None:
    assert refused(encode(photo(size))).code == "media.resolution_too_low"


def test_png_bomb_is_refused_from_the_header() -> None:
    data = one_bit_png(30_000, 30_000)
    assert len(data) < MAX_UPLOAD_BYTES
    error = refused(data)
    assert (error.code, error.status) == ("media.image_too_large", 422)


def test_png_over_our_pixel_limit_but_under_pillows_is_refused_before_decoding() -> None:
    width, height = 8000, 6000
    assert width * height > MAX_PIXELS
    assert refused(one_bit_png(width, height)).code == "media.image_too_large"


def flat_png(width: int, height: int, color_type: int, depth: int = 8) -> bytes:
    """A flat PNG (tiny: one repeated zero row) declaring any size and colour type."""
    bands = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type] * depth // 8
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    row = bytes(1 + width * bands)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    palette = png_chunk(b"PLTE", bytes(3)) + png_chunk(b"tRNS", b"\x00") if color_type == 3 else b""
    return (
        PNG_MAGIC + png_chunk(b"IHDR", ihdr) + palette + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding a pixel fails the test: a refusal must come from the header alone."""

    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"decoded a {self.mode} {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.parametrize(
    ("size", "color_type", "depth"),
    [
        ((7900, 5000), 6, 8),  # RGBA: the ~160 KB PNG of issue 16
        ((7900, 5000), 4, 8),  # grey with alpha
        ((7900, 5000), 3, 8),  # palette with transparency
        ((7900, 5000), 0, 16),  # 16-bit grey
        ((6500, 4200), 6, 8),  # just over the budget
    ],
)
def test_a_small_png_whose_decode_exceeds_the_memory_budget_is_refused_from_its_header(
    size: tuple[int, int], color_type: int, depth: int, no_decoding: None
) -> None:
    width, height = size
    data = flat_png(width, height, color_type, depth)
    assert width * height <= MAX_PIXELS and len(data) < 200 * 1024
    error = refused(data)
    assert (error.code, error.status) == ("media.image_too_large", 422)
    assert "MiB" in error.detail_en


def test_the_decode_budget_admits_a_plain_40_megapixel_photo_and_a_27_megapixel_rgba() -> None:
    from media_service.domain.photo_rules import DECODE_BUDGET_BYTES, decode_memory

    assert decode_memory(7900, 5000, "RGB") <= DECODE_BUDGET_BYTES  # decoded and used as is
    assert decode_memory(6400, 4190, "RGBA") <= DECODE_BUDGET_BYTES  # the worst one accepted
    assert decode_memory(6400, 4190, "RGB", converted=True) <= DECODE_BUDGET_BYTES
    assert decode_memory(7900, 5000, "RGB", converted=True) > DECODE_BUDGET_BYTES
    assert decode_memory(7900, 5000, "CMYK") > DECODE_BUDGET_BYTES
    result = accepted(flat_png(6400, 4190, 6))
    assert (result.width, result.height) == (6400, 4190)


def test_jpeg_declaring_20000_by_20000_is_refused() -> None:
    data = with_jpeg_size(encode(photo((1000, 800))), 20_000, 20_000)
    sof = data.index(b"\xff\xc0")
    assert struct.unpack(">HH", data[sof + 5 : sof + 9]) == (20_000, 20_000)
    assert refused(data).code == "media.image_too_large"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(photo(), "GIF"), id="gif"),
        pytest.param(encode(photo(), "BMP"), id="bmp"),
        pytest.param(encode(photo(), "TIFF"), id="tiff"),
        pytest.param(
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="1000"'
            b' height="800"><rect width="1000" height="800"/></svg>',
            id="svg",
        ),
        pytest.param(b"<!DOCTYPE html><html><body><script>alert(1)</script></html>", id="html"),
        pytest.param(bytes(range(256)) * 40, id="random-ish"),
        pytest.param(JPEG_MAGIC[:2], id="two-bytes-of-jpeg-magic"),
    ],
)
def test_anything_but_jpeg_or_png_is_unsupported_whatever_its_name(data: bytes) -> None:
    error = refused(data)  # there is no name to go by: a ".jpg" upload is just these bytes
    assert (error.code, error.status) == ("media.unsupported_type", 415)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_is_unsupported() -> None:
    assert refused(encode(photo(), "WEBP")).code == "media.unsupported_type"


def test_truncated_images_stay_refused_globally() -> None:
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_error_messages_are_chinese_with_english_details() -> None:
    error = refused(b"")
    assert error.message != error.detail_en
    assert repr(error) == "EmptyPhoto(code='media.empty', detail_en='the uploaded file is empty')"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_media_errors(data: bytes) -> None:
    with pytest.raises(MediaError):
        process(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([JPEG_MAGIC, PNG_MAGIC]), st.binary(max_size=4096))
def test_random_bytes_behind_real_magic_raise_only_media_errors(magic: bytes, rest: bytes) -> None:
    with pytest.raises(MediaError):
        process(magic + rest)


@functools.cache
def small_jpeg() -> bytes:
    return encode(photo((900, 700)))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=64))
def test_damaged_real_jpeg_raises_nothing_but_media_errors(offset: int, garbage: bytes) -> None:
    data = small_jpeg()
    at = offset % len(data)
    damaged = data[:at] + garbage + data[at + len(garbage) :]
    with contextlib.suppress(MediaError):
        process(damaged)


# --- acceptances ------------------------------------------------------------------------------


def accepted(data: bytes) -> ProcessedPhoto:
    result = process(data)
    for derived in (result.display_jpeg, result.thumbnail_jpeg):
        with Image.open(BytesIO(derived)) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert not image.getexif()
            assert "icc_profile" not in image.info
            assert "comment" not in image.info
    return result


@pytest.mark.parametrize("size", [(801, 601), (601, 801)])
def test_just_above_800_by_600_in_either_orientation_is_accepted(size: tuple[int, int]) -> None:
    result = accepted(encode(photo(size)))
    assert (result.width, result.height) == size
    assert (result.display_width, result.display_height) == size
    assert result.format == "jpeg"


def test_sha256_and_sizes_describe_the_original() -> None:
    data = encode(photo((1200, 900)))
    result = accepted(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.original_bytes == len(data)
    assert result.display_bytes == len(result.display_jpeg)
    assert result.thumbnail_bytes == len(result.thumbnail_jpeg)


def test_display_copy_and_thumbnail_are_scaled_down_to_their_long_sides() -> None:
    result = accepted(encode(photo((3000, 2000)), quality=70))
    assert (result.width, result.height) == (3000, 2000)
    assert (result.display_width, result.display_height) == (2400, 1600)
    with Image.open(BytesIO(result.display_jpeg)) as display:
        assert display.size == (2400, 1600)
    with Image.open(BytesIO(result.thumbnail_jpeg)) as thumbnail:
        assert thumbnail.size == (320, 213)


def test_cmyk_jpeg_is_accepted() -> None:
    result = accepted(encode(photo((1000, 800), "CMYK")))
    assert (result.width, result.height) == (1000, 800)


def test_exif_rotated_portrait_comes_out_upright() -> None:
    stored = photo((1200, 800))
    stored.paste((255, 0, 0), (0, 0, 100, 100))  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90° clockwise to display"
    result = accepted(encode(stored, exif=exif.tobytes()))
    assert (result.width, result.height) == (800, 1200)
    assert (result.display_width, result.display_height) == (800, 1200)
    with Image.open(BytesIO(result.display_jpeg)) as display:
        assert display.size == (800, 1200)
        red, green, blue = display.getpixel((800 - 50, 50))  # type: ignore[misc]
        assert red > 200 and green < 60 and blue < 60


def test_jpeg_with_trailing_junk_is_accepted_and_the_junk_is_dropped() -> None:
    junk = b"TRAILING-JUNK-" * 100
    data = encode(photo()) + junk
    result = accepted(data)
    assert result.original_bytes == len(data)
    assert b"TRAILING-JUNK-" not in result.display_jpeg
    assert b"TRAILING-JUNK-" not in result.thumbnail_jpeg


def test_gps_exif_icc_and_comment_do_not_reach_the_derived_copies() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 27.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (116.0, 23.0, 17.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo(), exif=exif.tobytes(), icc_profile=icc, comment=b"secret comment")
    with Image.open(BytesIO(data)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    result = accepted(data)
    for derived in (result.display_jpeg, result.thumbnail_jpeg):
        assert b"Exif" not in derived
        assert b"GPS" not in derived
        assert b"ICC_PROFILE" not in derived
        assert b"secret comment" not in derived
        assert b"Phone" not in derived


def test_png_with_alpha_is_composited_on_white() -> None:
    image = photo().convert("RGBA")
    image.putalpha(0)  # fully transparent
    result = accepted(encode(image, "PNG"))
    assert result.format == "png"
    with Image.open(BytesIO(result.display_jpeg)) as display:
        assert all(channel > 245 for channel in display.getpixel((10, 10)))  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["P", "L", "LA", "1", "RGB"])
def test_png_modes_are_accepted(mode: str) -> None:
    assert accepted(encode(photo(mode=mode), "PNG")).format == "png"


def test_palette_png_with_a_transparent_index_is_accepted() -> None:
    image = photo().convert("P")
    assert accepted(encode(image, "PNG", transparency=0)).format == "png"


def test_sixteen_bit_grey_png_keeps_its_tones() -> None:
    mid_grey = Image.new("I;16", (900, 700), 0x8000)
    result = accepted(encode(mid_grey, "PNG"))
    with Image.open(BytesIO(result.display_jpeg)) as display:
        red, green, blue = display.getpixel((10, 10))  # type: ignore[misc]
        assert 120 <= red <= 136 and red == green == blue


def test_png_with_an_embedded_profile_is_converted_to_srgb() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    result = accepted(encode(photo(), "PNG", icc_profile=icc))
    assert result.format == "png"


def test_large_jpeg_keeps_every_pixel_in_its_sanitised_full_copy_upright() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "PhoneCo"
    original = encode(photo((4000, 3000)), quality=30, exif=exif.tobytes()) + b"TRAILING"
    result = accepted(original)
    assert (result.width, result.height) == (3000, 4000)
    # a box reduction by 2 gives 1500x2000: long side within 1600-2400, so no resample
    assert (result.display_width, result.display_height) == (1500, 2000)
    with Image.open(BytesIO(result.full_jpeg)) as full:
        assert full.size == (3000, 4000)  # upright, at full resolution
        assert not full.getexif() and not full.info.get("icc_profile")
    assert b"PhoneCo" not in result.full_jpeg and not result.full_jpeg.endswith(b"TRAILING")
    assert result.full_bytes == len(result.full_jpeg)
    with Image.open(BytesIO(result.thumbnail_jpeg)) as thumbnail:
        assert thumbnail.size == (240, 320)
