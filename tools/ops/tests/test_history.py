"""`ops history`: one case's story from five services' event stores, in order, with actors and
correlation ids; other candidates' and other cases' events left out; table and JSON."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import ClassVar

import pytest
from ops.cli import run
from ops.history import SERVICES, CaseNotFound, case_history
from ops_support import append, event, event_stores

from contracts.application import (
    EXEMPTION_STREAM,
    ApplicationDrafted,
    ApplicationResubmitted,
    ApplicationReturnedToCandidate,
    ApplicationSubmitted,
    CertificateAdded,
)
from contracts.credential import CERTIFICATE_STREAM, CertificateVerified
from contracts.identity import CANDIDATE_STREAM, CandidateRegistered
from contracts.media import PHOTO_STREAM, PHOTO_VIEW_STREAM_TYPE, PhotoUploaded
from contracts.review import DECISION_STREAM, ApplicationReturned, ReviewClaimed
from devstack.endpoints import Endpoints
from eventkit.envelope import Actor, DomainEvent

pytestmark = pytest.mark.integration

CASE = "MK2026000042"


@pytest.fixture
async def stores(stack: Endpoints) -> AsyncIterator[dict[str, str]]:
    async with event_stores(stack, SERVICES, "ops") as dsns:
        yield dsns


async def test_a_cases_story_across_five_services(
    stores: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    application_id, check_id, photo_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    candidate = Actor(kind="candidate", id=str(me))
    reviewer = Actor(kind="staff", id=str(uuid.uuid4()))
    submit_request = uuid.uuid4()

    await append(
        stores["identity"],
        CANDIDATE_STREAM,
        me,
        [event(CandidateRegistered, candidate_id=str(me))],
        candidate,
    )
    await append(
        stores["identity"],
        CANDIDATE_STREAM,
        other,
        [event(CandidateRegistered, candidate_id=str(other))],
        Actor.system("x"),
    )
    await append(
        stores["credential_verify"],
        CERTIFICATE_STREAM,
        check_id,
        [event(CertificateVerified, check_id=str(check_id), candidate_id=str(me))],
        candidate,
    )
    await append(
        stores["credential_verify"],
        CERTIFICATE_STREAM,
        uuid.uuid4(),
        [event(CertificateVerified, check_id=str(uuid.uuid4()), candidate_id=str(other))],
        Actor.system("x"),
    )
    await append(
        stores["media"],
        PHOTO_STREAM,
        photo_id,
        [event(PhotoUploaded, photo_id=str(photo_id), owner_id=str(me))],
        candidate,
    )
    await append(
        stores["media"],
        PHOTO_STREAM,
        uuid.uuid4(),
        [event(PhotoUploaded, photo_id=str(uuid.uuid4()), owner_id=str(other))],
        Actor.system("x"),
    )

    submitted = event(
        ApplicationSubmitted,
        application_id=str(application_id),
        candidate_id=str(me),
        case_number=CASE,
    )
    certificate = {
        **submitted.certificates[0].model_dump(mode="json"),
        "photo_ids": [str(photo_id)],
        "certificate_check_ref": str(check_id),
        "kind": "cet4_or_above",
        "degree": None,
    }
    submitted = event(
        ApplicationSubmitted,
        application_id=str(application_id),
        candidate_id=str(me),
        case_number=CASE,
        certificates=[certificate],
        photo_ids=[str(photo_id)],
    )
    await append(
        stores["application"],
        EXEMPTION_STREAM,
        application_id,
        [
            event(ApplicationDrafted, application_id=str(application_id), candidate_id=str(me)),
            event(CertificateAdded, application_id=str(application_id), certificate=certificate),
        ],
        candidate,
    )
    await append(
        stores["application"],
        EXEMPTION_STREAM,
        application_id,
        [submitted],
        candidate,
        submit_request,
    )
    await append(
        stores["review"],
        DECISION_STREAM,
        application_id,
        [
            event(ReviewClaimed, application_id=str(application_id), submission_number=1),
            event(
                ApplicationReturned,
                application_id=str(application_id),
                submission_number=1,
                reason="证书照片不清晰，请重新上传",
            ),
        ],
        reviewer,
    )
    await append(
        stores["application"],
        EXEMPTION_STREAM,
        application_id,
        [
            event(
                ApplicationReturnedToCandidate,
                application_id=str(application_id),
                candidate_id=str(me),
                case_number=CASE,
                submission_number=1,
                reason="证书照片不清晰，请重新上传",
            ),
        ],
        Actor.system("application-review-policy"),
    )
    await append(
        stores["application"],
        EXEMPTION_STREAM,
        application_id,
        [
            ApplicationResubmitted.model_validate(
                {**submitted.model_dump(mode="json"), "submission_number": 2}
            ),
        ],
        candidate,
    )

    views = SimpleNamespace(stream_type=PHOTO_VIEW_STREAM_TYPE)
    await append(stores["media"], views, photo_id, [viewed(photo_id, me, "links")], reviewer)
    await append(stores["media"], views, uuid.uuid4(), [viewed(uuid.uuid4(), other, "links")])

    history = await case_history(stores, CASE)
    assert history.application_id == str(application_id)
    assert history.candidate_id == str(me)
    assert [(s.service, s.event_type) for s in history.steps] == [
        ("identity", "CandidateRegistered"),
        ("credential_verify", "CertificateVerified"),
        ("media", "PhotoUploaded"),
        ("application", "ApplicationDrafted"),
        ("application", "CertificateAdded"),
        ("application", "ApplicationSubmitted"),
        ("review", "ReviewClaimed"),
        ("review", "ApplicationReturned"),
        ("application", "ApplicationReturnedToCandidate"),
        ("application", "ApplicationResubmitted"),
        ("media", "PhotoViewed"),
    ]
    assert history.steps[-1].actor == f"staff:{reviewer.id}"
    assert history.steps[-1].summary == "查看照片 (links)，角色 reviewer"
    returned = history.steps[7]
    assert returned.actor == f"staff:{reviewer.id}" and "证书照片不清晰" in returned.summary
    assert history.steps[5].correlation_id == submit_request
    assert history.steps[5].summary.startswith("第1次提交")
    times = [s.occurred_at for s in history.steps]
    assert times == sorted(times)

    with pytest.raises(CaseNotFound):
        await case_history(stores, "MK2026999999")

    env = {f"OPS_PG_DSN_{s.upper()}": dsn for s, dsn in stores.items()}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert await run(["history", CASE]) == 0
        table = capsys.readouterr().out
        assert CASE in table and "ApplicationReturned" in table and "退回：证书照片不清晰" in table
        assert await run(["history", CASE, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["application_id"] == str(application_id) and len(doc["steps"]) == 11
        assert await run(["history", "MK2026999999"]) == 1
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class PhotoViewed(DomainEvent):
    """The shape of media's private PhotoViewed (ops reads it from the store, never imports it)."""

    event_type: ClassVar[str] = "PhotoViewed"
    photo_id: str
    owner_id: str
    given: str
    roles: list[str]


def viewed(photo_id: uuid.UUID, owner_id: uuid.UUID, given: str) -> PhotoViewed:
    return PhotoViewed(
        photo_id=str(photo_id), owner_id=str(owner_id), given=given, roles=["reviewer"]
    )
