"""The application skeleton imports with its layers."""

import importlib

import pytest


@pytest.mark.unit
def test_layers_import() -> None:
    for layer in ("domain", "service_layer", "adapters", "entrypoints"):
        importlib.import_module(f"application_service.{layer}")
