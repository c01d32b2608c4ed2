"""Portal pages: wizard (being written)."""

from __future__ import annotations

from fastapi import FastAPI


def install_wizard(app: FastAPI) -> None:
    """Add the wizard pages."""
