"""Seed loading and the identity checks the seeds must pass."""

from __future__ import annotations

import json
import os
import re
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")


def gb11643_check_digit(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of an ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def is_valid_id_number(value: str) -> bool:
    """True for an 18-character ID number with a valid birth date and GB 11643 check digit."""
    if not _ID_SHAPE.match(value):
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return gb11643_check_digit(value[:17]) == value[17]


def load_seed(name: str) -> dict[str, Any]:
    """Read a packaged seed file (`chsi_seed.json`, `neea_seed.json`)."""
    text = resources.files("sandboxes").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


EXTRA_SEED_ENV = "SANDBOX_EXTRA_SEED"


def load_seed_with_extra(name: str, key: str) -> dict[str, Any]:
    """The packaged seed `name`, with the extra records of `$SANDBOX_EXTRA_SEED` appended.

    That variable names a JSON file ``{"chsi": {"people": [...]}, "neea": {"certificates":
    [...]}}`` (each part optional, same shapes as the packaged seeds): a lane that needs more
    people than the six packaged ones (the fault lane's workload) writes them there. Every list
    under the provider's `key` is appended to the packaged list of the same name."""
    data = load_seed(name)
    path = os.environ.get(EXTRA_SEED_ENV)
    if not path:
        return data
    extra = json.loads(Path(path).read_text(encoding="utf-8")).get(key) or {}
    for field, items in extra.items():
        if not isinstance(items, list):
            raise ValueError(f"{path}: {key}.{field} must be a list")
        data.setdefault(field, []).extend(items)
    return data
