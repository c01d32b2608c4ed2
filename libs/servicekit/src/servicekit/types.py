"""Annotated types request models share: dates and moments in a sane range.

    class WindowCreate(StrictRequest):
        opens_at: SaneDatetime            # 2000-01-01 .. 2100-12-31, else request.invalid
        objection_deadline: SaneDate | None = None

A date a person or an operator enters for this system (a window's deadlines, an objection
deadline) lies in EARLIEST .. LATEST. Outside it, PostgreSQL stores year 1 as `-infinity`
(read back as a naive year-1 datetime no window or deadline accepts) and refuses dates
beyond its range, so one typo would break every list and page that reads the row. Refused
values answer 422 `request.invalid` with code `date_out_of_range` naming the field.
`sane_range_problem` is the same rule for command lines and forms.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
DATE_OUT_OF_RANGE = "date_out_of_range"
RANGE_MESSAGE = f"日期须在 {EARLIEST.isoformat()} 至 {LATEST.isoformat()} 之间"


def in_sane_range(value: date | datetime) -> bool:
    """Whether the calendar date of `value` (in its own offset) lies in EARLIEST .. LATEST."""
    day = value.date() if isinstance(value, datetime) else value
    return EARLIEST <= day <= LATEST


def sane_range_problem(value: date | datetime, field: str) -> str | None:
    """A Chinese message naming `field` when `value` is out of range, else None."""
    if in_sane_range(value):
        return None
    return f"{field}：{RANGE_MESSAGE}"


_D = TypeVar("_D", date, datetime)


def _refuse_out_of_range(value: _D) -> _D:
    if not in_sane_range(value):
        raise PydanticCustomError(
            DATE_OUT_OF_RANGE,
            "date outside {earliest} .. {latest}",
            {"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()},
        )
    return value


# A moment whose date (in its own offset) lies in EARLIEST .. LATEST.
SaneDatetime = Annotated[datetime, AfterValidator(_refuse_out_of_range)]
# A date in EARLIEST .. LATEST.
SaneDate = Annotated[date, AfterValidator(_refuse_out_of_range)]

__all__ = [
    "DATE_OUT_OF_RANGE",
    "EARLIEST",
    "LATEST",
    "RANGE_MESSAGE",
    "SaneDate",
    "SaneDatetime",
    "in_sane_range",
    "sane_range_problem",
]
