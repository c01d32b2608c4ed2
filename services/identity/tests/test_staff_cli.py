"""`identity staff-create`, `rotate-signing-key` and `sweep` against the test database."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import asyncpg
import pytest

from identity_service.entrypoints.cli import main

pytestmark = pytest.mark.integration

PASSWORD = "Shenhe#2026"
REVIEWER = [
    "staff-create",
    "--username",
    "Reviewer1",
    "--display-name",
    "小店区 审核员一",
    "--role",
    "reviewer",
    "--cp",
    "140105",
    "--cp",
    "140106",
    "--password-stdin",
    "--actor",
    "ops:zhang.san",
]


@pytest.fixture
def dsn(database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IDENTITY_PG_DSN", database)
    return database


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def query(dsn: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_staff_create_reads_the_password_from_stdin(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, PASSWORD + "\n")
    assert main(REVIEWER) == 0
    out = capsys.readouterr()
    staff_id = uuid.UUID(out.out.strip())
    assert PASSWORD not in out.out + out.err
    rows = query(dsn, "SELECT * FROM identity.staff_accounts")
    assert len(rows) == 1
    assert rows[0]["staff_id"] == staff_id and rows[0]["username"] == "reviewer1"
    assert rows[0]["roles"] == ["reviewer"] and rows[0]["confirmation_points"] == [
        "140105",
        "140106",
    ]
    assert rows[0]["created_by"] == "zhang.san"
    events = query(dsn, "SELECT stream_id, actor_kind, actor_id FROM eventkit.events")
    assert events == [{"stream_id": str(staff_id), "actor_kind": "ops", "actor_id": "zhang.san"}]

    stdin(monkeypatch, PASSWORD + "\n")
    assert main(REVIEWER) == 2
    assert "identity.staff_username_taken" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (("--role", "reviewer", "admin"), "identity.staff_roles_invalid"),
        (("--display-name", "小店区 审核员一", " "), "identity.staff_display_name_invalid"),
        (("--cp", "140105", "1401"), "identity.staff_confirmation_points_invalid"),
        (("--username", "Reviewer1", "x"), "identity.staff_username_invalid"),
        (("--actor", "ops:zhang.san", "staff:someone"), "--actor must be ops"),
    ],
)
def test_staff_create_refuses_bad_input_with_exit_code_2(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str, str],
    code: str,
) -> None:
    flag, old, new = change
    argv = list(REVIEWER)
    argv[argv.index(old, argv.index(flag))] = new
    stdin(monkeypatch, PASSWORD + "\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert code in err and any("\u4e00" <= c <= "\u9fff" for c in err)


def test_staff_create_refuses_a_weak_password(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "reviewer1abc\n")
    assert main(REVIEWER) == 2
    assert "identity.password_weak" in capsys.readouterr().err
    assert query(dsn, "SELECT count(*) AS n FROM identity.staff_accounts") == [{"n": 0}]


def test_staff_create_prompts_twice_and_refuses_a_mismatch(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    argv = [a for a in REVIEWER if a != "--password-stdin"]
    assert main(argv) == 2
    assert "the passwords differ" in capsys.readouterr().err


def test_staff_create_needs_a_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["staff-create", "--username", "x", "--display-name", "y"])
    assert exited.value.code == 2
    assert "参数错误 / bad argument" in capsys.readouterr().err


def test_rotate_signing_key_and_sweep(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rotate-signing-key"]) == 0
    assert main(["rotate-signing-key"]) == 0
    keys = query(dsn, "SELECT kid, retired_at FROM identity.signing_keys ORDER BY created_at")
    assert len(keys) == 2 and keys[0]["retired_at"] is not None and keys[1]["retired_at"] is None
    assert keys[1]["kid"] in capsys.readouterr().out
    query(
        dsn,
        "INSERT INTO identity.captchas (id, answer_hash, expires_at)"
        " VALUES (gen_random_uuid(), decode('00', 'hex'), now() - interval '2 hours')",
    )
    query(
        dsn,
        "INSERT INTO identity.login_throttle (key, failures, window_started)"
        " VALUES ('acct:staff:old', 1, now() - interval '2 days'),"
        " ('acct:staff:new', 1, now())",
    )
    query(
        dsn,
        "INSERT INTO identity.sms_codes (id, purpose, mobile_hash, code_hash, expires_at) VALUES"
        " (gen_random_uuid(), 'register', 'old', decode('00', 'hex'), now() - interval '2 hours'),"
        " (gen_random_uuid(), 'register', 'new', decode('00', 'hex'), now() + interval '5 min')",
    )
    assert main(["sweep"]) == 0
    assert (
        "验证码 captchas 1 · 短信验证码 SMS codes 1 · 登录计数 login counters 1"
        in capsys.readouterr().out
    )
    assert query(dsn, "SELECT count(*) AS n FROM identity.captchas") == [{"n": 0}]
    assert query(dsn, "SELECT mobile_hash FROM identity.sms_codes") == [{"mobile_hash": "new"}]
    assert query(dsn, "SELECT key FROM identity.login_throttle") == [{"key": "acct:staff:new"}]
