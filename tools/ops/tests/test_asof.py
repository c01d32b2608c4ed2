"""`ops as-of`: a case's application and review folded from the events recorded up to a moment
(draft, submitted and claimed, returned, resubmitted through 初审 to 复审, decided), a future time
noted, and every bad input refused with its code; each run recorded in the touched stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from ops.cli import run
from ops_support import actions, event, event_stores

from contracts.application import (
    EXEMPTION_STREAM,
    ApplicationDecided,
    ApplicationDrafted,
    ApplicationResubmitted,
    ApplicationReturnedToCandidate,
    ApplicationSubmitted,
    CertificateAdded,
)
from contracts.review import (
    DECISION_STREAM,
    ApplicationApproved,
    ApplicationReturned,
    InitialReviewCompleted,
    ReviewClaimed,
)
from devstack.endpoints import Endpoints
from eventkit.db import create_pool
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore

pytestmark = pytest.mark.integration

CASE = "MK2026000077"
ID_NUMBER = "14010519900101123X"
POINT_REVIEWER, SENIOR = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
async def stores(stack: Endpoints) -> AsyncIterator[dict[str, str]]:
    async with event_stores(stack, ("application", "review"), "asof") as dsns:
        yield dsns


async def append_at(
    dsn: str, stream: Any, stream_id: str, timed: list[tuple[str, Any]], actor: Actor
) -> None:
    """Append each event, then set its recorded_at to the given Beijing time."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        store = EventStore(pool)
        for when, e in timed:
            version = await store.version(stream.stream_type, stream_id)
            await store.append(
                stream.stream_type, stream_id, version, [NewEvent.of(e)], Metadata(actor=actor)
            )
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE eventkit.events SET recorded_at = $1 WHERE stream_type = $2"
                    " AND stream_id = $3 AND stream_version = $4",
                    datetime.fromisoformat(when + "+08:00"),
                    stream.stream_type,
                    stream_id,
                    version + 1,
                )
    finally:
        await pool.close()


async def build_case(stores: dict[str, str]) -> str:
    application_id, me = str(uuid.uuid4()), str(uuid.uuid4())
    candidate = Actor(kind="candidate", id=me)
    ids = {"application_id": application_id, "candidate_id": me, "case_number": CASE}
    submitted = event(ApplicationSubmitted, **ids)
    cet = submitted.certificates[1].model_dump(mode="json")
    await append_at(
        stores["application"],
        EXEMPTION_STREAM,
        application_id,
        [
            ("2026-03-01T09:00", event(ApplicationDrafted, application_id=application_id,
                                       candidate_id=me)),
            ("2026-03-01T10:00", event(CertificateAdded, application_id=application_id,
                                       certificate=cet)),
            ("2026-03-01T11:00", submitted),
            ("2026-03-02T10:05", event(ApplicationReturnedToCandidate, **ids,
                                       submission_number=1,
                                       reason=f"身份证号 {ID_NUMBER} 与证书不符")),
            ("2026-03-03T09:00", ApplicationResubmitted.model_validate(
                {**submitted.model_dump(mode="json"), "submission_number": 2})),
            ("2026-03-05T16:05", event(ApplicationDecided, **ids)),
        ],
        candidate,
    )  # fmt: skip
    review = {"application_id": application_id, "case_number": CASE}
    await append_at(
        stores["review"],
        DECISION_STREAM,
        application_id,
        [
            ("2026-03-02T09:00", event(ReviewClaimed, **review, submission_number=1,
                                       reviewer_id=POINT_REVIEWER)),
            ("2026-03-02T10:00", event(ApplicationReturned, **review, submission_number=1,
                                       reviewer_id=POINT_REVIEWER,
                                       reason=f"身份证号 {ID_NUMBER} 与证书不符")),
            ("2026-03-04T09:00", event(ReviewClaimed, **review, submission_number=2,
                                       reviewer_id=POINT_REVIEWER)),
            ("2026-03-04T10:00", event(InitialReviewCompleted, **review, submission_number=2,
                                       reviewer_id=POINT_REVIEWER)),
            ("2026-03-05T15:00", event(ReviewClaimed, **review, submission_number=2,
                                       stage="provincial", reviewer_id=SENIOR)),
            ("2026-03-05T16:00", event(ApplicationApproved, **review, submission_number=2,
                                       reviewer_id=SENIOR)),
        ],
        Actor(kind="staff", id=POINT_REVIEWER),
    )  # fmt: skip
    return application_id


