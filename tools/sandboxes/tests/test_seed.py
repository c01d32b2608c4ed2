"""Seed sanity: identities, certificate numbers, code shapes, and cross-sandbox consistency."""

from __future__ import annotations

import re
from datetime import date

import pytest

from sandboxes.seed import gb11643_check_digit, is_valid_id_number, load_seed

pytestmark = pytest.mark.unit

CHSI = load_seed("chsi_seed.json")
NEEA = load_seed("neea_seed.json")
RECORDS = [r for p in CHSI["people"] for r in p["records"]]
LEVEL_CODES = {"博士研究生": "01", "硕士研究生": "02", "本科": "05", "专科": "06"}


def test_check_digit_known_value() -> None:
    assert gb11643_check_digit("11010519491231002") == "X"
    assert is_valid_id_number("11010519491231002X")
    assert not is_valid_id_number("110105194912310021")
    assert not is_valid_id_number("110105194902300023")


def test_every_id_number_passes_gb11643() -> None:
    ids = [p["id_number"] for p in CHSI["people"]] + [r["id_number"] for r in RECORDS]
    ids += [c["id_number"] for c in NEEA["certificates"]]
    for value in ids:
        assert is_valid_id_number(value), value
        assert value.startswith("14")


def test_records_match_their_person() -> None:
    for person in CHSI["people"]:
        assert person["password"]
        for record in person["records"]:
            assert record["id_number"] == person["id_number"]
            id_number = record["id_number"]
            birth = f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
            assert record["birth_date"] == birth
            assert record["gender"] == ("男" if int(id_number[16]) % 2 else "女")


def test_exactly_one_person_has_a_record_under_another_name() -> None:
    differing = [p["name"] for p in CHSI["people"] for r in p["records"] if r["name"] != p["name"]]
    assert differing == ["赵敏"]


def test_certificate_numbers_are_18_digits_and_consistent() -> None:
    numbers = [r["certificate_number"] for r in RECORDS]
    assert len(set(numbers)) == len(numbers)
    for record in RECORDS:
        number = record["certificate_number"]
        assert re.fullmatch(r"\d{18}", number), number
        assert number[6:10] == record["graduation_date"][:4]
        assert number[10:12] == LEVEL_CODES[record["level"]]


def test_levels_transcripts_and_codes() -> None:
    assert {"专科", "本科", "硕士研究生"} <= {r["level"] for r in RECORDS}
    assert any(not r["transcript"] for r in RECORDS)
    courses = [c for r in RECORDS for c in r["transcript"]]
    assert {"code": "00242", "name": "民法学"}.items() <= next(
        c for c in courses if c["code"] == "00242"
    ).items()
    for course in courses:
        assert course["code"] is None or re.fullmatch(r"\d{5}", course["code"])
        assert course["credits"] > 0
        assert course["assessment"] in {"考试", "考查"}
    record_ids = [r["record_id"] for r in RECORDS]
    assert len(set(record_ids)) == len(record_ids)


def test_verification_code_shapes() -> None:
    codes = CHSI["verification_codes"]
    record_ids = {r["record_id"] for r in RECORDS}
    shapes = {"16": 0, "12": 0}
    expired = 0
    for entry in codes:
        assert entry["record_id"] in record_ids
        if re.fullmatch(r"[0-9A-Z]{16}", entry["code"]):
            shapes["16"] += 1
        else:
            assert re.fullmatch(r"\d{12}", entry["code"]), entry["code"]
            shapes["12"] += 1
        if "valid_until" in entry:
            assert date.fromisoformat(entry["valid_until"]) < date.today()
            expired += 1
        else:
            assert 0 < entry["valid_for_days"] <= 180
    assert shapes["16"] >= 2
    assert shapes["12"] >= 1
    assert expired == 1


def test_neea_certificates_tied_to_chsi_people() -> None:
    people = {p["id_number"]: p["name"] for p in CHSI["people"]}
    seen = set()
    for cert in NEEA["certificates"]:
        assert people[cert["id_number"]] == cert["name"]
        assert re.fullmatch(r"\d{15}", cert["certificate_number"])
        assert cert["exam"] in {"CET", "PETS", "NCRE", "NIT"}
        date.fromisoformat(cert["issued_on"])
        seen.add((cert["exam"], cert["level"], cert["subject"]))
        if cert["exam"] == "CET":
            assert cert["level"] in {4, 6}
            assert 0 <= cert["score"] <= 710
        if cert["exam"] == "PETS":
            assert 1 <= cert["level"] <= 5
        if cert["exam"] == "NCRE":
            assert 1 <= cert["level"] <= 4
        if cert["exam"] == "NIT":
            assert cert["level"] is None
            assert cert["subject"]
    assert ("CET", 6, None) in seen
    assert ("PETS", 2, None) in seen
    assert ("PETS", 3, None) in seen
    assert ("NCRE", 2, "C语言程序设计") in seen
    assert any(e == "NCRE" and lv == 1 for e, lv, _ in seen)
    nit = {s for e, _, s in seen if e == "NIT"}
    assert {"计算机应用基础", "管理系统中信息技术的应用"} <= nit
    assert len(nit) >= 3
    cet4 = [c for c in NEEA["certificates"] if c["exam"] == "CET" and c["level"] == 4]
    assert any(c["score"] >= 425 for c in cet4)
    assert any(c["score"] < 425 for c in cet4)
