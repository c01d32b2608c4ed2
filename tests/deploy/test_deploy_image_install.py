"""The image's install step, run for real on this machine (no Docker engine here).

The `uv sync` line of deploy/Dockerfile's build stage is executed as the Dockerfile writes it, with
the stage's ENV, for every image (the five services and `ops`) into a throwaway virtualenv, from
the local uv cache (offline). Then the virtualenv must hold what the manifests run (the API and
worker modules, the migration preparer, the `ops` command with every service's projections) and
nothing it should not (test tools, the local stack, the sandboxes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eventkit.operations import discover

from .test_deploy_dockerfile import TEXT, instructions

pytestmark = pytest.mark.unit

SERVICES = ("identity", "credential-verify", "media", "application", "review")
NEVER_IN_AN_IMAGE = ("pytest", "ruff", "mypy", "playwright", "devstack", "sandboxes", "hypothesis")


def build_stage_env() -> dict[str, str]:
    """The build stage's ENV (joined continuation lines: KEY=VALUE pairs)."""
    env: dict[str, str] = {}
    for word, rest in instructions(TEXT):
        if word == "FROM" and env:
            break  # only the build stage
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env


def sync_command() -> str:
    (sync,) = [rest for word, rest in instructions(TEXT) if word == "RUN" and "uv sync" in rest]
    return sync


def uv_shim(directory: Path) -> Path:
    """A `uv` on PATH: the real binary if there is one, else `python3 -m uv`."""
    found = shutil.which("uv")
    shim = directory / "uv"
    if found:
        shim.symlink_to(found)
    else:
        python3 = shutil.which("python3") or sys.executable
        shim.write_text(f'#!/bin/sh\nexec {python3} -m uv "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return directory


def install(service: str, tmp: Path) -> Path:
    venv = tmp / f"venv-{service}"
    env = {
        **os.environ,
        **build_stage_env(),
        "SERVICE": service,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys._base_executable,  # the image's interpreter is /usr/local/bin/python3
        "UV_COMPILE_BYTECODE": "0",  # speed: the image compiles, this check need not
        "UV_OFFLINE": "1",
        "PATH": f"{uv_shim(tmp)}:{os.environ['PATH']}",
    }
    env.pop("VIRTUAL_ENV", None)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        ["sh", "-ec", sync_command()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return venv


def installed(venv: Path) -> set[str]:
    (site,) = venv.glob("lib/python*/site-packages")
    return {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_image_holds_its_service_and_nothing_else(service: str, tmp_path: Path) -> None:
    venv = install(service, tmp_path)
    package = service.replace("-", "_") + "_service"
    dists = installed(venv)
    assert package in dists
    others = {s.replace("-", "_") + "_service" for s in SERVICES} - {package}
    assert not dists & others, "one service per image"
    assert not dists & set(NEVER_IN_AN_IMAGE)
    check = (
        f"import {package}.entrypoints.api, {package}.entrypoints.worker\n"
        "import runpy, sys\n"
        "migrate = runpy.run_path(sys.argv[1])\n"
        f"assert callable(migrate['preparer']({service!r}))\n"
    )
    migrate = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "migrate.py"
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check, str(migrate)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_ops_image_lists_every_services_projections(tmp_path: Path) -> None:
    venv = install("ops", tmp_path)
    dists = installed(venv)
    assert {s.replace("-", "_") + "_service" for s in SERVICES} | {"ops"} <= dists
    assert not dists & set(NEVER_IN_AN_IMAGE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVSTACK_", "OPS_"))}
    proc = subprocess.run(
        [str(venv / "bin" / "ops"), "--operator", "image-check", "projections", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    listed = {(row["service"], row["projection"]) for row in json.loads(proc.stdout)}
    # the same projections as the workspace, where every service is installed
    expected = {(key, spec.name) for key, offer in discover().items() for spec in offer.described()}
    assert listed == expected and len({s for s, _ in listed}) >= 4
