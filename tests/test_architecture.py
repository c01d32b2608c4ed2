"""The layering rules of the guide, checked on the source: who may import what."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SERVICE_PACKAGES = {
    "identity_service",
    "application_service",
    "credential_verify_service",
    "review_service",
    "media_service",
}
# Domain code is pure: no framework, no driver, no I/O library, no clock of its own.
DOMAIN_FORBIDDEN = {
    "fastapi", "starlette", "asyncpg", "aiokafka", "boto3", "botocore", "httpx", "requests",
    "psycopg", "sqlalchemy", "uvicorn", "PIL", "socket", "subprocess", "asyncio",
}  # fmt: skip
# Shared code knows nothing of the services that use it.
SHARED_ROOTS = {
    "eventkit": ROOT / "libs/eventkit/src",
    "servicekit": ROOT / "libs/servicekit/src",
    "contracts": ROOT / "contracts/src",
}


def imported_modules(path: Path) -> Iterator[str]:
    """Top-level names of every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def service_sources() -> Iterator[tuple[str, Path]]:
    for package_dir in sorted(ROOT.glob("services/*/src/*")):
        if package_dir.name in SERVICE_PACKAGES:
            for path in sorted(package_dir.rglob("*.py")):
                yield package_dir.name, path


def test_every_service_package_exists() -> None:
    assert {package for package, _ in service_sources()} == SERVICE_PACKAGES


def test_services_never_import_each_other() -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {module}"
        for package, path in service_sources()
        for module in imported_modules(path)
        if module.split(".")[0] in SERVICE_PACKAGES - {package}
    ]
    assert not offences, "\n".join(offences)


def test_domain_code_imports_no_framework_and_does_no_io() -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {module}"
        for _, path in service_sources()
        if "domain" in path.relative_to(ROOT).parts
        for module in imported_modules(path)
        if module.split(".")[0] in DOMAIN_FORBIDDEN
    ]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("name", sorted(SHARED_ROOTS))
def test_shared_code_never_imports_a_service(name: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted(SHARED_ROOTS[name].rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in SERVICE_PACKAGES | {"devstack"}
    ]
    assert not offences, "\n".join(offences)


def test_eventkit_does_not_depend_on_contracts() -> None:
    offences = [
        str(path.relative_to(ROOT))
        for path in sorted(SHARED_ROOTS["eventkit"].rglob("*.py"))
        if any(m.split(".")[0] == "contracts" for m in imported_modules(path))
    ]
    assert not offences


def test_the_end_to_end_lane_uses_the_system_only_from_outside() -> None:
    """tests/e2e drives the running system through HTTP, the browser and its CLIs: it imports no
    service package (nor the application tests' rigs that wire services in process)."""
    offences = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "tests/e2e").rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in SERVICE_PACKAGES | {"portal_support", "application_builders"}
    ]
    assert not offences, "\n".join(offences)


def test_the_rules_catch_an_offence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncpg\nfrom review_service.domain import x\n")
    assert set(imported_modules(bad)) == {"asyncpg", "review_service.domain"}
