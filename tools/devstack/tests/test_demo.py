"""The demo data `make run` loads: a roster identity accepts, staff for both stages, a
walkthrough that names them."""

from __future__ import annotations

import pytest

from devstack import demo
from identity_service.domain.id_card import check_digit

pytestmark = pytest.mark.unit


def test_the_demo_roster_is_valid_for_identity() -> None:
    tickets = {row[0] for row in demo.ROSTER}
    assert len(tickets) == len(demo.ROSTER)
    for _ticket, id_number, name, gender, district, major in demo.ROSTER:
        assert check_digit(id_number[:17]) == id_number[17], name
        odd = int(id_number[16]) % 2 == 1
        assert gender == ("男" if odd else "女"), name  # GB 11643: the 17th digit's parity
        assert len(district) == 6 and district.isdigit()
        assert len(major) == 6


def test_staff_cover_both_stages_and_the_walkthrough_names_them() -> None:
    roles = {account.role for account in demo.STAFF}
    assert {"reviewer", "senior_reviewer"} <= roles
    text = "\n".join(demo.walkthrough("http://p", "http://r", "http://c"))
    for account in demo.STAFF[:2]:
        assert account.username in text
    assert demo.ROSTER[0][0] in text and demo.STAFF_PASSWORD in text
