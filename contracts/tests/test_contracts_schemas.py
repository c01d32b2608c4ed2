"""The committed schemas and AsyncAPI document are generated, current and well formed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.cli import EXIT_OK, EXIT_PROBLEMS, main
from contracts.registry import all_events, all_streams
from contracts.schema_gen import (
    ASYNCAPI_FILE,
    ENVELOPE_FILE,
    check_generated,
    default_root,
    event_schema_path,
    generated_files,
    parse_schema_path,
    write_generated,
)

pytestmark = pytest.mark.unit


def test_committed_files_are_up_to_date() -> None:
    """The same check as `contracts check`; run `uv run contracts generate` when it fails."""
    assert check_generated(default_root()) == []


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()


def test_every_event_has_a_schema_file_named_by_type_and_version() -> None:
    files = generated_files()
    for service, event in all_events():
        path = event_schema_path(service, event)
        schema = json.loads(files[path])
        assert schema["x-event-type"] == event.event_type
        assert schema["x-schema-version"] == event.schema_version
        assert schema["x-topic"] == event.topic
        assert schema["examples"], "examples travel with the schema (compat upcasts them)"
        parsed = parse_schema_path(path)
        assert parsed is not None
        assert (parsed.package, parsed.event_type) == (service.package, event.event_type)
    assert "x-event-type" not in json.loads(files[ENVELOPE_FILE])


def test_asyncapi_has_a_channel_per_topic_and_a_message_per_event() -> None:
    document = json.loads(generated_files()[ASYNCAPI_FILE])
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {stream.topic for stream in all_streams()}
    messages = document["components"]["messages"]
    assert set(messages) == {event.event_type for _, event in all_events()}
    for operation in document["operations"].values():
        assert operation["action"] == "send"
    text = json.dumps(document)
    assert "#/$defs/" not in text, "refs must point into components"
    for ref in _refs(document):
        _follow(document, ref)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _follow(document: dict[str, object], ref: str) -> None:
    node: object = document
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, f"dangling {ref}"
        node = node[part]


def test_check_reports_missing_stale_and_unexpected_files(tmp_path: Path) -> None:
    assert len(check_generated(tmp_path)) == len(generated_files())
    assert write_generated(tmp_path) == list(generated_files())
    assert check_generated(tmp_path) == []
    assert write_generated(tmp_path) == [], "regeneration is byte-identical"

    stale = tmp_path / "schemas" / "media" / "PhotoUploaded.v1.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("pixels", "px"), encoding="utf-8")
    (tmp_path / ASYNCAPI_FILE).unlink()
    (tmp_path / "schemas" / "media" / "PhotoCropped.v1.json").write_text("{}", encoding="utf-8")
    assert check_generated(tmp_path) == [
        f"{ASYNCAPI_FILE}: missing",
        "schemas/media/PhotoUploaded.v1.json: stale",
        "schemas/media/PhotoCropped.v1.json: unexpected (no current or past version of an event)",
    ]


def test_cli_check_and_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "check"]) == EXIT_PROBLEMS
    assert "schemas/identity/CandidateRegistered.v1.json: missing" in capsys.readouterr().out
    assert not (tmp_path / "schemas").exists(), "check writes nothing"
    assert main(["--root", str(tmp_path), "generate"]) == EXIT_OK
    assert main(["--root", str(tmp_path), "check"]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
