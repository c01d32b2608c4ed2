"""Backward compatibility of JSON Schemas: can a reader of the new schema read every old event?

Events are stored forever and replayed, so a schema of the same (type, version) may only widen:
no field removed, no type changed, no new required field, no enum value dropped, no constraint
tightened. `compare_schemas` is a pure function over two JSON Schemas (local `$ref`s, `$defs`,
`anyOf`/`oneOf` unions and nullables, arrays, maps and nested objects).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Change", "Incompatibility", "compare_schemas"]

Schema = Mapping[str, Any]

# keyword -> True when a larger value accepts more (a lower bound), False for an upper bound
_BOUNDS: Mapping[str, bool] = {
    "minLength": False,
    "maxLength": True,
    "minimum": False,
    "exclusiveMinimum": False,
    "maximum": True,
    "exclusiveMaximum": True,
    "minItems": False,
    "maxItems": True,
    "minProperties": False,
    "maxProperties": True,
}
_STRING_RULES = ("pattern", "format")


class Change(StrEnum):
    """Kinds of change that stop a reader of the new schema from reading old events."""

    REMOVED_FIELD = "removed-field"
    TYPE_CHANGED = "type-changed"
    NEW_REQUIRED_FIELD = "new-required-field"
    BECAME_REQUIRED = "became-required"
    ENUM_NARROWED = "enum-narrowed"
    CONSTRAINT_NARROWED = "constraint-narrowed"


@dataclass(frozen=True, order=True)
class Incompatibility:
    """One breaking difference, located by a path like `$.certificates[].courses[].course_code`."""

    path: str
    kind: Change
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.kind}]"


def compare_schemas(old: Schema, new: Schema) -> list[Incompatibility]:
    """Every way in which `new` rejects data that `old` accepted; empty when compatible."""
    found = _Comparison(old, new).compare(old, new, "$")
    return sorted(set(found))


@dataclass(frozen=True)
class _Resolved:
    schema: Schema
    ref: str | None


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"$ref {ref!r} does not resolve")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} is not a schema")
    return node


def _resolve(schema: Schema, root: Schema) -> _Resolved:
    """Follow `$ref`s (siblings such as description win) and merge `allOf` parts."""
    ref: str | None = None
    seen: set[str] = set()
    while "$ref" in schema:
        ref = str(schema["$ref"])
        if ref in seen:
            raise ValueError(f"$ref cycle through {ref!r}")
        seen.add(ref)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**_pointer(root, ref), **siblings}
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(merged.get("properties", {}))
        required: list[str] = list(merged.get("required", []))
        for part in schema["allOf"]:
            resolved = _resolve(part, root)
            ref = ref or resolved.ref
            properties.update(resolved.schema.get("properties", {}))
            required += [r for r in resolved.schema.get("required", []) if r not in required]
            for key, value in resolved.schema.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        schema = merged
    return _Resolved(schema, ref)


def _variants(schema: Schema, root: Schema) -> Iterator[_Resolved]:
    """The alternatives a schema accepts: union members, and one per listed `type`."""
    resolved = _resolve(schema, root)
    s = resolved.schema
    union = s.get("anyOf") or s.get("oneOf")
    if union:
        for member in union:
            yield from _variants(member, root)
        return
    types = s.get("type")
    if isinstance(types, list):
        for t in types:
            yield _Resolved({**s, "type": t}, resolved.ref)
        return
    yield resolved


def _kind(s: Schema) -> str:
    if "const" in s or "enum" in s:
        return "enum"
    t = s.get("type")
    if isinstance(t, str):
        return t
    if "properties" in s or "additionalProperties" in s:
        return "object"
    if "items" in s or "prefixItems" in s:
        return "array"
    return "any"


def _enum_values(s: Schema) -> list[Any]:
    return [s["const"]] if "const" in s else list(s["enum"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _accepts_kind(old: Schema, new: Schema) -> bool:
    """Whether a variant of `new` is of a kind that could hold the values of `old`."""
    old_kind, new_kind = _kind(old), _kind(new)
    if new_kind == "any":
        return True
    if old_kind == "any":
        return False
    if old_kind == "enum":
        if new_kind == "enum":
            return True
        return all(
            _json_type(v) == new_kind or (new_kind == "number" and _json_type(v) == "integer")
            for v in _enum_values(old)
        )
    if old_kind == "integer":
        return new_kind in ("integer", "number")
    return old_kind == new_kind


def _describe(schema: Schema, root: Schema, depth: int = 0) -> str:
    parts: list[str] = []
    for variant in _variants(schema, root):
        s = variant.schema
        kind = _kind(s)
        if kind == "enum":
            parts.append("enum " + ", ".join(repr(v) for v in _enum_values(s)))
        elif kind == "array" and depth < 2 and isinstance(s.get("items"), Mapping):
            parts.append(f"array of {_describe(s['items'], root, depth + 1)}")
        elif kind == "object" and "title" in s:
            parts.append(f"object {s['title']}")
        elif kind == "string" and "format" in s:
            parts.append(f"string ({s['format']})")
        else:
            parts.append(kind)
    return " | ".join(dict.fromkeys(parts))


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if name.isidentifier() else f"{path}[{name!r}]"


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.active: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        new_variants = list(_variants(new, self.new_root))
        found: list[Incompatibility] = []
        for old_variant in _variants(old, self.old_root):
            candidates = [n for n in new_variants if _accepts_kind(old_variant.schema, n.schema)]
            if not candidates:
                was = _describe(old, self.old_root)
                now = _describe(new, self.new_root)
                found.append(
                    Incompatibility(path, Change.TYPE_CHANGED, f"type changed from {was} to {now}")
                )
                break
            best: list[Incompatibility] | None = None
            for candidate in candidates:
                problems = self.compare_variant(old_variant, candidate, path)
                if best is None or len(problems) < len(best):
                    best = problems
                if not best:
                    break
            found += best or []
        return found

    def compare_variant(self, old: _Resolved, new: _Resolved, path: str) -> list[Incompatibility]:
        if old.ref is not None and new.ref is not None:
            pair = (old.ref, new.ref)
            if pair in self.active:
                return []  # a recursive type already being compared further up
            self.active.add(pair)
            try:
                return self.compare_resolved(old.schema, new.schema, path)
            finally:
                self.active.discard(pair)
        return self.compare_resolved(old.schema, new.schema, path)

    def compare_resolved(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        old_kind, new_kind = _kind(old), _kind(new)
        if new_kind == "any":
            return []
        if old_kind == "enum":
            if new_kind != "enum":
                return []
            kept = {_key(v) for v in _enum_values(new)}
            lost = [v for v in _enum_values(old) if _key(v) not in kept]
            if not lost:
                return []
            values = ", ".join(repr(v) for v in lost)
            return [Incompatibility(path, Change.ENUM_NARROWED, f"enum lost values {values}")]
        found = self.compare_bounds(old, new, path)
        if old_kind == "string":
            found += self.compare_string_rules(old, new, path)
        elif old_kind == "array":
            found += self.compare_arrays(old, new, path)
        elif old_kind == "object":
            found += self.compare_objects(old, new, path)
        return found

    @staticmethod
    def compare_bounds(old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        for keyword, is_upper in _BOUNDS.items():
            if keyword not in new:
                continue
            before, after = old.get(keyword), new[keyword]
            if before is None:
                message = f"{keyword} {after!r} added"
            elif (after < before) if is_upper else (after > before):
                message = f"{keyword} narrowed from {before!r} to {after!r}"
            else:
                continue
            found.append(Incompatibility(path, Change.CONSTRAINT_NARROWED, message))
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            found.append(Incompatibility(path, Change.CONSTRAINT_NARROWED, "uniqueItems added"))
        return found

    @staticmethod
    def compare_string_rules(old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        for keyword in _STRING_RULES:
            if keyword in new and new[keyword] != old.get(keyword):
                before = old.get(keyword)
                message = (
                    f"{keyword} {new[keyword]!r} added"
                    if before is None
                    else f"{keyword} changed from {before!r} to {new[keyword]!r}"
                )
                found.append(Incompatibility(path, Change.CONSTRAINT_NARROWED, message))
        return found

    def compare_arrays(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        old_items, new_items = old.get("items", {}), new.get("items", {})
        if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
            return self.compare(old_items, new_items, f"{path}[]")
        return []

    def compare_objects(self, old: Schema, new: Schema, path: str) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required: Sequence[str] = old.get("required", [])
        new_required: Sequence[str] = new.get("required", [])
        for name, old_prop in old_props.items():
            where = _child(path, name)
            if name not in new_props:
                found.append(Incompatibility(where, Change.REMOVED_FIELD, "field removed"))
                continue
            found += self.compare(old_prop, new_props[name], where)
            if name in new_required and name not in old_required:
                found.append(
                    Incompatibility(where, Change.BECAME_REQUIRED, "optional field became required")
                )
        for name in new_props:
            if name not in old_props and name in new_required:
                found.append(
                    Incompatibility(
                        _child(path, name),
                        Change.NEW_REQUIRED_FIELD,
                        "new required field: old events lack it (give it a default)",
                    )
                )
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            found.append(
                Incompatibility(
                    path, Change.CONSTRAINT_NARROWED, "additional properties no longer accepted"
                )
            )
        elif old_extra is not False and new_extra is not True:
            old_values = old_extra if isinstance(old_extra, Mapping) else {}
            found += self.compare(old_values, new_extra, f"{path}{{}}")
        return found
