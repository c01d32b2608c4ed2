"""The fault lane's workload: candidates walking the whole journey through the public JSON APIs
while faults are injected, and the reviewers deciding their cases.

Every HTTP answer is recorded (when, which service and operation, which status), so the checker
can tell what clients got while each fault lasted. A command is *acknowledged* when it got a 2xx;
only those are promises the system made (Jepsen's "ok" operations). A call whose answer was lost
(a reset, a timeout) is *indeterminate*: the client retries as a browser user would, and a
retry that finds the work already done (a 409, a draft that exists) is resolved by reading.

Clients retry 5xx answers and transport errors with backoff (honouring `Retry-After`) until the
step's deadline; a 500 is retried too, but recorded: the checker fails the run on any.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from e2e_support import certificate_jpeg
from fault_people import COURSE, MAJOR, POINT, ROUTE, Person

CANDIDATE_PASSWORD = "Zikao#2026fault"
STAFF_PASSWORD = "Shenhe#2026demo"  # devstack.demo's
RETRYABLE = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange as the client saw it; status None: no answer (transport error)."""

    at: float
    service: str
    op: str
    status: int | None
    error: str = ""


@dataclass
class Ack:
    """A command the system acknowledged (2xx), with what it created."""

    at: float
    kind: str
    person: int
    ids: dict[str, str]


@dataclass
class Journey:
    """One candidate's way through the system and what it should have left behind."""

    person: Person
    candidate_id: str = ""
    auth: dict[str, str] = field(default_factory=dict)
    authorization_id: str = ""
    degree_verified: bool = False
    photo_id: str = ""
    check_id: str = ""
    application_id: str = ""
    case_number: str = ""
    returned: bool = False
    withdrawn: bool = False
    decided: bool = False
    failed: str = ""  # why the journey could not finish (a finding)
    steps: list[str] = field(default_factory=list)


class StepFailed(Exception):
    """A step did not succeed within its deadline."""


@dataclass
class Recorder:
    """Every answer and every acknowledged command of the run."""

    started: float = field(default_factory=time.monotonic)
    answers: list[Answer] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started

    def answer(self, service: str, op: str, status: int | None, error: str = "") -> None:
        self.answers.append(Answer(self.now(), service, op, status, error))

    def ack(self, kind: str, person: Person, **ids: str) -> None:
        self.acks.append(Ack(self.now(), kind, person.index, dict(ids)))


@dataclass
class Urls:
    identity: str
    application: str
    credential: str
    media: str
    review: str
    chsi: str
    sms: str


class Client:
    """HTTP with the retry behaviour of a patient user, every answer recorded."""

    def __init__(
        self, http: httpx.AsyncClient, recorder: Recorder, urls: Urls, *, deadline: float
    ) -> None:
        self.http = http
        self.recorder = recorder
        self.urls = urls
        self.deadline = deadline

    async def call(
        self, service: str, op: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        """Send until an answer that is not a 5xx (or the deadline); the last answer.

        Raises StepFailed when only 5xx answers or transport errors came until the deadline."""
        give_up = time.monotonic() + self.deadline
        delay = 0.2
        last = ""
        while True:
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                self.recorder.answer(service, op, None, type(exc).__name__)
                last = f"{type(exc).__name__}: {exc}"
            else:
                self.recorder.answer(service, op, response.status_code)
                if response.status_code not in RETRYABLE:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
                retry_after = response.headers.get("retry-after")
                if retry_after and retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 5.0))
            if time.monotonic() + delay > give_up:
                raise StepFailed(f"{service} {op}: no answer within {self.deadline:.0f}s ({last})")
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 5.0)

    async def until(
        self, what: str, attempt: Callable[[], Awaitable[bool]], *, interval: float = 0.5
    ) -> None:
        """Repeat `attempt` until it returns True (or the deadline): for steps that wait on
        events still on their way between services."""
        give_up = time.monotonic() + self.deadline
        while not await attempt():
            if time.monotonic() > give_up:
                raise StepFailed(f"{what}: not done within {self.deadline:.0f}s")
            await asyncio.sleep(interval)


