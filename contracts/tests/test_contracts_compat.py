"""The compatibility rules: what a reader of the new schema can no longer read is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from contracts.cli import EXIT_PROBLEMS, EXIT_USAGE, main
from contracts.compat import Change, compare_schemas
from contracts.evolution import check_evolution, load_baseline, read_on_disk
from contracts.registry import REGISTRY
from contracts.schema_gen import current_schemas, write_generated

pytestmark = pytest.mark.unit


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def kinds(old: type[BaseModel], new: type[BaseModel]) -> list[tuple[str, Change]]:
    return [(p.path, p.kind) for p in compare_schemas(schema(old), schema(new))]


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class FewerColours(StrEnum):
    RED = "red"


class MoreColours(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Course(Frozen):
    code: str
    credits: int


class Base(Frozen):
    name: str
    colour: Colour
    note: str | None = None
    courses: list[Course] = Field(default_factory=list)


def test_identical_schemas_are_compatible() -> None:
    assert kinds(Base, Base) == []


def test_a_new_optional_field_is_compatible() -> None:
    class Added(Base):
        nickname: str | None = None
        tags: list[str] = Field(default_factory=list)

    assert kinds(Base, Added) == []


def test_a_removed_field_breaks() -> None:
    class Removed(Frozen):
        name: str
        colour: Colour
        courses: list[Course] = Field(default_factory=list)

    assert kinds(Base, Removed) == [("$.note", Change.REMOVED_FIELD)]


def test_a_retyped_field_breaks() -> None:
    class Retyped(Frozen):
        name: int
        colour: Colour
        note: str | None = None
        courses: list[Course] = Field(default_factory=list)

    [problem] = compare_schemas(schema(Base), schema(Retyped))
    assert (problem.path, problem.kind) == ("$.name", Change.TYPE_CHANGED)
    assert "from string to integer" in problem.message


def test_a_new_required_field_breaks() -> None:
    class Required(Base):
        window: str

    assert kinds(Base, Required) == [("$.window", Change.NEW_REQUIRED_FIELD)]


def test_an_optional_field_becoming_required_breaks() -> None:
    class Tightened(Frozen):
        name: str
        colour: Colour
        note: str
        courses: list[Course] = Field(default_factory=list)

    assert sorted(kinds(Base, Tightened)) == [
        ("$.note", Change.BECAME_REQUIRED),
        ("$.note", Change.TYPE_CHANGED),
    ]


def test_an_enum_losing_values_breaks_and_gaining_values_does_not() -> None:
    class Narrowed(Frozen):
        name: str
        colour: FewerColours
        note: str | None = None
        courses: list[Course] = Field(default_factory=list)

    class Widened(Frozen):
        name: str
        colour: MoreColours
        note: str | None = None
        courses: list[Course] = Field(default_factory=list)

    [problem] = compare_schemas(schema(Base), schema(Narrowed))
    assert (problem.path, problem.kind) == ("$.colour", Change.ENUM_NARROWED)
    assert "'green'" in problem.message
    assert kinds(Base, Widened) == []


def test_a_change_inside_a_nested_model_in_a_list_breaks() -> None:
    class CourseRetyped(Frozen):
        code: str
        credits: str

    class Nested(Frozen):
        name: str
        colour: Colour
        note: str | None = None
        courses: list[CourseRetyped] = Field(default_factory=list)

    class CourseShrunk(Frozen):
        code: str

    class NestedRemoval(Frozen):
        name: str
        colour: Colour
        note: str | None = None
        courses: list[CourseShrunk] = Field(default_factory=list)

    assert kinds(Base, Nested) == [("$.courses[].credits", Change.TYPE_CHANGED)]
    assert kinds(Base, NestedRemoval) == [("$.courses[].credits", Change.REMOVED_FIELD)]


def test_nullable_widening_is_compatible_and_narrowing_breaks() -> None:
    class Plain(Frozen):
        value: str

    class Nullable(Frozen):
        value: str | None

    class Number(Frozen):
        value: float

    class Integer(Frozen):
        value: int

    assert kinds(Plain, Nullable) == []
    assert kinds(Nullable, Plain) == [("$.value", Change.TYPE_CHANGED)]
    assert kinds(Integer, Number) == [], "every integer is a number"
    assert kinds(Number, Integer) == [("$.value", Change.TYPE_CHANGED)]


def test_tightened_constraints_and_maps() -> None:
    class Loose(Frozen):
        code: str = Field(max_length=20)
        scores: dict[str, int]

    class Strict(Frozen):
        code: str = Field(max_length=10, pattern=r"^\d+$")
        scores: dict[str, str]

    class Looser(Frozen):
        code: str = Field(max_length=40)
        scores: dict[str, float]

    assert sorted(kinds(Loose, Strict)) == [
        ("$.code", Change.CONSTRAINT_NARROWED),
        ("$.code", Change.CONSTRAINT_NARROWED),
        ("$.scores{}", Change.TYPE_CHANGED),
    ]
    assert kinds(Loose, Looser) == []


def test_hand_written_schemas_with_refs_allof_and_type_lists() -> None:
    old = {
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "type": "object",
        "properties": {
            "at": {"allOf": [{"$ref": "#/$defs/Point"}], "description": "where"},
            "label": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
        },
    }
    new = json.loads(json.dumps(old))
    assert compare_schemas(old, new) == []
    new["$defs"]["Point"]["properties"]["x"] = {"type": "string"}
    new["properties"]["label"] = {"type": "string"}
    new["properties"]["tags"]["items"] = {"const": "a"}
    found = [(p.path, p.kind) for p in compare_schemas(old, new)]
    assert found == [
        ("$.at.x", Change.TYPE_CHANGED),
        ("$.label", Change.TYPE_CHANGED),
        ("$.tags[]", Change.ENUM_NARROWED),
    ]


def test_recursive_schemas_terminate() -> None:
    class Tree(Frozen):
        label: str
        children: list[Tree] = Field(default_factory=list)

    assert kinds(Tree, Tree) == []


def test_a_discriminated_union_keeps_each_branch() -> None:
    old = {
        "type": "object",
        "properties": {
            "proof": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "degree"}, "ref": {"type": "string"}},
                    },
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "cet"}, "score": {"type": "integer"}},
                    },
                ]
            }
        },
    }
    new = json.loads(json.dumps(old))
    del new["properties"]["proof"]["oneOf"][1]["properties"]["score"]
    assert [(p.path, p.kind) for p in compare_schemas(old, new)] == [
        ("$.proof.score", Change.REMOVED_FIELD)
    ]


# --- the whole check against a baseline ---------------------------------------------------------


def test_current_contracts_are_compatible_with_themselves(tmp_path: Path) -> None:
    write_generated(tmp_path)
    label, baseline = load_baseline(tmp_path, str(tmp_path))
    assert label.endswith("schemas")
    assert check_evolution(baseline, current_schemas(), read_on_disk(tmp_path), REGISTRY) == []


def test_a_breaking_edit_of_a_committed_schema_is_reported(tmp_path: Path) -> None:
    write_generated(tmp_path)
    path = tmp_path / "schemas" / "media" / "PhotoDeleted.v1.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    committed["properties"]["legacy"] = {"type": "string"}
    committed["$defs"]["PhotoDeletion"]["enum"].append("expired_by_law")
    committed["x-topic"] = "media.photos.v1"
    path.write_text(json.dumps(committed), encoding="utf-8")
    gone = tmp_path / "schemas" / "media" / "PhotoCropped.v1.json"
    gone.write_text(json.dumps({"type": "object"}), encoding="utf-8")

    _, baseline = load_baseline(tmp_path, str(tmp_path))
    problems = check_evolution(baseline, current_schemas(), read_on_disk(tmp_path), REGISTRY)
    assert problems == [
        "PhotoCropped v1: event type removed; stored events of it could not be read",
        "PhotoDeleted v1: $.legacy: field removed [removed-field]",
        "PhotoDeleted v1: $.reason_code: enum lost values 'expired_by_law' [enum-narrowed]",
        "PhotoDeleted v1: x-topic changed from 'media.photos.v1' to 'media.photo.v1'",
    ]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_compat_reads_the_baseline_from_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo" / "contracts"
    write_generated(root)
    path = root / "schemas" / "review" / "ReviewClaimed.v1.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    committed["properties"]["queue"] = {"type": "string"}
    path.write_text(json.dumps(committed), encoding="utf-8")
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "baseline"], check=True)
    write_generated(root)  # the working tree now matches the code again

    label, baseline = load_baseline(root)
    assert label == "git HEAD"
    assert "schemas/review/ReviewClaimed.v1.json" in baseline
    assert main(["--root", str(root), "compat"]) == EXIT_PROBLEMS
    assert "ReviewClaimed v1: $.queue: field removed" in capsys.readouterr().out
    assert main(["--root", str(root), "compat", "--against", "no-such-ref"]) == EXIT_USAGE


def test_compat_falls_back_to_files_on_disk_outside_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    write_generated(tmp_path)
    label, baseline = load_baseline(tmp_path)
    assert label.endswith("(not in git)")
    assert baseline == read_on_disk(tmp_path) != {}
