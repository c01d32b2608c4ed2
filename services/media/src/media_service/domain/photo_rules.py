"""证书照片规则: the format, size and resolution a certificate photo must have (pure)."""

from __future__ import annotations

from typing import Literal

from media_service.domain.errors import (
    CorruptPhoto,
    EmptyPhoto,
    ImageTooLarge,
    PhotoTooLarge,
    ResolutionTooLow,
    UnsupportedPhotoType,
)

PhotoFormat = Literal["jpeg", "png"]

MAX_UPLOAD_BYTES = 3 * 1024 * 1024
MIN_LONG_SIDE = 800  # the long side must be strictly greater
MIN_SHORT_SIDE = 600  # the short side must be strictly greater
MAX_PIXELS = 40_000_000  # checked from the header, before any pixel is decoded
# The memory one decode may use, estimated from the header's size and mode before decoding
# (`decode_memory`): two decodes at once (MEDIA_PROCESS_WORKERS) stay well inside a 1 GiB pod.
DECODE_BUDGET_BYTES = 256 * 1024 * 1024
DISPLAY_MAX_SIDE = 2400
# The display copy is first box-reduced by the largest whole factor that leaves its long side at
# least this (a cheap, good downscale); only what is still over DISPLAY_MAX_SIDE is resampled.
DISPLAY_MIN_SIDE = 1600
THUMBNAIL_MAX_SIDE = 320
DISPLAY_JPEG_QUALITY = 85
THUMBNAIL_JPEG_QUALITY = 80
FULL_JPEG_QUALITY = 90  # the sanitised full-resolution copy staff see instead of the original

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sniff_format(data: bytes) -> PhotoFormat:
    """The format the bytes are, by magic number; refuse anything but JPEG and PNG."""
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(PNG_MAGIC):
        return "png"
    raise UnsupportedPhotoType(f"magic bytes {data[:8].hex()} are neither JPEG nor PNG")


def check_byte_size(size: int) -> None:
    """Refuse an empty file or one over the upload limit."""
    if size == 0:
        raise EmptyPhoto()
    if size > MAX_UPLOAD_BYTES:
        raise PhotoTooLarge(size, MAX_UPLOAD_BYTES)


def check_pixel_count(width: int, height: int) -> None:
    """Refuse a declared size over the pixel limit (a decompression bomb) before decoding."""
    if width <= 0 or height <= 0:
        raise CorruptPhoto(f"the header declares an impossible size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageTooLarge(
            f"the header declares {width}x{height} = {width * height} pixels,"
            f" the limit is {MAX_PIXELS}"
        )


# Bytes per pixel Pillow keeps for a decoded image of each mode (multi-band modes use 4).
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Beyond the pixels of the largest image alive: encoder buffers and the resampling pass of the
# display copy (its intermediate is display-wide and full-height).
_WORKING_BYTES = 2


def decode_memory(width: int, height: int, mode: str, *, converted: bool = False) -> int:
    """The peak bytes of decoding and converting an image, from its header.

    A plain RGB image is decoded (4 bytes a pixel) and used as it is; every other one is
    converted to 8-bit sRGB step by step, and a step holds its source beside its result: two
    full-size images of at most 4 bytes a pixel. `converted`: a plain mode that still converts
    (transparency or a colour profile)."""
    pixels = width * height
    decoded = _DECODED_BYTES.get(mode, 4)
    plain = mode == "RGB" and not converted
    largest_moment = decoded if plain else max(decoded + 4, 8)
    return pixels * (largest_moment + _WORKING_BYTES)


def check_decode_memory(width: int, height: int, mode: str, *, converted: bool = False) -> None:
    """Refuse an image whose decode would exceed the budget (before any pixel is decoded): a
    small, flat file can declare a huge RGBA canvas well within the pixel limit."""
    needed = decode_memory(width, height, mode, converted=converted)
    if needed > DECODE_BUDGET_BYTES:
        raise ImageTooLarge(
            f"decoding {width}x{height} {mode} needs about {needed // 2**20} MiB,"
            f" the budget is {DECODE_BUDGET_BYTES // 2**20} MiB"
        )


def check_resolution(width: int, height: int) -> None:
    """Refuse a photo not larger than 800×600 in either orientation."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= MIN_LONG_SIDE or short_side <= MIN_SHORT_SIDE:
        raise ResolutionTooLow(width, height)


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size as displayed: EXIF orientations 5-8 turn the stored image a quarter."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def box_factor(width: int, height: int, min_side: int) -> int:
    """The largest whole factor that keeps the long side at least `min_side` (1: none)."""
    return max(1, max(width, height) // min_side)


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size scaled down (never up) so the long side is at most `max_side`."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))
