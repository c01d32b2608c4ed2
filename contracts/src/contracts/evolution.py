"""Compatibility of the current contracts with a baseline (git HEAD, another ref, or a folder).

Rules, for each schema file in the baseline:
- the same (type, version) still exists: its new schema must read every old event
  (`compare_schemas`), and it must stay on the same stream type and topic;
- the type now has a newer version: the registry must upcast the committed example of the old
  version to a payload the current model accepts, and the old file stays as committed;
- the type is gone, or its version went down: breaking.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.compat import compare_schemas
from contracts.schema_gen import ENVELOPE_FILE, SCHEMAS_DIR, parse_schema_path
from eventkit.registry import EventRegistry, UnknownEventType

Schemas = Mapping[str, Mapping[str, Any]]

_ROUTING_KEYS = ("x-stream-type", "x-topic")


class BaselineError(RuntimeError):
    """The baseline could not be read (unknown git ref, unreadable folder)."""


def load_baseline(root: Path, against: str | None = None) -> tuple[str, dict[str, Any]]:
    """The baseline schemas by path relative to `root`, and a label saying where they came from.

    `against` is a folder (a contracts folder or its `schemas/`) or a git ref; by default the
    files committed at git HEAD, or the files on disk when `root` is not in a git work tree.
    """
    if against is not None and Path(against).is_dir():
        folder = Path(against)
        if (folder / SCHEMAS_DIR).is_dir():
            folder = folder / SCHEMAS_DIR
        return str(folder), _read_folder(folder)
    toplevel = _git(root, "rev-parse", "--show-toplevel")
    if toplevel is None:
        if against is not None:
            raise BaselineError(f"{against!r} is not a folder and {root} is not in a git work tree")
        return f"{root / SCHEMAS_DIR} (not in git)", _read_folder(root / SCHEMAS_DIR)
    ref = against or "HEAD"
    if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is None:
        if against is None:
            return "HEAD (no commits yet)", {}
        raise BaselineError(f"{ref!r} is neither a folder nor a git commit")
    prefix = root.resolve().relative_to(Path(toplevel.strip()).resolve()).as_posix()
    schemas_path = f"{prefix}/{SCHEMAS_DIR}" if prefix != "." else SCHEMAS_DIR
    listing = _git(root, "ls-tree", "-r", "--name-only", "--full-tree", ref, "--", schemas_path)
    baseline: dict[str, Any] = {}
    for name in (listing or "").splitlines():
        if not name.endswith(".json"):
            continue
        text = _git(root, "show", f"{ref}:{name}")
        if text is None:
            raise BaselineError(f"cannot read {name} at {ref}")
        relpath = name.removeprefix(f"{prefix}/") if prefix != "." else name
        baseline[relpath] = json.loads(text)
    return f"git {ref}", baseline


def schema_history(root: Path) -> list[str]:
    """Every commit that changed the committed schemas, newest first (empty outside git)."""
    toplevel = _git(root, "rev-parse", "--show-toplevel")
    if toplevel is None or _git(root, "rev-parse", "--verify", "--quiet", "HEAD") is None:
        return []
    listing = _git(root, "log", "--format=%H", "--", SCHEMAS_DIR)
    return [line for line in (listing or "").splitlines() if line]


def _read_folder(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        return {}
    return {
        f"{SCHEMAS_DIR}/{path.relative_to(folder).as_posix()}": json.loads(
            path.read_text(encoding="utf-8")
        )
        for path in sorted(folder.rglob("*.json"))
    }


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    return done.stdout if done.returncode == 0 else None


def read_on_disk(root: Path) -> dict[str, Any]:
    """The schema files on disk now, by path relative to `root`."""
    return _read_folder(root / SCHEMAS_DIR)


def check_evolution(
    baseline: Schemas, current: Schemas, on_disk: Schemas, registry: EventRegistry
) -> list[str]:
    """Every breaking difference between the baseline and the current contracts, as messages."""
    problems: list[str] = []
    current_by_key = {
        (parsed.event_type, parsed.version): schema
        for path, schema in current.items()
        if (parsed := parse_schema_path(path)) is not None
    }
    models = registry.models
    for relpath, old in sorted(baseline.items()):
        if relpath == ENVELOPE_FILE:
            new_envelope = current.get(ENVELOPE_FILE)
            if new_envelope is not None:
                problems += [f"EventEnvelope: {p}" for p in compare_schemas(old, new_envelope)]
            continue
        parsed = parse_schema_path(relpath)
        if parsed is None:
            continue
        label = f"{parsed.event_type} v{parsed.version}"
        model = models.get(parsed.event_type)
        if model is None:
            problems.append(f"{label}: event type removed; stored events of it could not be read")
        elif parsed.version == model.schema_version:
            new = current_by_key.get((parsed.event_type, parsed.version))
            if new is None:
                problems.append(f"{label}: no current schema (is it registered?)")
                continue
            problems += [f"{label}: {p}" for p in compare_schemas(old, new)]
            for key in _ROUTING_KEYS:
                if key in old and old.get(key) != new.get(key):
                    problems.append(f"{label}: {key} changed from {old[key]!r} to {new.get(key)!r}")
        elif parsed.version < model.schema_version:
            problems += _check_upcast(label, old, parsed.event_type, parsed.version, registry)
            if on_disk.get(relpath) != old:
                problems.append(f"{label}: {relpath} was edited or deleted; keep past versions")
        else:
            problems.append(
                f"{label}: the current model is v{model.schema_version}, older than committed"
            )
    return problems


def _check_upcast(
    label: str, old: Mapping[str, Any], event_type: str, version: int, registry: EventRegistry
) -> list[str]:
    model = registry.models[event_type]
    examples = old.get("examples") or []
    sample: dict[str, Any] = dict(examples[0]) if examples else {}
    try:
        upcast = registry.upcast(event_type, version, sample)
    except UnknownEventType as missing:
        return [f"{label}: no upcaster path to v{model.schema_version} ({missing})"]
    except Exception as failed:  # an upcaster's own bug, reported rather than raised
        if not examples:
            return []  # the chain exists; without an example there is nothing to run it on
        return [f"{label}: upcasting the committed example fails: {failed!r}"]
    if not examples:
        return []
    try:
        model.model_validate(upcast)
    except ValidationError as invalid:
        return [
            f"{label}: the committed example, upcast to v{model.schema_version}, "
            f"is invalid: {invalid.errors(include_url=False)}"
        ]
    return []
