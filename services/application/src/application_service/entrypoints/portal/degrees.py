"""Portal pages: degrees (being written)."""

from __future__ import annotations

from fastapi import FastAPI


def install_degrees(app: FastAPI) -> None:
    """Add the degrees pages."""
