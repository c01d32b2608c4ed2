"""Event type registry: payload models by (type, version) and upcasters from old versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventkit.envelope import DomainEvent, EventEnvelope

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(LookupError):
    """An envelope names an event type (or version) this reader has no model for."""


class EventRegistry:
    """Maps event types to their current payload models; older versions are upcast on read."""

    def __init__(self) -> None:
        self._models: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, model: type[DomainEvent]) -> type[DomainEvent]:
        """Register the current version of an event model (usable as a class decorator)."""
        existing = self._models.get(model.event_type)
        if existing is not None and existing is not model:
            raise ValueError(f"event type {model.event_type!r} registered twice")
        self._models[model.event_type] = model
        return model

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning a `from_version` payload into a `from_version + 1` one."""

        def decorate(fn: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"upcaster for {event_type} v{from_version} registered twice")
            self._upcasters[key] = fn
            return fn

        return decorate

    @property
    def models(self) -> dict[str, type[DomainEvent]]:
        """Current models by event type."""
        return dict(self._models)

    def upcast(self, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Bring a payload of any known older version up to the current one."""
        model = self._models.get(event_type)
        if model is None:
            raise UnknownEventType(event_type)
        if version > model.schema_version:
            raise UnknownEventType(f"{event_type} v{version} is newer than this reader")
        while version < model.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(f"no upcaster for {event_type} v{version}")
            payload = step(payload)
            version += 1
        return payload

    def decode(self, envelope: EventEnvelope) -> DomainEvent:
        """The typed, current-version payload of an envelope."""
        payload = self.upcast(envelope.event_type, envelope.schema_version, envelope.payload)
        return self._models[envelope.event_type].model_validate(payload)
