"""QR codes of CHSI's `qr_content`, as PNG bytes or an SVG string (segno)."""

from __future__ import annotations

import io

import segno


def _make(content: str) -> segno.QRCode:
    if not content:
        raise ValueError("QR content must not be empty")
    return segno.make_qr(content, error="m")


def qr_png(content: str, *, scale: int = 8, border: int = 4) -> bytes:
    """A PNG of the QR code for `content` (error correction M)."""
    buffer = io.BytesIO()
    _make(content).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def qr_svg(content: str, *, scale: int = 8, border: int = 4) -> str:
    """A standalone SVG document of the QR code for `content`."""
    buffer = io.BytesIO()
    _make(content).save(buffer, kind="svg", scale=scale, border=border, xmldecl=False)
    return buffer.getvalue().decode("utf-8")
