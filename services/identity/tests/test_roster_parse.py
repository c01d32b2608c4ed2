"""在籍考生名册 CSV: headers, every bad field, duplicates, and line numbers."""

from __future__ import annotations

import io
from datetime import date

import pytest

from contracts.identity import Gender
from identity_service.domain.id_card import check_digit
from identity_service.domain.roster import (
    RejectedRow,
    RosterHeaderError,
    RosterRow,
    parse_roster,
)

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 28)
ZH_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
EN_HEADER = (
    "ticket_number,id_number,name,gender,exam_district,registration_district,"
    "major_code,passed_courses"
)


def id_number(sequence: int, *, male: bool = True) -> str:
    digit = sequence * 2 + (1 if male else 0)
    first17 = f"14010519900101{digit % 1000:03d}"
    return first17 + check_digit(first17)


def row(
    ticket: str = "010118100001",
    number: str | None = None,
    name: str = "张三",
    gender: str = "男",
    exam: str = "140100",
    registration: str = "140105",
    major: str = "580401",
    courses: str = "00015;00018",
) -> str:
    number = number if number is not None else id_number(1)
    return ",".join([ticket, number, name, gender, exam, registration, major, courses])


def parse(text: str) -> list[RosterRow | RejectedRow]:
    return list(parse_roster(io.StringIO(text, newline=""), today=TODAY))


def only_errors(text: str) -> list[tuple[int, str | None, str]]:
    return [
        (e.line_number, e.column, e.code)
        for item in parse(text)
        if isinstance(item, RejectedRow)
        for e in item.errors
    ]


def test_a_valid_row_with_chinese_headers() -> None:
    (parsed,) = parse(f"{ZH_HEADER}\n{row()}\n")
    assert isinstance(parsed, RosterRow)
    assert parsed.line_number == 2
    assert parsed.ticket_number == "010118100001"
    assert parsed.id_number.value == id_number(1)
    assert parsed.gender is Gender.MALE
    assert parsed.passed_courses == ("00015", "00018")


@pytest.mark.parametrize(
    "header",
    [
        EN_HEADER,
        EN_HEADER.upper(),
        "\ufeff" + ZH_HEADER,
        "\ufeff" + EN_HEADER,
        " 准考证号 , 身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程,备注",
    ],
)
def test_header_variants(header: str) -> None:
    (parsed,) = parse(f"{header}\r\n{row()}\r\n")
    assert isinstance(parsed, RosterRow)


def test_columns_in_any_order() -> None:
    header = "姓名,准考证号,身份证号,性别,考区,报名区县,专业代码,已合格课程"
    line = f"李四,010118100002,{id_number(2, male=False)},女,140100,140105,580401,"
    (parsed,) = parse(f"{header}\n{line}\n")
    assert isinstance(parsed, RosterRow)
    assert parsed.name == "李四" and parsed.gender is Gender.FEMALE
    assert parsed.passed_courses == ()


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "准考证号,身份证号,姓名\n", "a,b,c\n1,2,3\n", "准考证号,准考证号\n"],
)
def test_unusable_headers(text: str) -> None:
    with pytest.raises(RosterHeaderError) as caught:
        parse(text)
    assert caught.value.code == "identity.roster_header"


@pytest.mark.parametrize(
    ("fields", "column", "code"),
    [
        ({"ticket": "01011810000"[:9]}, "ticket_number", "identity.roster_ticket_number"),
        ({"ticket": "0101181000A1"}, "ticket_number", "identity.roster_ticket_number"),
        ({"ticket": "0" * 16}, "ticket_number", "identity.roster_ticket_number"),
        ({"number": "140105199001010031"}, "id_number", "identity.id_number_checksum"),
        ({"number": "1401051990"}, "id_number", "identity.id_number_malformed"),
        ({"number": "140105199002300030"}, "id_number", "identity.id_number_birth_date"),
        ({"name": ""}, "name", "identity.roster_name"),
        ({"name": "张" * 31}, "name", "identity.roster_name"),
        ({"name": "张三1"}, "name", "identity.roster_name"),
        ({"name": "·张三"}, "name", "identity.roster_name"),
        ({"gender": "M"}, "gender", "identity.roster_gender"),
        ({"gender": "女"}, "gender", "identity.roster_gender_mismatch"),
        ({"exam": "14010"}, "exam_district", "identity.roster_exam_district"),
        (
            {"registration": "14010X"},
            "registration_district",
            "identity.roster_registration_district",
        ),
        ({"major": "58040"}, "major_code", "identity.roster_major_code"),
        ({"major": "580401KK"}, "major_code", "identity.roster_major_code"),
        ({"courses": "00015;0018"}, "passed_courses", "identity.roster_passed_courses"),
        ({"courses": "00015,00018"}, None, "identity.roster_row_width"),
    ],
)
def test_every_bad_field(fields: dict[str, str], column: str | None, code: str) -> None:
    errors = only_errors(f"{ZH_HEADER}\n{row(**fields)}\n")
    assert errors == [(2, column, code)]


