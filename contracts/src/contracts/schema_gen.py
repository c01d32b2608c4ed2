"""Generate the committed contract files: one JSON Schema per event, the envelope, AsyncAPI.

Output is deterministic (sorted keys, declaration order for lists, a fixed example clock), so
regenerating unchanged models is byte-identical and `contracts check` can compare text.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from contracts import _examples as ex
from contracts.base import ContractEvent, ServiceContract, Stream, event_examples
from contracts.registry import SERVICES
from eventkit.envelope import Actor, EventEnvelope

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "0.1.0"
KAFKA_BINDING_VERSION = "0.5.0"

SCHEMAS_DIR = "schemas"
ENVELOPE_FILE = f"{SCHEMAS_DIR}/EventEnvelope.json"
ASYNCAPI_FILE = "asyncapi.json"

_EVENT_FILE = re.compile(
    rf"^{SCHEMAS_DIR}/(?P<package>[a-z_]+)/(?P<event_type>[A-Za-z][A-Za-z0-9]*)\.v(?P<version>[1-9]\d*)\.json$"
)
_EXAMPLE_NAMESPACE = uuid.UUID("5b0e6c3a-7f0d-4c2e-9d1a-2e3f4a5b6c7d")
_EXAMPLE_TIME = datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def default_root() -> Path:
    """The contracts project folder (holding `schemas/` and `asyncapi.json`) of this checkout."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SchemaFile:
    """Where a schema file of one event version lives, parsed from its path."""

    package: str
    event_type: str
    version: int


def event_schema_path(service: ServiceContract, event: type[ContractEvent]) -> str:
    """Path, relative to the contracts folder, of an event's current schema."""
    return f"{SCHEMAS_DIR}/{service.package}/{event.event_type}.v{event.schema_version}.json"


def parse_schema_path(relpath: str) -> SchemaFile | None:
    """The event and version a schema path names; None for any other file."""
    match = _EVENT_FILE.match(relpath)
    if match is None:
        return None
    return SchemaFile(match["package"], match["event_type"], int(match["version"]))


def event_schema(service: ServiceContract, event: type[ContractEvent]) -> dict[str, Any]:
    """The JSON Schema of one event payload, annotated with its type, version, stream and topic."""
    schema = event.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = f"urn:exemption:event:{event.event_type}:v{event.schema_version}"
    schema["x-event-type"] = event.event_type
    schema["x-schema-version"] = event.schema_version
    schema["x-service"] = service.service
    schema["x-stream-type"] = event.stream_type
    schema["x-stream-id"] = event.stream.id_field
    schema["x-topic"] = event.topic
    return schema


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of the envelope every event travels in (owned by eventkit)."""
    schema = EventEnvelope.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = "urn:exemption:envelope"
    return schema


def example_envelope(service: ServiceContract, event: type[ContractEvent]) -> dict[str, Any]:
    """A complete envelope around the event's first example, with stable ids and times."""
    model = event.model_validate(event_examples(event)[0])
    actor = _example_actor(service, model)
    envelope = EventEnvelope(
        event_id=uuid.uuid5(_EXAMPLE_NAMESPACE, f"{event.event_type}.v{event.schema_version}"),
        event_type=event.event_type,
        schema_version=event.schema_version,
        stream_type=event.stream_type,
        stream_id=model.stream_id,
        stream_version=1,
        occurred_at=_EXAMPLE_TIME,
        recorded_at=_EXAMPLE_TIME + timedelta(milliseconds=120),
        correlation_id=uuid.uuid5(_EXAMPLE_NAMESPACE, f"correlation.{event.event_type}"),
        causation_id=None,
        actor=Actor.model_validate(actor),
        payload=model.model_dump(mode="json"),
    )
    return envelope.model_dump(mode="json")


def _example_actor(service: ServiceContract, event: ContractEvent) -> dict[str, str]:
    if event.event_type == "StaffAccountCreated":
        return {"kind": "ops", "id": ex.SENIOR_STAFF_ID}
    reviewer = getattr(event, "reviewer_id", None)
    if reviewer is not None:
        return {"kind": "staff", "id": str(reviewer)}
    if service.service == "credential-verify":
        return {"kind": "system", "id": "credential-verify"}
    return {"kind": "candidate", "id": ex.CANDIDATE_ID}


def _channel_id(stream: Stream) -> str:
    return stream.stream_type.replace(".", "-")


