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
DISPLAY_MAX_SIDE = 2400
# A JPEG may be decoded at a reduced DCT scale (1/2, 1/4, 1/8) if the long side stays at least this:
# the scaled decode is itself a good downscale, and far cheaper than decoding and resampling.
DISPLAY_MIN_SIDE = 1600
THUMBNAIL_MAX_SIDE = 320
DISPLAY_JPEG_QUALITY = 85
THUMBNAIL_JPEG_QUALITY = 80

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


def check_resolution(width: int, height: int) -> None:
    """Refuse a photo not larger than 800×600 in either orientation."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= MIN_LONG_SIDE or short_side <= MIN_SHORT_SIDE:
        raise ResolutionTooLow(width, height)


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size as displayed: EXIF orientations 5-8 turn the stored image a quarter."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size scaled down (never up) so the long side is at most `max_side`."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))
