"""The service image's Dockerfile (deploy/Dockerfile), checked as text: no Docker engine runs here.

Multi-stage, a slim base pinned to an exact version (or digest), never `latest`, uv from PyPI at
an exact version, the service installed from the workspace lock without dev dependencies, and a
final stage that runs as a non-root user and carries no build tools and no source tree.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PINNED_PYTHON = re.compile(
    r"^python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$|"
    r"^python@sha256:[0-9a-f]{64}$"
)
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|cmake|clang|git|curl|wget)\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = [[]]
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result  # result[0]: the global ARGs before the first FROM


def global_args(text: str) -> dict[str, str]:
    args = {}
    for word, rest in stages(text)[0]:
        if word == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args[k] = v
    return args


def resolved_bases(text: str) -> list[str]:
    args = global_args(text)
    bases = []
    for stage in stages(text)[1:]:
        image = stage[0][1].split()[0]
        bases.append(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image))
    return bases


TEXT = DOCKERFILE.read_text()


def test_multi_stage_with_a_pinned_slim_base() -> None:
    bases = resolved_bases(TEXT)
    assert len(bases) >= 2
    for base in bases:
        assert PINNED_PYTHON.match(base), base
    assert "latest" not in TEXT.lower().replace("content_type_latest", "")


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    final = stages(TEXT)[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)
    words = [w for w, _ in final]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("RUN", "COPY"))


def test_no_build_tools_or_sources_in_the_final_stage() -> None:
    final = stages(TEXT)[-1]
    for word, rest in final:
        if word == "RUN":
            assert not BUILD_TOOLS.search(rest), rest
            assert "apt-get install" not in rest and "pip install" not in rest, rest
        if word == "COPY":
            sources = [a for a in rest.split() if not a.startswith("--")][:-1]
            from_build = "--from=build" in rest
            assert from_build or sources == ["deploy/docker/migrate.py"], rest
            if from_build:
                assert sources == ["/app/.venv"], rest


def test_installs_the_one_service_from_the_lock_without_dev_dependencies() -> None:
    runs = [rest for word, rest in instructions(TEXT) if word == "RUN" and "uv sync" in rest]
    assert len(runs) == 1
    (sync,) = runs
    for flag in ("--frozen", "--no-dev", "--no-editable", '--package "${SERVICE}-service"'):
        assert flag in sync
    # the ops image: the ops tool and, for their projections' entry points, every service
    assert "--package ops --extra services" in sync
    assert "COPY pyproject.toml uv.lock ./" in TEXT
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    members = {p["name"] for p in lock["package"] if p.get("source", {}).get("editable")}
    for service in ("identity", "credential-verify", "media", "application", "review"):
        assert f"{service}-service" in members


def test_uv_is_pinned_to_an_exact_version_the_build_backend_accepts() -> None:
    (uv_arg,) = [
        rest for word, rest in instructions(TEXT) if word == "ARG" and "UV_VERSION" in rest
    ]
    version = uv_arg.partition("=")[2]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert '"uv==${UV_VERSION}"' in TEXT
    # the workspace members build with uv_build>=0.9,<0.14
    major, minor, _ = (int(x) for x in version.split("."))
    assert (major, minor) >= (0, 9) and (major, minor) < (0, 14)