def _hoist_defs(schema: Mapping[str, Any], into: dict[str, Any], owner: str) -> dict[str, Any]:
    """Move `$defs` into AsyncAPI components, pointing every `#/$defs/X` there instead."""
    for name, definition in schema.get("$defs", {}).items():
        rewritten = _rewrite_refs(definition)
        if name in into and into[name] != rewritten:
            raise ValueError(f"{owner}: two different schemas are both named {name!r}")
        into[name] = rewritten
    body = {k: v for k, v in schema.items() if k not in ("$defs", "$schema", "$id", "x-stream-id")}
    rewritten_body: dict[str, Any] = _rewrite_refs(body)
    return rewritten_body


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, Mapping):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def asyncapi_document() -> dict[str, Any]:
    """One AsyncAPI 3.0 document: a channel per topic, a message per event, envelope payloads."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas["EventEnvelope"] = _hoist_defs(envelope_schema(), schemas, "EventEnvelope")
    schemas["KafkaHeaders"] = {
        "type": "object",
        "description": (
            "Kafka record headers set by eventkit's relay (eventkit.kafka.message_headers): "
            "routing without parsing the value, and W3C trace context"
        ),
        "properties": {
            "event_type": {"type": "string", "description": "same as the envelope's"},
            "event_id": {"type": "string", "format": "uuid", "description": "same as envelope's"},
            "schema_version": {"type": "string", "description": "the envelope's, as text"},
            "traceparent": {"type": "string", "description": "W3C traceparent"},
        },
    }
    for service in SERVICES:
        for stream in service.streams:
            channel = _channel_id(stream)
            events = [e for e in service.events if e.stream is stream]
            channels[channel] = {
                "address": stream.topic,
                "title": stream.topic,
                "description": stream.description,
                "messages": {
                    e.event_type: {"$ref": f"#/components/messages/{e.event_type}"} for e in events
                },
                "bindings": {
                    "kafka": {"topic": stream.topic, "bindingVersion": KAFKA_BINDING_VERSION}
                },
                "x-stream-type": stream.stream_type,
                "x-publisher": service.service,
            }
            operations[f"send-{channel}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{service.service} publishes its {stream.stream_type} stream",
                "messages": [
                    {"$ref": f"#/channels/{channel}/messages/{e.event_type}"} for e in events
                ],
            }
            for event in events:
                payload_name = f"{event.event_type}.v{event.schema_version}"
                owner = payload_name
                schemas[payload_name] = _hoist_defs(event_schema(service, event), schemas, owner)
                schemas[f"{payload_name}.envelope"] = {
                    "allOf": [
                        {"$ref": "#/components/schemas/EventEnvelope"},
                        {
                            "type": "object",
                            "properties": {
                                "event_type": {"const": event.event_type},
                                "schema_version": {"const": event.schema_version},
                                "stream_type": {"const": event.stream_type},
                                "payload": {"$ref": f"#/components/schemas/{payload_name}"},
                            },
                        },
                    ]
                }
                messages[event.event_type] = {
                    "name": event.event_type,
                    "title": f"{event.event_type} v{event.schema_version}",
                    "summary": (event.__doc__ or "").strip().splitlines()[0],
                    "contentType": "application/json",
                    "headers": {"$ref": "#/components/schemas/KafkaHeaders"},
                    "payload": {"$ref": f"#/components/schemas/{payload_name}.envelope"},
                    "bindings": {
                        "kafka": {
                            "key": {
                                "type": "string",
                                "description": f"the stream id: payload.{stream.id_field}",
                            },
                            "bindingVersion": KAFKA_BINDING_VERSION,
                        }
                    },
                    "examples": [{"name": "example", "payload": example_envelope(service, event)}],
                }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "自考免考申请 (course exemption) domain events",
            "version": DOCUMENT_VERSION,
            "description": (
                "Every event the services publish to Kafka: one channel per stream type, "
                "records keyed by stream id, values are JSON envelopes around the payload. "
                "Generated by `contracts generate`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render_json(document: Any) -> str:
    """The committed text form: two-space indent, sorted keys, UTF-8, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def current_schemas() -> dict[str, dict[str, Any]]:
    """Every schema the code defines now, by path: each current event version and the envelope."""
    schemas: dict[str, dict[str, Any]] = {ENVELOPE_FILE: envelope_schema()}
    for service in SERVICES:
        for event in service.events:
            schemas[event_schema_path(service, event)] = event_schema(service, event)
    return schemas


def generated_files() -> dict[str, str]:
    """Every generated file's text, by path relative to the contracts folder."""
    files = {path: render_json(schema) for path, schema in current_schemas().items()}
    files[ASYNCAPI_FILE] = render_json(asyncapi_document())
    return dict(sorted(files.items()))


def _schema_files_on_disk(root: Path) -> Iterator[str]:
    base = root / SCHEMAS_DIR
    if base.is_dir():
        for path in sorted(base.rglob("*.json")):
            yield path.relative_to(root).as_posix()


def is_past_version(relpath: str) -> bool:
    """Whether a schema file records an older version of a current event (kept as history)."""
    parsed = parse_schema_path(relpath)
    if parsed is None:
        return False
    for service in SERVICES:
        for event in service.events:
            if event.event_type == parsed.event_type and service.package == parsed.package:
                return parsed.version < event.schema_version
    return False


def write_generated(root: Path) -> list[str]:
    """Write every generated file whose text differs; returns the paths written."""
    written: list[str] = []
    for relpath, text in generated_files().items():
        target = root / relpath
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\n")
        written.append(relpath)
    return written


def check_generated(root: Path) -> list[str]:
    """What is missing, stale or unexpected on disk, as `path: problem` lines; writes nothing."""
    expected = generated_files()
    problems: list[str] = []
    for relpath, text in expected.items():
        target = root / relpath
        if not target.is_file():
            problems.append(f"{relpath}: missing")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{relpath}: stale")
    for relpath in _schema_files_on_disk(root):
        if relpath not in expected and not is_past_version(relpath):
            problems.append(f"{relpath}: unexpected (no current or past version of an event)")
    return problems
