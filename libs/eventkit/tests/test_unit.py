"""Unit tests of eventkit's pure parts: envelope, registry, masking, identifiers, migrations."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from eventkit.envelope import (
    Actor,
    DomainEvent,
    EventEnvelope,
    Metadata,
    NewEvent,
    trusted_actor,
    trusted_envelope,
)
from eventkit.feed import Position
from eventkit.kafka import header, message_headers, traceparent
from eventkit.logs import JsonFormatter, correlation_id, mask_personal_data
from eventkit.migrations import MigrationError, discover, eventkit_migrations
from eventkit.projection import check_identifier
from eventkit.registry import EventRegistry, UnknownEventType

pytestmark = pytest.mark.unit


class Greeted(DomainEvent):
    event_type: ClassVar[str] = "Greeted"
    schema_version: ClassVar[int] = 2
    name: str
    polite: bool


def envelope(payload: dict[str, object], version: int = 2) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type="Greeted",
        schema_version=version,
        stream_type="greeting",
        stream_id="g-1",
        stream_version=1,
        occurred_at="2026-11-28T10:00:00+08:00",
        correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id="c-1"),
        payload=payload,
    )


def test_envelope_round_trips_through_json() -> None:
    env = envelope({"name": "张三", "polite": True})
    assert EventEnvelope.from_json_bytes(env.to_json_bytes()) == env


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"{}", b'{"event_id": "x"}', json.dumps({"a": 1}).encode()],
)
def test_bad_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        EventEnvelope.from_json_bytes(raw)


def test_registry_upcasts_old_versions() -> None:
    registry = EventRegistry()
    registry.register(Greeted)

    @registry.upcaster("Greeted", 1)
    def add_polite(payload: dict[str, object]) -> dict[str, object]:
        return {**payload, "polite": False}

    decoded = registry.decode(envelope({"name": "李四"}, version=1))
    assert decoded == Greeted(name="李四", polite=False)
    assert registry.decode(envelope({"name": "a", "polite": True})) == Greeted(
        name="a", polite=True
    )
    with pytest.raises(UnknownEventType):
        registry.decode(envelope({"name": "a"}, version=3))
    with pytest.raises(ValueError, match="twice"):
        registry.upcaster("Greeted", 1)(add_polite)


def test_registry_refuses_unknown_types_and_missing_upcasters() -> None:
    registry = EventRegistry()
    with pytest.raises(UnknownEventType):
        registry.decode(envelope({"name": "a", "polite": True}))
    registry.register(Greeted)
    with pytest.raises(UnknownEventType, match="no upcaster"):
        registry.decode(envelope({"name": "a"}, version=1))


def test_new_event_wraps_a_typed_payload() -> None:
    new = NewEvent.of(Greeted(name="王五", polite=True))
    assert (new.event_type, new.schema_version) == ("Greeted", 2)
    assert new.payload == {"name": "王五", "polite": True}


def test_metadata_reacting_to_keeps_the_correlation() -> None:
    env = envelope({"name": "a", "polite": True})
    meta = Metadata.reacting_to(env, Actor.system("policy"))
    assert meta.correlation_id == env.correlation_id
    assert meta.causation_id == env.event_id


def test_headers_carry_type_id_and_trace() -> None:
    env = envelope({"name": "a", "polite": True})
    headers = message_headers(env)
    assert header(headers, "event_type") == "Greeted"
    assert header(headers, "event_id") == str(env.event_id)
    assert header(headers, "missing") is None
    parts = traceparent(env).split("-")
    assert parts[0] == "00" and parts[1] == env.correlation_id.hex and len(parts[2]) == 16


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("身份证 14010519900101123X 登录", "身份证 1401**********123X 登录"),
        ("id=140105199001011234,", "id=1401**********1234,"),
        ("手机 13812345678", "手机 138****5678"),
        ("order 1234567890123456789012", "order 1234567890123456789012"),
        ("case 2026112800001", "case 2026112800001"),
        ("电话+8613812345678。", "电话+86138****5678。"),
        # Digit runs inside tokens are not personal numbers: ids and digests stay matchable.
        ("cid 0f0e4e2a-7b1c-4d2e-9f3a-a13912345678", "cid 0f0e4e2a-7b1c-4d2e-9f3a-a13912345678"),
        ("sha f13912345678e140105199003152018b", "sha f13912345678e140105199003152018b"),
        ("key k140105199003152018", "key k140105199003152018"),
        # An 18-digit number without a birth date in it is not an ID number.
        ("offset 123456789012345678", "offset 123456789012345678"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def test_json_logs_are_masked_and_carry_the_correlation_id() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "login %s", ("14010519900101123X",), None)
    record.phone = "13912345678"
    token = correlation_id.set("corr-1")
    try:
        line = json.loads(JsonFormatter("identity").format(record))
    finally:
        correlation_id.reset(token)
    assert line["msg"] == "login 1401**********123X"
    assert line["phone"] == "139****5678"
    assert line["correlation_id"] == "corr-1"
    assert line["service"] == "identity"


def test_the_kafka_clients_reconnect_chatter_is_folded_and_downgraded() -> None:
    from eventkit.logs import ClientChatter

    chatter = ClientChatter(window=30.0)

    def record(name: str, msg: str, at: float, level: int = logging.ERROR) -> logging.LogRecord:
        r = logging.LogRecord(name, level, "f", 1, msg, ("1", "refused"), None)
        r.created = at
        return r

    first = record("aiokafka", "Unable connect to node with id %s: %s", 0.0)
    assert chatter.filter(first) and first.levelname == "WARNING"
    # the same complaint (any node) within the window: folded
    assert not any(
        chatter.filter(record("aiokafka", "Unable connect to node with id %s: %s", t))
        for t in (1.0, 2.0, 29.0)
    )
    other = record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 3.0)
    assert chatter.filter(other)
    later = record("aiokafka", "Unable connect to node with id %s: %s", 31.0)
    assert chatter.filter(later) and later.folded == 3  # type: ignore[attr-defined]
    # the system's own records are never touched
    ours = record("eventkit.worker", "worker component crashed; restarting", 32.0)
    assert chatter.filter(ours) and ours.levelname == "ERROR"
    assert chatter.filter(record("eventkit.worker", "worker component crashed; restarting", 33.0))


def test_positions_order_by_transaction_then_seq() -> None:
    assert Position(5, 100) < Position(6, 1) < Position(6, 2)
    assert Position(1, 1) > Position.ZERO


@pytest.mark.parametrize("name", ["review_queue", "_x", "a1"])
def test_identifiers_accepted(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize("name", ["", "Queue", 'x"; drop', "1abc", "a-b", "a" * 60])
def test_identifiers_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid projection name"):
        check_identifier(name)


def test_migrations_are_discovered_in_order(tmp_path: Path) -> None:
    (tmp_path / "0002_more.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("ignored")
    found = discover(tmp_path)
    assert [m.version for m in found] == [1, 2]
    assert found[0].checksum != found[1].checksum
    assert eventkit_migrations()[0].name == "0001_eventkit.sql"


@pytest.mark.parametrize("name", ["1_x.sql", "0001-x.sql", "0001_X.sql"])
def test_bad_migration_names_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        discover(tmp_path)


def test_duplicate_migration_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="duplicate"):
        discover(tmp_path)


def test_trusted_envelopes_equal_validated_ones() -> None:
    validated = envelope({"name": "张三", "polite": True})
    fields = dict(validated)
    fields["actor"] = trusted_actor(validated.actor.kind, validated.actor.id)
    trusted = trusted_envelope(**fields)
    assert trusted == validated
    assert trusted.to_json_bytes() == validated.to_json_bytes()
    assert EventEnvelope.from_json_bytes(trusted.to_json_bytes()) == validated
    with pytest.raises(ValidationError):
        trusted.stream_id = "changed"  # type: ignore[misc]
