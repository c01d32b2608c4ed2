"""No payload carries a raw ID-card or phone number: only masked forms and fingerprints."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from contracts.base import (
    PERSONAL_DATA_KEY,
    ContractEvent,
    IdNumberFingerprint,
    MaskedIdNumber,
    Stream,
    event_examples,
    fingerprint_id_number,
    mask_id_number,
    mask_mobile,
)
from contracts.registry import all_events

pytestmark = pytest.mark.unit

PERSONAL_NAME = re.compile(
    r"id_?card|id_?number|identity_?number|id_?no\b|passport|phone|mobile|telephone|身份证|手机",
    re.IGNORECASE,
)
ID_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])")
MOBILE_LIKE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
TEST_STREAM = Stream("test", "test.leaky", "test.leaky.v1", "leak_id", "test only")


def personal_fields(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every property, however nested (through $defs), whose name says personal data."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    pending: list[tuple[str, Mapping[str, Any]]] = [("$", schema)]
    pending += [(f"$defs.{name}", definition) for name, definition in defs.items()]
    while pending:
        where, node = pending.pop()
        for name, prop in node.get("properties", {}).items():
            if PERSONAL_NAME.search(name):
                yield f"{where}.{name}", prop
            pending.append((f"{where}.{name}", prop))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), Mapping):
                pending.append((f"{where}[]", node[key]))
        for member in node.get("anyOf", []) + node.get("oneOf", []):
            pending.append((where, member))


def is_marked(prop: Mapping[str, Any]) -> bool:
    """Marked as masked or fingerprint; in a nullable union every non-null branch must be."""
    if PERSONAL_DATA_KEY in prop:
        return True
    members = [m for m in prop.get("anyOf", []) if m.get("type") != "null"]
    return bool(members) and all(PERSONAL_DATA_KEY in m for m in members)


def leaks(model: type[BaseModel]) -> list[str]:
    schema = model.model_json_schema()
    return [where for where, prop in personal_fields(schema) if not is_marked(prop)]


def is_id_number(text: str) -> bool:
    """A real-looking 18-character ID-card number: valid birth date and GB 11643 check digit."""
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    remainder = sum(int(d) * w for d, w in zip(text[:17], WEIGHTS, strict=True)) % 11
    return "10X98765432"[remainder] == text[17]


@pytest.mark.parametrize("event", [event for _, event in all_events()], ids=lambda e: e.event_type)
def test_no_payload_field_holds_a_raw_id_or_phone_number(event: type[ContractEvent]) -> None:
    assert leaks(event) == []


@pytest.mark.parametrize("event", [event for _, event in all_events()], ids=lambda e: e.event_type)
def test_no_example_contains_an_id_or_mobile_number(event: type[ContractEvent]) -> None:
    text = json.dumps(event_examples(event), ensure_ascii=False)
    assert [m for m in ID_LIKE.findall(text) if is_id_number(m)] == []
    assert MOBILE_LIKE.findall(text) == []


def test_the_scan_catches_raw_personal_fields_even_when_nested() -> None:
    class Contact(BaseModel):
        mobile: str = Field(description="raw")

    class Leaky(ContractEvent):
        """A payload that must not exist."""

        event_type: ClassVar[str] = "Leaky"
        stream: ClassVar[Stream] = TEST_STREAM

        leak_id: str = Field(description="the stream id")
        id_number: str | None = Field(default=None, description="raw")
        id_card_masked: MaskedIdNumber = Field(description="fine")
        id_number_fingerprint: IdNumberFingerprint | None = Field(default=None, description="ok")
        contacts: list[Contact] = Field(description="raw, nested")

    assert sorted(leaks(Leaky)) == ["$.id_number", "$defs.Contact.mobile"]


def test_masking_and_fingerprints() -> None:
    raw = "11010519491231002X"
    assert is_id_number(raw)
    assert mask_id_number(raw.lower()) == "1101**********002X"
    assert mask_mobile("13812345678") == "138****5678"
    key = b"k" * 32
    fingerprint = fingerprint_id_number(raw, key)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert fingerprint == fingerprint_id_number(f" {raw.lower()} ", key)
    assert fingerprint != fingerprint_id_number(raw, b"j" * 32)
    with pytest.raises(ValueError, match="18-character"):
        mask_id_number("1234")
    with pytest.raises(ValueError, match="11-digit"):
        mask_mobile("12345")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        fingerprint_id_number(raw, b"short")
