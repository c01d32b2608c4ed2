"""`ops export`: one window's decided cases (and only those) as CSV with BOM, JSON and SHA256SUMS,
written atomically, ID-card numbers masked, formulas defused; existing files kept without
--force; unknown and ambiguous windows refused; each run recorded in the touched stores."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ops.cli import run
from ops_support import actions, append, event, event_stores

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationDecided,
    ApplicationResubmitted,
    ApplicationReturnedToCandidate,
    ApplicationSubmitted,
    ApplicationWindowOpened,
)
from contracts.identity import CANDIDATE_STREAM, CandidateRegistered
from contracts.review import DECISION_STREAM, ApplicationApproved
from devstack.endpoints import Endpoints

pytestmark = pytest.mark.integration

WINDOW_NAME = "2026年上半年免考申请"
ID_NUMBER = "14010519900101123X"
SENIOR = str(uuid.uuid4())
TICKET = "010118100001"


@pytest.fixture
async def stores(stack: Endpoints) -> AsyncIterator[dict[str, str]]:
    async with event_stores(stack, ("application", "review", "identity"), "exp") as dsns:
        yield dsns


async def open_window(stores: dict[str, str], name: str) -> str:
    window_id = str(uuid.uuid4())
    await append(
        stores["application"],
        WINDOW_STREAM,
        window_id,
        [event(ApplicationWindowOpened, window_id=window_id, name=name)],
    )
    return window_id


async def application(
    stores: dict[str, str],
    window_id: str,
    case: str,
    *,
    decided: list[dict[str, Any]] | None = None,
    returned_first: bool = False,
) -> tuple[str, str]:
    application_id, candidate_id = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {"application_id": application_id, "candidate_id": candidate_id, "case_number": case}
    submitted = event(ApplicationSubmitted, **ids, window_id=window_id)
    events: list[Any] = [submitted]
    number = 1
    if returned_first:
        number = 2
        events += [
            event(ApplicationReturnedToCandidate, **ids, submission_number=1),
            ApplicationResubmitted.model_validate(
                {**submitted.model_dump(mode="json"), "submission_number": 2}
            ),
        ]
    if decided is not None:
        events.append(event(ApplicationDecided, **ids, decisions=decided))
        await append(
            stores["review"],
            DECISION_STREAM,
            application_id,
            [
                event(ApplicationApproved, application_id=application_id, case_number=case,
                      submission_number=number, reviewer_id=SENIOR, decisions=decided),
            ],
        )  # fmt: skip
    await append(stores["application"], EXEMPTION_STREAM, application_id, events)
    return application_id, candidate_id


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


GRANTED = {"course_code": "00242", "major_code": "580401", "outcome": "granted"}


async def test_a_windows_decisions_are_exported(
    stores: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    window_id = await open_window(stores, WINDOW_NAME)
    other_window = await open_window(stores, "2025年下半年免考申请")
    _, first_candidate = await application(
        stores, window_id, "MK2026000001",
        decided=[GRANTED, {"course_code": "00012", "major_code": "580401", "outcome": "denied",
                           "reason": f"证书持有人身份证号 {ID_NUMBER} 与考生不符"}],
    )  # fmt: skip
    await application(stores, window_id, "MK2026000002")  # submitted, not decided
    _, third_candidate = await application(
        stores, window_id, "MK2026000003", returned_first=True,
        decided=[GRANTED, {"course_code": "00012", "major_code": "580401", "outcome": "denied",
                           "reason": "=HYPERLINK(\"x\") 证书过期"}],
    )  # fmt: skip
    await application(stores, other_window, "MK2025000009", decided=[GRANTED])
    await append(
        stores["identity"],
        CANDIDATE_STREAM,
        first_candidate,
        [event(CandidateRegistered, candidate_id=first_candidate, admission_ticket_number=TICKET)],
    )
    for service, dsn in stores.items():
        monkeypatch.setenv(f"OPS_PG_DSN_{service.upper()}", dsn)

    out = tmp_path / "archive"
    assert await run(["--operator", "tester", "export", WINDOW_NAME, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 个已决办件" in printed and ID_NUMBER not in printed
    csv_name, json_name = f"decisions-{window_id}.csv", f"decisions-{window_id}.json"
    assert sorted(p.name for p in out.iterdir()) == sorted([csv_name, json_name, "SHA256SUMS"])

    raw = (out / csv_name).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["办件编号", "准考证号", "考生ID"] and "复审人" in header
    assert [(r[0], r[5], r[8]) for r in body] == [
        ("MK2026000001", "00242", "同意免考"),
        ("MK2026000001", "00012", "不同意"),
        ("MK2026000003", "00242", "同意免考"),
        ("MK2026000003", "00012", "不同意"),
    ]
    first, third = body[1], body[3]
    assert first[1] == TICKET and first[2] == first_candidate
    assert third[1] == "" and third[2] == third_candidate and third[3] == "2"
    assert first[10] == "证书持有人身份证号 1401**********123X 与考生不符"
    assert third[10].startswith("'=HYPERLINK")
    assert first[6] == "英语(一)" and first[12] == SENIOR and first[11].startswith("20")

    doc = json.loads((out / json_name).read_text(encoding="utf-8"))
    assert doc["window"]["window_id"] == window_id and doc["window"]["name"] == WINDOW_NAME
    assert doc["case_count"] == 2 and doc["course_count"] == 4
    assert [c["case_number"] for c in doc["cases"]] == ["MK2026000001", "MK2026000003"]
    assert doc["cases"][0]["decided_by"] == SENIOR

    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert sums == [
        f"{hashlib.sha256((out / n).read_bytes()).hexdigest()}  {n}" for n in (csv_name, json_name)
    ]
    for path in out.iterdir():
        assert ID_NUMBER.encode() not in path.read_bytes()

    # existing files are kept unless --force
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert await run(["export", WINDOW_NAME, "--out", str(out)]) == 2
    assert "[exists]" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert await run(["export", window_id, "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temp files left

    assert await actions(stores["application"]) == [
        ("export", "ok"), ("export", "refused"), ("export", "ok")
    ]  # fmt: skip
    assert len(await actions(stores["review"])) == 3
    assert len(await actions(stores["identity"])) == 3


async def test_unknown_and_ambiguous_windows(
    stores: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    await open_window(stores, "重名时段")
    await open_window(stores, "重名时段")
    for service, dsn in stores.items():
        monkeypatch.setenv(f"OPS_PG_DSN_{service.upper()}", dsn)

    assert await run(["export", "没有这个时段", "--out", str(tmp_path)]) == 1
    assert "[window_not_found]" in capsys.readouterr().err
    assert await run(["export", str(uuid.uuid4()), "--out", str(tmp_path)]) == 1
    assert "[window_not_found]" in capsys.readouterr().err
    assert await run(["export", "重名时段", "--out", str(tmp_path)]) == 2
    assert "[ambiguous_window]" in capsys.readouterr().err
    assert await run(["export", "  ", "--out", str(tmp_path)]) == 2
    assert "[bad_window]" in capsys.readouterr().err
    assert listing(tmp_path) == []
    assert await actions(stores["application"]) == [
        ("export", "refused"), ("export", "refused"), ("export", "failed"), ("export", "failed")
    ]  # fmt: skip
