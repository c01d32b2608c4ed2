"""证书照片处理: decode an uploaded photo with Pillow and make clean copies of it: a full-resolution
sanitised copy (what staff see instead of the original: re-encoded, upright, sRGB, no EXIF/GPS,
no profile, no comment, no trailing data), a display copy and a thumbnail.

CPU-bound and synchronous; the service runs `process` in a thread pool.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, ImageOps

from media_service.domain.errors import CorruptPhoto, ImageTooLarge
from media_service.domain.photo_rules import (
    DISPLAY_JPEG_QUALITY,
    DISPLAY_MAX_SIDE,
    DISPLAY_MIN_SIDE,
    FULL_JPEG_QUALITY,
    THUMBNAIL_JPEG_QUALITY,
    THUMBNAIL_MAX_SIDE,
    PhotoFormat,
    box_factor,
    check_byte_size,
    check_decode_memory,
    check_pixel_count,
    check_resolution,
    fitted_size,
    oriented_size,
    sniff_format,
)

# What Pillow raises on malformed input besides OSError: parsers index, unpack and divide blindly.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)
_PILLOW_FORMAT: dict[PhotoFormat, str] = {"jpeg": "JPEG", "png": "PNG"}
_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255)
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """An accepted photo: facts about the original and its metadata-free derived copies."""

    sha256: str
    format: PhotoFormat
    width: int  # after EXIF orientation
    height: int
    original_bytes: int
    display_jpeg: bytes
    display_width: int
    display_height: int
    thumbnail_jpeg: bytes
    full_jpeg: bytes  # full resolution, upright, re-encoded, metadata-free

    @property
    def full_bytes(self) -> int:
        """Size of the sanitised full-resolution copy in bytes."""
        return len(self.full_jpeg)

    @property
    def display_bytes(self) -> int:
        """Size of the display copy in bytes."""
        return len(self.display_jpeg)

    @property
    def thumbnail_bytes(self) -> int:
        """Size of the thumbnail in bytes."""
        return len(self.thumbnail_jpeg)


def process(original: bytes) -> ProcessedPhoto:
    """Check an uploaded photo and derive its copies; raise `MediaError`.

    Memory: the header's size and mode are checked against the decode budget
    (`check_decode_memory`) before a pixel is decoded, and every conversion below replaces the
    image it came from, so at most a source and its converted copy are alive at once."""
    check_byte_size(len(original))
    photo_format = sniff_format(original)
    digest = hashlib.sha256(original).hexdigest()
    try:
        image: Image.Image = Image.open(BytesIO(original), formats=(_PILLOW_FORMAT[photo_format],))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptPhoto(f"cannot read the {photo_format} header: {exc}") from exc
    stored_width, stored_height = image.size
    check_pixel_count(stored_width, stored_height)
    check_resolution(stored_width, stored_height)
    # Before anything may decode (a PNG's getexif() does: its EXIF may follow the pixels).
    check_decode_memory(
        stored_width,
        stored_height,
        image.mode,
        converted="transparency" in image.info or bool(image.info.get("icc_profile")),
    )
    try:
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
        width, height = oriented_size(stored_width, stored_height, orientation)
        image.load()  # at full resolution: the sanitised copy keeps every pixel
        ImageOps.exif_transpose(image, in_place=True)
        for step in _TO_SRGB:
            image = step(image)  # the previous image is released as soon as this returns
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptPhoto(f"cannot decode the {photo_format} image: {exc}") from exc
    full_jpeg = _clean_jpeg(image, FULL_JPEG_QUALITY)
    factor = box_factor(image.width, image.height, DISPLAY_MIN_SIDE)
    display = image.reduce(factor) if factor > 1 else image
    display = _resized(display, fitted_size(display.width, display.height, DISPLAY_MAX_SIDE))
    del image  # the full-size pixels: only the display copy is needed from here on
    thumbnail = _resized(display, fitted_size(display.width, display.height, THUMBNAIL_MAX_SIDE))
    return ProcessedPhoto(
        sha256=digest,
        format=photo_format,
        width=width,
        height=height,
        original_bytes=len(original),
        display_jpeg=_clean_jpeg(display, DISPLAY_JPEG_QUALITY),
        display_width=display.width,
        display_height=display.height,
        thumbnail_jpeg=_clean_jpeg(thumbnail, THUMBNAIL_JPEG_QUALITY),
        full_jpeg=full_jpeg,
    )


# Plain 8-bit sRGB, one step at a time (each returns a new image or the same one).


def _widen_sixteen_bit(image: Image.Image) -> Image.Image:
    return image.convert("I") if image.mode in ("I;16", "I;16B", "I;16L", "I;16N") else image


def _narrow_wide_grey(image: Image.Image) -> Image.Image:
    """16-bit grey: keep the high byte rather than clipping everything above 255 to white."""
    if image.mode not in ("I", "F"):
        return image
    return image.point(lambda value: value / 256)


def _wide_grey_as_l(image: Image.Image) -> Image.Image:
    return image.convert("L") if image.mode in ("I", "F") else image


def _from_palette(image: Image.Image) -> Image.Image:
    if image.mode != "P":
        return image
    return image.convert("RGBA" if "transparency" in image.info else "RGB")


def _with_alpha(image: Image.Image) -> Image.Image:
    """Any transparency as an RGBA image (the flattening below reads its alpha band)."""
    transparent = image.mode in ("LA", "PA", "La", "RGBa") or "transparency" in image.info
    return image.convert("RGBA") if transparent and image.mode != "RGBA" else image


def _on_white(image: Image.Image) -> Image.Image:
    """Transparency flattened onto white."""
    if image.mode != "RGBA":
        return image
    flat = Image.new("RGB", image.size, _WHITE)
    flat.paste(image, mask=image)  # an RGBA mask: its alpha band, no separate copy
    if "icc_profile" in image.info:
        flat.info["icc_profile"] = image.info["icc_profile"]
    return flat


def _colour_managed(image: Image.Image) -> Image.Image:
    """Colour-managed from an embedded profile to sRGB (a broken profile: numbers as they are)."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "CMYK", "L"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        converted = None
    return image if converted is None else converted


def _as_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


# Each step holds only its source and its result: the loop in `process` drops the source.
_TO_SRGB = (
    _widen_sixteen_bit,
    _narrow_wide_grey,
    _wide_grey_as_l,
    _from_palette,
    _with_alpha,
    _on_white,
    _colour_managed,
    _as_rgb,
)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image at `size` (itself when unchanged), Lanczos after a fast box reduction."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _clean_jpeg(image: Image.Image, quality: int) -> bytes:
    """Baseline JPEG with no EXIF, GPS, ICC profile, comment or trailing data."""
    image.info.clear()  # Pillow carries some of these (e.g. the comment) over from `info` on save
    out = BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False)
    return out.getvalue()
