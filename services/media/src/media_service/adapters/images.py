"""证书照片处理: decode an uploaded photo with Pillow and make a clean display copy and thumbnail.

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
    THUMBNAIL_JPEG_QUALITY,
    THUMBNAIL_MAX_SIDE,
    PhotoFormat,
    check_byte_size,
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

    @property
    def display_bytes(self) -> int:
        """Size of the display copy in bytes."""
        return len(self.display_jpeg)

    @property
    def thumbnail_bytes(self) -> int:
        """Size of the thumbnail in bytes."""
        return len(self.thumbnail_jpeg)


def process(original: bytes) -> ProcessedPhoto:
    """Check an uploaded photo and derive its display copy and thumbnail; raise `MediaError`."""
    check_byte_size(len(original))
    photo_format = sniff_format(original)
    digest = hashlib.sha256(original).hexdigest()
    try:
        image = Image.open(BytesIO(original), formats=(_PILLOW_FORMAT[photo_format],))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptPhoto(f"cannot read the {photo_format} header: {exc}") from exc
    with image:
        stored_width, stored_height = image.size
        check_pixel_count(stored_width, stored_height)
        check_resolution(stored_width, stored_height)
        try:
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
            width, height = oriented_size(stored_width, stored_height, orientation)
            if photo_format == "jpeg":
                # Decode at the smallest DCT scale that still leaves a display-sized image.
                image.draft(None, fitted_size(stored_width, stored_height, DISPLAY_MIN_SIDE))
            image.load()
            rgb = _to_srgb(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(str(exc)) from exc
        except _DECODE_ERRORS as exc:
            raise CorruptPhoto(f"cannot decode the {photo_format} image: {exc}") from exc
    display = _resized(rgb, fitted_size(rgb.width, rgb.height, DISPLAY_MAX_SIDE))
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
    )


def _to_srgb(image: Image.Image) -> Image.Image:
    """Plain 8-bit sRGB: colour-managed from an embedded profile, transparency on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit grey: keep the high byte rather than clipping everything above 255 to white.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: fall back to the numbers as they are
        if converted is not None:
            image = converted
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


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
