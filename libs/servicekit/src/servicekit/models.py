"""The base of every request body, and the text types request models share.

    class ReturnRequest(StrictRequest):
        reason: RequiredText          # refused when blank, even if only zero-width characters
        note: OptionalText = None     # blank becomes None

`StrictRequest` refuses unknown fields and any C0 control character (other than tab and
newline) or DEL in any string anywhere in the body, naming the field (`request.invalid`, code
`string_control_character`): PostgreSQL refuses U+0000 in text and jsonb, and no field a
person fills in needs the others. The same rule guards query strings (`servicekit.limits`)
and web forms (`form_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from eventkit.text import clean_text, has_control_characters

CONTROL_CHARACTER = "string_control_character"
_SCALARS = frozenset({int, float, bool})
BLANK = "string_blank"


def _contains_control(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return has_control_characters(value)
    if isinstance(value, BaseModel) or depth > 32:
        return False  # a nested model checked its own fields
    if isinstance(value, Mapping):
        return any(
            _contains_control(k, depth + 1) or _contains_control(v, depth + 1)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple | set | frozenset):
        return any(_contains_control(v, depth + 1) for v in value)
    return False


def refuse_control_characters(value: Any) -> Any:
    """`value` unchanged, or a validation error if some string in it has a control character."""
    if _contains_control(value):
        raise PydanticCustomError(CONTROL_CHARACTER, "text contains a control character")
    return value


class StrictRequest(BaseModel):
    """Request bodies: unknown fields refused, control characters refused in every string."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if value is None or type(value) in _SCALARS:
            return value  # the common case, without the walk
        return refuse_control_characters(value)


def _required(value: str) -> str:
    text = clean_text(refuse_control_characters(value))
    if not text:
        raise PydanticCustomError(BLANK, "text is blank")
    return text


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    return clean_text(refuse_control_characters(value)) or None


# Control characters refused (before trimming: a lone U+000B is not "blank"), then trimmed of
# whitespace and invisible format characters at the edges; blank refused.
RequiredText = Annotated[str, AfterValidator(_required)]
# Trimmed the same way; blank (including only zero-width characters) becomes None.
OptionalText = Annotated[str | None, AfterValidator(_optional)]