# --- the test-only backdoor: a captcha's answer -------------------------------------------------


async def captcha_answer(identity_dsn: str, captcha_id: str) -> str | None:
    """The answer of a live captcha from identity's database (identity's test support, as a
    separate process: the lane imports no service). None while the database is away."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_service.testing", "captcha-answer",
        "--dsn", identity_dsn, captcha_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode().strip() if process.returncode == 0 else None


class Journeys:
    """Runs candidates' journeys and the reviewers' work on them."""

    def __init__(self, client: Client, identity_dsn: str, *, rng: random.Random) -> None:
        self.c = client
        self.u = client.urls
        self.identity_dsn = identity_dsn
        self.rng = rng
        self.window_id = ""
        self.reviewer: dict[str, str] = {}
        self.senior: dict[str, str] = {}
        self.journeys: list[Journey] = []

    # --- shared ---------------------------------------------------------------------------

    async def captcha(self) -> tuple[str, str]:
        """A fresh captcha and its answer (retried while identity or its database is away)."""
        result: list[tuple[str, str]] = []

        async def attempt() -> bool:
            got = await self.c.call(
                "identity", "captcha", "GET", f"{self.u.identity}/api/identity/captcha"
            )
            if got.status_code != 200:
                return False
            captcha_id = got.json()["captcha_id"]
            answer = await captcha_answer(self.identity_dsn, captcha_id)
            if answer is None:
                return False
            result.append((captcha_id, answer))
            return True

        await self.c.until("captcha", attempt)
        return result[0]

    async def login(self, identifier: str, password: str, *, staff: bool = False) -> dict[str, str]:
        token: list[str] = []

        async def attempt() -> bool:
            captcha_id, answer = await self.captcha()
            path, body = ("staff/login", {"username": identifier}) if staff else (
                "login", {"identifier": identifier})  # fmt: skip
            done = await self.c.call(
                "identity", path, "POST", f"{self.u.identity}/api/identity/{path}",
                json={**body, "password": password, "captcha_id": captcha_id,
                      "captcha_answer": answer},
            )  # fmt: skip
            if done.status_code == 200:
                token.append(done.json()["access_token"])
                return True
            # a wrong captcha (its row lost to a restart), a lockout window: try again
            assert done.status_code in (400, 401, 409, 422, 429), done.text
            return False

        await self.c.until("login", attempt, interval=1.0)
        return {"Authorization": f"Bearer {token[0]}"}

    async def setup(self) -> None:
        """The open window and the staff logins."""
        windows = await self.c.call(
            "application", "windows", "GET", f"{self.u.application}/api/windows"
        )
        assert windows.status_code == 200, windows.text
        found = [w for w in windows.json() if w["stage"] == "applying"] or windows.json()[:1]
        self.window_id = str(found[0]["window_id"])
        self.reviewer = await self.login("xiaodian.reviewer1", STAFF_PASSWORD, staff=True)
        self.senior = await self.login("province.senior1", STAFF_PASSWORD, staff=True)

    async def relogin_staff(self) -> None:
        self.reviewer = await self.login("xiaodian.reviewer1", STAFF_PASSWORD, staff=True)
        self.senior = await self.login("province.senior1", STAFF_PASSWORD, staff=True)

    # --- a candidate ------------------------------------------------------------------------

    async def run(self, person: Person, *, withdraw: bool, send_back: bool) -> Journey:
        j = Journey(person)
        self.journeys.append(j)
        try:
            await self.register(j)
            j.auth = await self.login(person.ticket, CANDIDATE_PASSWORD)
            await self.degree(j)
            await self.photo(j)
            await self.certificate_check(j)
            await self.draft(j)
            await self.add_certificate(j)
            await self.submit(j)
            if withdraw:
                await self.withdraw(j)
                return j
            await self.until_in_review(j, submission=1)
            if send_back:
                await self.decide(j, "return", 1)
                await self.until_status(j, "returned")
                await self.submit(j, again=True)
                await self.until_in_review(j, submission=2)
            submission = 2 if j.returned else 1
            await self.decide(j, "initial-review", submission)
            await self.until_in_review(j, submission=submission, stage="provincial")
            await self.decide(j, "approve", submission)
            await self.until_status(j, "decided")
            j.decided = True
        except StepFailed as failed:
            j.failed = str(failed)
        except AssertionError as unexpected:  # an answer the journey has no rule for: a finding
            j.failed = f"unexpected answer: {str(unexpected)[:300]}"
        return j

    async def register(self, j: Journey) -> None:
        p = j.person

        async def attempt() -> bool:
            captcha_id, answer = await self.captcha()
            sent = await self.c.call(
                "identity", "sms-codes", "POST", f"{self.u.identity}/api/identity/sms-codes",
                json={"mobile": p.mobile, "purpose": "register", "captcha_id": captcha_id,
                      "captcha_answer": answer},
            )  # fmt: skip
            if sent.status_code != 202:
                assert sent.status_code in (400, 409, 422, 429), sent.text
                return False
            code = await self.sms_code(p.mobile)
            if code is None:
                return False
            captcha_id, answer = await self.captcha()
            created = await self.c.call(
                "identity", "register", "POST", f"{self.u.identity}/api/identity/candidates",
                json={"ticket_number": p.ticket, "id_number": p.id_number, "name": p.name,
                      "password": CANDIDATE_PASSWORD, "mobile": p.mobile, "sms_code": code,
                      "captcha_id": captcha_id, "captcha_answer": answer},
            )  # fmt: skip
            if created.status_code == 201:
                j.candidate_id = created.json()["candidate_id"]
                self.c.recorder.ack("registered", p, candidate_id=j.candidate_id)
                return True
            if created.status_code == 409 and "registered" in created.text:
                j.steps.append("register: already registered (an earlier answer was lost)")
                return True
            assert created.status_code in (400, 409, 422, 429), created.text
            return False

        await self.c.until("register", attempt, interval=1.0)

    async def sms_code(self, mobile: str) -> str | None:
        found = await self.c.call(
            "sms-sandbox",
            "messages",
            "POST",
            f"{self.u.sms}/_sandbox/messages/search",
            json={"mobile": mobile},
        )
        messages = found.json().get("messages") if found.status_code == 200 else None
        if not messages:
            return None
        code = re.search(r"\d{6}", messages[0]["text"])
        return code.group(0) if code else None

    async def degree(self, j: Journey) -> None:
        """学历验证: open a CHSI authorisation, approve it in the CHSI sandbox's app (as the
        candidate would on a phone), wait until credential-verify has the decision."""
        p = j.person
        url = f"{self.u.credential}/api/credentials/degree-authorizations"

        async def attempt() -> bool:
            qr = await self.c.call("credential-verify", "degree-qr", "POST", url, headers=j.auth)
            if qr.status_code != 201:
                assert qr.status_code in (404, 409, 422, 502), qr.text  # candidate not yet known
                return False
            j.authorization_id = qr.json()["authorization_id"]
            self.c.recorder.ack("degree_qr", p, authorization_id=j.authorization_id)
            ticket_url = qr.json()["qr_content"]
            page = await self.c.call(
                "chsi-sandbox",
                "approve-login",
                "POST",
                ticket_url,
                data={"action": "login", "id_number": p.id_number, "password": p.chsi_password},
            )
            session = re.search(r'name="session" value="([^"]+)"', page.text)
            if page.status_code != 200 or session is None:
                return False
            approved = await self.c.call(
                "chsi-sandbox", "approve", "POST", ticket_url,
                data={"action": "approve", "session": html.unescape(session.group(1)),
                      "record_id": p.record_id},
            )  # fmt: skip
            return approved.status_code == 200

        await self.c.until("degree authorisation", attempt, interval=1.0)

        async def verified() -> bool:
            got = await self.c.call(
                "credential-verify",
                "degree-status",
                "GET",
                f"{url}/{j.authorization_id}",
                headers=j.auth,
            )
            return got.status_code == 200 and got.json().get("status") == "approved"

        await self.c.until("degree verified", verified)
        j.degree_verified = True

    async def photo(self, j: Journey) -> None:
        photo = certificate_jpeg("CET-4 SCORE REPORT  480", j.person.index)

        async def attempt() -> bool:
            uploaded = await self.c.call(
                "media", "photo-upload", "POST", f"{self.u.media}/api/media/photos",
                headers=j.auth,
                files={"file": ("cet.jpg", photo, "image/jpeg")},
            )  # fmt: skip
            if uploaded.status_code == 201:
                j.photo_id = uploaded.json()["photo_id"]
                self.c.recorder.ack("photo", j.person, photo_id=j.photo_id)
                return True
            assert uploaded.status_code in (409, 429), uploaded.text
            return False

        await self.c.until("photo", attempt)

    async def certificate_check(self, j: Journey) -> None:
        p = j.person

        async def attempt() -> bool:
            done = await self.c.call(
                "credential-verify", "certificate-check", "POST",
                f"{self.u.credential}/api/credentials/certificate-checks", headers=j.auth,
                json={"exam": "cet4", "certificate_number": p.certificate,
                      "id_number": p.id_number},
            )  # fmt: skip
            if done.status_code == 201:
                assert done.json()["outcome"] == "verified", done.text
                j.check_id = str(done.json()["check_id"])
                self.c.recorder.ack("certificate_check", p, check_id=j.check_id)
                return True
            assert done.status_code in (404, 409, 422, 429, 502), done.text
            return False

        await self.c.until("certificate check", attempt)

    async def draft(self, j: Journey) -> None:
        base = f"{self.u.application}/api/applications"

        async def attempt() -> bool:
            done = await self.c.call(
                "application", "draft", "POST", base, headers=j.auth,
                json={"window_id": self.window_id, "confirmation_point_id": POINT,
                      "plan": "new", "major_codes": [MAJOR]},
            )  # fmt: skip
            if done.status_code == 201:
                j.application_id = str(done.json()["application_id"])
                self.c.recorder.ack("draft", j.person, application_id=j.application_id)
                return True
            if done.status_code == 409:  # a draft from an attempt whose answer was lost?
                mine = await self.c.call("application", "mine", "GET", base, headers=j.auth)
                apps = mine.json()["applications"] if mine.status_code == 200 else []
                if apps:
                    j.application_id = str(apps[0]["application_id"])
                    j.steps.append("draft: found the one an earlier attempt made")
                    return True
            assert done.status_code in (404, 409, 422), done.text  # candidate not yet known
            return False

        await self.c.until("draft", attempt)

    async def add_certificate(self, j: Journey) -> None:
        url = f"{self.u.application}/api/applications/{j.application_id}"

        async def attempt() -> bool:
            done = await self.c.call(
                "application", "add-certificate", "POST", f"{url}/certificates", headers=j.auth,
                json={"kind": "cet4_or_above", "route_id": ROUTE,
                      "courses": [{"course_code": COURSE, "major_code": MAJOR}],
                      "photo_ids": [j.photo_id], "certificate_check_ref": j.check_id},
            )  # fmt: skip
            if done.status_code == 201:
                self.c.recorder.ack("certificate", j.person, application_id=j.application_id)
                return True
            if done.status_code == 409 and await self._has_certificate(j):
                j.steps.append("certificate: already added by an attempt whose answer was lost")
                return True
            assert done.status_code in (404, 409, 422), done.text  # photo/check still syncing
            return False

        await self.c.until("add certificate", attempt)

    async def _has_certificate(self, j: Journey) -> bool:
        got = await self.details(j)
        return bool(got and got["certificates"])

    async def details(self, j: Journey) -> dict[str, Any] | None:
        got = await self.c.call(
            "application", "details", "GET",
            f"{self.u.application}/api/applications/{j.application_id}", headers=j.auth,
        )  # fmt: skip
        return got.json() if got.status_code == 200 else None

    async def submit(self, j: Journey, *, again: bool = False) -> None:
        url = f"{self.u.application}/api/applications/{j.application_id}/submit"
        wanted = 2 if again else 1

        async def attempt() -> bool:
            done = await self.c.call(
                "application",
                "submit",
                "POST",
                url,
                headers=j.auth,
                json={"declaration_accepted": True},
            )
            if done.status_code == 200:
                j.case_number = done.json()["case_number"] or ""
                self.c.recorder.ack(
                    "resubmit" if again else "submit", j.person,
                    application_id=j.application_id, case_number=j.case_number,
                )  # fmt: skip
                return True
            if done.status_code == 409:
                got = await self.details(j)
                if got and got["submission_number"] >= wanted and got["status"] != "returned":
                    j.case_number = got["case_number"] or ""
                    j.steps.append("submit: done by an attempt whose answer was lost")
                    return True
            assert done.status_code in (409, 422), done.text
            return False

        await self.c.until("submit", attempt)
        if again:
            j.returned = True

    async def withdraw(self, j: Journey) -> None:
        url = f"{self.u.application}/api/applications/{j.application_id}/withdraw"

        async def attempt() -> bool:
            done = await self.c.call(
                "application",
                "withdraw",
                "POST",
                url,
                headers=j.auth,
                json={"reason": "个人原因，暂不申请"},
            )
            if done.status_code == 200:
                self.c.recorder.ack("withdraw", j.person, application_id=j.application_id)
                return True
            got = await self.details(j)
            if got and got["status"] == "withdrawn":
                return True
            assert done.status_code in (409, 422), done.text
            return False

        await self.c.until("withdraw", attempt)
        j.withdrawn = True

    async def until_status(self, j: Journey, status: str) -> None:
        async def reached() -> bool:
            got = await self.details(j)
            return bool(got and got["status"] == status)

        await self.c.until(f"status {status}", reached)

    # --- the reviewers ----------------------------------------------------------------------

    async def until_in_review(
        self, j: Journey, *, submission: int, stage: str | None = None
    ) -> None:
        url = f"{self.u.review}/api/review/cases/{j.application_id}"

        async def arrived() -> bool:
            found = await self.c.call("review", "case", "GET", url, headers=self.senior)
            if found.status_code == 401:
                await self.relogin_staff()
                return False
            if found.status_code != 200:
                return False
            case = found.json()
            return case["submission_number"] == submission and (
                stage is None or case["acting_stage"] == stage
            )

        await self.c.until("case in review", arrived)

    async def decide(self, j: Journey, action: str, submission: int) -> None:
        """Claim, then 退回 / 初审 / 复审; a retry that finds it done (409) reads the case."""
        case = f"{self.u.review}/api/review/cases/{j.application_id}"
        body: dict[str, Any] = {"submission_number": submission}
        if action == "return":
            body["reason"] = "证书照片不清晰，请重新上传"
        else:
            body["decisions"] = [{"course_code": COURSE, "major_code": MAJOR, "outcome": "granted"}]
        stage_before = "point" if action in ("return", "initial-review") else "provincial"

        async def attempt() -> bool:
            auth = self.reviewer if stage_before == "point" else self.senior
            claimed = await self.c.call(
                "review",
                "claim",
                "POST",
                f"{case}/claim",
                headers=auth,
                json={"submission_number": submission},
            )
            if claimed.status_code == 401:
                await self.relogin_staff()
                return False
            done = await self.c.call(
                "review", action, "POST", f"{case}/{action}", headers=auth, json=body
            )
            if done.status_code == 200:
                self.c.recorder.ack(
                    f"review_{action}", j.person, application_id=j.application_id,
                    submission=str(submission),
                )  # fmt: skip
                return True
            if done.status_code == 409:  # done by an attempt whose answer was lost?
                found = await self.c.call("review", "case", "GET", case, headers=self.senior)
                if found.status_code == 200:
                    now = found.json()
                    moved = (
                        now["submission_number"] != submission
                        or now["acting_stage"] != stage_before
                    )
                    if moved:
                        j.steps.append(f"{action}: done by an attempt whose answer was lost")
                        return True
            assert done.status_code in (401, 403, 404, 409, 422), done.text
            return False

        await self.c.until(action, attempt)
