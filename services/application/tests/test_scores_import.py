"""Passed courses imported by ops are never claimed for exemption."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from application_service.adapters.scores_import import parse_scores
from application_service.entrypoints import cli
from contracts.credential import CertificateExam, CertificateVerified
from contracts.identity import CandidateRegistered
from contracts.media import PhotoFormat, PhotoUploaded


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "文件为空"),
        ("姓名,课程\n张三,00012\n", "缺少"),
        ("准考证号,课程代码\n12345,00012\n", "准考证号不正确"),
        ("准考证号,课程代码\n010118100001,12\n", "课程代码"),
        ("准考证号,课程代码,合格日期\n010118100001,00012,2024-13-01\n", "合格日期"),
        ("准考证号,课程代码\n010118100001\n", "列数"),
    ],
)
def test_bad_rows_are_reported_with_their_line(text: str, fragment: str) -> None:
    parsed = parse_scores(text.encode())
    assert parsed.errors and fragment in parsed.errors[0]
    assert not parsed.rows


@pytest.mark.unit
def test_gb18030_and_english_headers_are_read() -> None:
    gbk = "准考证号,课程代码,合格日期\n010118100001,00012,2024-04-20\n".encode("gb18030")
    assert parse_scores(gbk).rows[0][:2] == ("010118100001", "00012")
    english = b"admission_ticket_number,course_code,passed_on\n010118100001,00015,\n"
    assert parse_scores(english).rows == [("010118100001", "00015", None)]


@pytest.mark.integration
async def test_a_passed_course_cannot_be_claimed(
    service: Any, client: Any, tokens: Any, facts: Any, database: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    candidate = uuid.uuid4()
    await facts.apply(
        CandidateRegistered(
            candidate_id=candidate, admission_ticket_number="010118100001", name="张建国",
            gender="male", id_number_masked="1401**********2018", id_number_fingerprint="a" * 64,
        ),
        candidate,
    )  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("准考证号,课程代码\n010118100001,13124\nx,1\n", encoding="utf-8")
    code = await asyncio.to_thread(
        cli.main, ["scores-import", str(bad), "--dsn", database, "--actor", "ops:wang"]
    )
    assert code == cli.EXIT_UNUSABLE_INPUT
    assert await service.pool.fetchval("SELECT count(*) FROM application.passed_courses") == 0
    good = tmp_path / "scores.csv"
    good.write_text("准考证号,课程代码,合格日期\n010118100001,13124,2024-04-20\n", encoding="utf-8")
    code = await asyncio.to_thread(
        cli.main, ["scores-import", str(good), "--dsn", database, "--actor", "ops:wang"]
    )
    assert code == cli.EXIT_OK

    check, photo = uuid.uuid4(), uuid.uuid4()
    await facts.apply(
        CertificateVerified(check_id=check, candidate_id=candidate, exam=CertificateExam.CET4,
                            score=480),
        check,
    )  # fmt: skip
    await facts.apply(
        PhotoUploaded(photo_id=photo, owner_id=candidate, width=1600, height=1200,
                      size_bytes=1000, sha256="c" * 64, formats=[PhotoFormat.JPEG]),
        photo,
    )  # fmt: skip
    now = datetime.now(UTC)
    ops = tokens(uuid.uuid4(), "staff", ["ops"])
    window = await client.post(
        "/api/windows",
        json={"name": "演示", "opens_at": (now - timedelta(days=1)).isoformat(),
              "applications_close_at": (now + timedelta(days=1)).isoformat(),
              "point_review_close_at": (now + timedelta(days=2)).isoformat(),
              "province_review_close_at": (now + timedelta(days=3)).isoformat(),
              "results_published_at": (now + timedelta(days=4)).isoformat()},
        headers=ops,
    )  # fmt: skip
    me = tokens(candidate)
    draft = await client.post(
        "/api/applications",
        json={"window_id": window.json()["window_id"], "confirmation_point_id": "140105",
              "plan": "new", "major_codes": ["530605"]},
        headers=me,
    )  # fmt: skip
    offered = await client.get(
        "/api/catalogue/routes/CET4-NEW/courses",
        params={"major": "530605", "plan": "new"},
        headers=me,
    )
    assert "13124" not in [c["code"] for c in offered.json()["courses"]]
    refused = await client.post(
        f"/api/applications/{draft.json()['application_id']}/certificates",
        json={"kind": "cet4_or_above", "route_id": "CET4-NEW", "certificate_check_ref": str(check),
              "photo_ids": [str(photo)],
              "courses": [{"course_code": "13124", "major_code": "530605"}]},
        headers=me,
    )  # fmt: skip
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "application.course_already_passed"