def test_field_normalisation() -> None:
    text = row(
        ticket="０１０１１８１０００１０",
        number=id_number(1).lower() if id_number(1).endswith("X") else id_number(1),
        name="阿依古丽•买买提",
        major="030101k",
        courses="00018|00015 00015；00012",
    )
    (parsed,) = parse(f"{ZH_HEADER}\n{text}\n")
    assert isinstance(parsed, RosterRow)
    assert parsed.ticket_number == "010118100010"
    assert parsed.name == "阿依古丽·买买提"
    assert parsed.major_code == "030101K"
    assert parsed.passed_courses == ("00012", "00015", "00018")


def test_several_errors_on_one_line_are_all_reported() -> None:
    errors = only_errors(f"{ZH_HEADER}\n{row(ticket='1', name='', exam='x')}\n")
    assert [c for _, c, _ in errors] == ["ticket_number", "name", "exam_district"]


def test_short_row() -> None:
    assert only_errors(f"{ZH_HEADER}\n010118100001,{id_number(1)},张三\n") == [
        (2, None, "identity.roster_row_width")
    ]


def test_duplicates_reject_the_later_line() -> None:
    text = "\n".join(
        [
            ZH_HEADER,
            row(ticket="010118100001", number=id_number(1)),
            row(ticket="010118100001", number=id_number(2)),
            row(ticket="010118100003", number=id_number(1)),
            row(ticket="010118100004", number=id_number(4)),
        ]
    )
    parsed = parse(text + "\n")
    assert [type(p).__name__ for p in parsed] == [
        "RosterRow",
        "RejectedRow",
        "RejectedRow",
        "RosterRow",
    ]
    assert only_errors(text) == [
        (3, "ticket_number", "identity.roster_duplicate_ticket_number"),
        (4, "id_number", "identity.roster_duplicate_id_number"),
    ]
    rejected = parsed[1]
    assert isinstance(rejected, RejectedRow)
    assert "第2行" in rejected.errors[0].message_zh


def test_a_bad_row_does_not_claim_its_ticket() -> None:
    text = f"{ZH_HEADER}\n{row(name='')}\n{row()}\n"
    assert [type(p).__name__ for p in parse(text)] == ["RejectedRow", "RosterRow"]


def test_line_numbers_count_blank_lines_and_quoted_newlines() -> None:
    text = "\n".join(
        [
            "",
            ZH_HEADER,
            row(ticket="010118100001", number=id_number(1)),
            "",
            row(ticket="010118100002", number=id_number(2), name='"张\n三"'),
            row(ticket="010118100003", number=id_number(3), name="x1"),
        ]
    )
    parsed = parse(text + "\n")
    assert [p.line_number for p in parsed] == [3, 5, 7]
    assert only_errors(text)[0][:2] == (5, "name")
    assert only_errors(text)[1][:2] == (7, "name")


def test_errors_never_carry_the_id_number() -> None:
    bad = "140105199001010031"
    text = f"{ZH_HEADER}\n{row(number=bad)}\n{row(ticket='010118100002', courses=bad)}\n"
    for item in parse(text):
        assert isinstance(item, RejectedRow)
        for error in item.errors:
            assert bad not in repr(error)


def test_parsing_streams() -> None:
    def lines():  # type: ignore[no-untyped-def]
        yield ZH_HEADER + "\n"
        for i in range(10**9):
            yield row(ticket=f"0101181{i:05d}", number=id_number(i % 400)) + "\n"

    parsed = parse_roster(lines(), today=TODAY)
    first = next(parsed)
    assert isinstance(first, RosterRow) and first.line_number == 2
