"""What counts as text: no control characters, and "blank" that sees through invisible ones.

Framework-free and without I/O, so domain code may use it. PostgreSQL refuses U+0000 in `text`
and `jsonb`, and the other C0 controls are never part of a name, a reason or a number a person
types; tab and newline are (a multi-line note). "Blank" means nothing left once whitespace and
Unicode format characters (category Cf: zero-width space and joiners, the BOM, bidi marks) are
removed, so a reason of only U+200B is as empty as "".
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED_CONTROLS = frozenset("\t\n")
# C0 controls (U+0000..U+001F) but tab and newline, and DEL (U+007F).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def has_control_characters(text: str) -> bool:
    """Whether `text` holds a C0 control character other than tab and newline, or DEL."""
    return _CONTROL.search(text) is not None


def visible(text: str) -> str:
    """`text` without whitespace and format characters (Cf): what a reader actually sees."""
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf")


def is_blank(text: str | None) -> bool:
    """True for None, "", whitespace, and text made only of invisible format characters."""
    return not text or not visible(text)


def clean_text(text: str | None) -> str:
    """`text` trimmed of surrounding whitespace and format characters; "" when it is blank.

    Inner format characters are kept (a ZWJ inside an emoji, a name's joiner), only the ones at
    the edges go, so the stored reason starts and ends with what the candidate will see.
    """
    if is_blank(text):
        return ""
    assert text is not None
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def ascii_int(text: str | None) -> int | None:
    """`text` as a non-negative integer if it is 1..18 ASCII digits, else None.

    `str.isdigit()` also accepts "²" and "١", which `int()` then refuses or reads as another
    number; query parameters, headers and form fields are parsed through this one rule.
    """
    if not text or len(text) > 18 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
