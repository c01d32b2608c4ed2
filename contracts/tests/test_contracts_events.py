"""Every event: declared fully, round-trips through the envelope and the shared registry."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import get_args

import pytest
from pydantic import BaseModel

from contracts.base import ContractEvent, ServiceContract, event_examples
from contracts.registry import REGISTRY, SERVICES, all_events, all_streams, event_class
from eventkit.envelope import Actor, EventEnvelope, NewEvent

pytestmark = pytest.mark.unit

EVENTS = all_events()
IDS = [event.event_type for _, event in EVENTS]


def envelope_of(event: ContractEvent) -> EventEnvelope:
    new = NewEvent.of(event)
    return EventEnvelope(
        event_id=new.event_id,
        event_type=new.event_type,
        schema_version=new.schema_version,
        stream_type=event.stream_type,
        stream_id=event.stream_id,
        stream_version=1,
        occurred_at=new.occurred_at,
        recorded_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor.system("contracts-test"),
        payload=new.payload,
    )


@pytest.mark.parametrize(("service", "event"), EVENTS, ids=IDS)
def test_every_example_round_trips_through_envelope_json_and_registry(
    service: ServiceContract, event: type[ContractEvent]
) -> None:
    examples = event_examples(event)
    assert examples, f"{event.event_type} has no json_schema_extra example"
    for example in examples:
        original = event.model_validate(example)
        raw = envelope_of(original).to_json_bytes()
        decoded = REGISTRY.decode(EventEnvelope.from_json_bytes(raw))
        assert type(decoded) is event
        assert decoded == original
        assert original.model_dump(mode="json", exclude_unset=True) == example


@pytest.mark.parametrize(("service", "event"), EVENTS, ids=IDS)
def test_every_event_is_declared_completely(
    service: ServiceContract, event: type[ContractEvent]
) -> None:
    assert event.event_type == event.__name__
    assert re.fullmatch(r"[A-Z][A-Za-z]+(ed|wn)(To[A-Z][a-z]+)?", event.event_type), "past tense"
    assert event.stream in service.streams
    assert event.topic == f"{event.stream_type}.v1"
    assert event.topic.split(".")[0] in (service.package, service.service)
    doc = (event.__doc__ or "").strip()
    assert doc and "\n" not in doc, "one-line docstring"
    assert event.model_config.get("frozen") is True
    assert event.model_config.get("extra") == "forbid"
    for model in nested_models(event):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model its fields hold, however deeply (through lists, unions)."""
    found: list[type[BaseModel]] = []
    pending: list[object] = [model]
    while pending:
        candidate = pending.pop()
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if candidate in found:
                continue
            found.append(candidate)
            pending += [field.annotation for field in candidate.model_fields.values()]
        else:
            pending += list(get_args(candidate))
    return found


def test_event_types_and_topics_are_unique() -> None:
    assert len(IDS) == len(set(IDS))
    topics = [stream.topic for stream in all_streams()]
    assert len(topics) == len(set(topics))
    assert set(REGISTRY.models) == set(IDS)


def test_the_registry_knows_every_architecture_event() -> None:
    expected = {
        "identity": {
            "CandidateRegistered",
            "CandidateProfileUpdated",
            "CandidatePassedCoursesRecorded",
            "StaffAccountCreated",
        },
        "credential-verify": {
            "DegreeAuthorizationRequested",
            "DegreesVerified",
            "DegreeAuthorizationExpired",
            "CertificateVerified",
            "CertificateVerificationFailed",
        },
        "media": {"PhotoUploaded", "PhotoRejected", "PhotoDeleted"},
        "application": {
            "ApplicationDrafted",
            "CertificateAdded",
            "CertificateRemoved",
            "ApplicationSubmitted",
            "ApplicationResubmitted",
            "ApplicationWithdrawn",
            "ApplicationReturnedToCandidate",
            "ApplicationDecided",
            "ApplicationWindowOpened",
            "ApplicationWindowClosed",
        },
        "review": {
            "ReviewClaimed",
            "ReviewReleased",
            "InitialReviewCompleted",
            "ApplicationReturned",
            "ApplicationApproved",
        },
    }
    assert {s.service: {e.event_type for e in s.events} for s in SERVICES} == expected


def test_payloads_are_frozen() -> None:
    model = event_class("PhotoDeleted")
    event = model.model_validate(event_examples(model)[0])
    with pytest.raises(ValueError, match="frozen"):
        event.reason_code = "ops_removed"  # type: ignore[attr-defined]


def test_unknown_fields_are_refused() -> None:
    example = {**event_examples(event_class("PhotoDeleted"))[0], "owner_id_number": "x"}
    with pytest.raises(ValueError, match="Extra inputs"):
        event_class("PhotoDeleted").model_validate(example)


def test_event_class_rejects_unknown_types() -> None:
    with pytest.raises(KeyError):
        event_class("NoSuchEvent")