async def as_of(when: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert await run(["--operator", "tester", "as-of", CASE, when, "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


async def test_a_case_as_it_stood(
    stores: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    application_id = await build_case(stores)
    for service, dsn in stores.items():
        monkeypatch.setenv(f"OPS_PG_DSN_{service.upper()}", dsn)

    draft = await as_of("2026-03-01T10:30", capsys)
    app, review = draft["application"], draft["review"]
    assert app["status"] == "draft" and app["application_id"] == application_id
    assert app["submission_number"] is None and app["major_codes"] == ["580401"]
    assert [c["kind"] for c in app["certificates"]] == ["cet4_or_above"]
    assert app["certificates"][0]["courses"][0]["course_code"] == "00012"
    assert review["status"] == "not_submitted" and review["claim"] is None
    assert draft["future"] is False and draft["note"] is None

    claimed = await as_of("2026-03-02T09:30+08:00", capsys)
    app, review = claimed["application"], claimed["review"]
    assert app["status"] == "submitted" and app["submission_number"] == 1
    assert app["confirmation_point_id"] == "140105" and len(app["certificates"]) == 2
    assert {p for c in app["certificates"] for p in c["photo_ids"]} and app["last_return"] is None
    assert review["status"] == "awaiting_point" and review["stage"] == "confirmation_point"
    assert review["claim"]["reviewer_id"] == POINT_REVIEWER

    returned = await as_of("2026-03-02T04:00Z", capsys)  # 12:00 Beijing
    app, review = returned["application"], returned["review"]
    assert app["status"] == "returned" and app["last_return"]["stage"] == "confirmation_point"
    assert "1401**********123X" in app["last_return"]["reason"]
    assert review["status"] == "returned" and review["claim"] is None
    assert len(review["returns"]) == 1 and review["returns"][0]["submission_number"] == 1

    point_done = await as_of("2026-03-04T12:00", capsys)
    app, review = point_done["application"], point_done["review"]
    assert app["status"] == "submitted" and app["submission_number"] == 2
    assert review["status"] == "awaiting_province" and review["stage"] == "provincial"
    assert review["point_reviewer_id"] == POINT_REVIEWER and review["claim"] is None
    assert [d["outcome"] for d in review["point_decisions"]] == ["granted"]
    assert len(review["returns"]) == 1

    assert await run(["as-of", CASE, "2026-03-05T15:30"]) == 0
    table = capsys.readouterr().out
    assert "复审(省级)" in table and f"领取人 claimed by:  {SENIOR}" in table
    assert "提交次数 submission: 2" in table and "英语(一)" in table
    assert ID_NUMBER not in table and "1401**********123X" in table

    later = await as_of("2099-01-01T00:00", capsys)
    app, review = later["application"], later["review"]
    assert later["future"] is True and "未来" in later["note"]
    assert app["status"] == "decided" and review["status"] == "decided"
    assert review["decided_by"] == SENIOR
    assert {(d["course_code"], d["outcome"], d.get("reason")) for d in app["decisions"]} == {
        ("00242", "granted", None),
        ("00012", "denied", "证书取得时间不在有效期内"),
    }
    assert await run(["as-of", CASE, "2099-01-01T00:00"]) == 0
    assert "注意" in capsys.readouterr().out

    recorded = await actions(stores["application"])
    assert len(recorded) == 7 and set(recorded) == {("as-of", "ok")}
    assert len(await actions(stores["review"])) == 7


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        ([CASE, "2026-02-28T23:59"], 1, "not_yet"),
        ([CASE, "yesterday"], 2, "bad_time"),
        ([CASE, "2026-13-01T00:00"], 2, "bad_time"),
        (["MK2026999999", "2026-03-05T00:00"], 1, "case_not_found"),
    ],
)
async def test_bad_input_is_refused_and_recorded(
    stores: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    code: int,
    error: str,
) -> None:
    await build_case(stores)
    for service, dsn in stores.items():
        monkeypatch.setenv(f"OPS_PG_DSN_{service.upper()}", dsn)
    assert await run(["as-of", *argv]) == code
    captured = capsys.readouterr()
    assert f"[{error}]" in captured.err and captured.out == ""
    outcome = "refused" if code == 2 else "failed"
    assert await actions(stores["application"]) == [("as-of", outcome)]
    assert await actions(stores["review"]) == [("as-of", outcome)]
