"""The one registry of every published event, built from the services' contract modules.

One shared registry rather than one per service: event types are one namespace (a consumer of
several topics decodes them all with one registry, and registering the same type name twice
fails here, at import, rather than in a consumer), and the schema tooling walks all of it.
A service that wants a narrower view builds one with `build_registry(...)`.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts import application, credential, identity, media, review
from contracts.base import ContractEvent, ServiceContract, Stream
from eventkit.registry import EventRegistry

SERVICES: tuple[ServiceContract, ...] = (
    identity.CONTRACT,
    credential.CONTRACT,
    media.CONTRACT,
    application.CONTRACT,
    review.CONTRACT,
)


def build_registry(services: Iterable[ServiceContract] = SERVICES) -> EventRegistry:
    """A registry holding the events and upcasters of the given services."""
    registry = EventRegistry()
    for service in services:
        for event in service.events:
            registry.register(event)
        for event_type, from_version in sorted(service.upcasters):
            registry.upcaster(event_type, from_version)(service.upcasters[event_type, from_version])
    return registry


def all_events() -> list[tuple[ServiceContract, type[ContractEvent]]]:
    """Every current event model with the service publishing it, in declaration order."""
    return [(service, event) for service in SERVICES for event in service.events]


def all_streams() -> list[Stream]:
    """Every publishing stream type, in declaration order."""
    return [stream for service in SERVICES for stream in service.streams]


def event_class(event_type: str) -> type[ContractEvent]:
    """The current model of an event type; raises KeyError for an unknown one."""
    for _, event in all_events():
        if event.event_type == event_type:
            return event
    raise KeyError(event_type)


REGISTRY = build_registry()
