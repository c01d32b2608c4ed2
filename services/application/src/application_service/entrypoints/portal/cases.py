"""Portal pages: cases (being written)."""

from __future__ import annotations

from fastapi import FastAPI


def install_cases(app: FastAPI) -> None:
    """Add the cases pages."""
