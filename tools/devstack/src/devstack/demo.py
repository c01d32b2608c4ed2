"""Demo data for `make run`: a roster of the sandbox people, staff accounts, the demo catalogue
and an open application window, loaded through the services' own ops commands (the launcher
imports no service). Idempotent: a second run finds everything in place.

The roster's people are the CHSI and NEEA sandboxes' seeded people (tools/sandboxes/README.md),
so the degree verification and certificate checks of the walkthrough find their records.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .endpoints import Endpoints
from .system import DEFAULT, System

CHINA = timezone(timedelta(hours=8))
ROSTER_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
# (准考证号, 身份证号, 姓名, 性别, 报名区县, 报考专业): the sandboxes' people, demo tickets.
ROSTER = (
    ("010118100001", "140105199003152018", "张建国", "男", "140105", "030101"),
    ("010118100002", "140106199107221029", "李晓燕", "女", "140106", "120203"),
    ("010118100003", "140107199504083017", "王磊", "男", "140107", "080901"),
    ("010118100004", "14010919870611502X", "赵敏", "女", "140109", "050101"),
    ("010118100005", "140202199802246025", "刘芳", "女", "140202", "530605"),
    ("010118100006", "140402199211307018", "陈志强", "男", "140402", "530605"),
)
STAFF_PASSWORD = "Shenhe#2026demo"  # noqa: S105 (a public demo password, local runs only)


@dataclass(frozen=True)
class StaffAccount:
    username: str
    display_name: str
    role: str
    points: tuple[str, ...] = ()


STAFF = (
    StaffAccount("xiaodian.reviewer1", "小店区确认点 审核员", "reviewer", ("140105",)),
    StaffAccount("province.senior1", "省考试院 复审员", "senior_reviewer"),
    StaffAccount("ops.admin", "运维 值班", "ops"),
)


def _run(command: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[int, str]:
    done = subprocess.run(
        command, env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def seed(endpoints: Endpoints, run_dir: Path, system: System = DEFAULT) -> list[str]:
    """Load the demo data (idempotently) into the databases of `system`'s identity and
    application; lines saying what was done, for the terminal."""
    scripts = Path(sys.executable).parent
    env = {**os.environ, **endpoints.to_env()}  # EVENTKIT_DEV_MODE: the demo's dev keys
    identity_dsn = endpoints.pg_dsn(system.service("identity").database)
    application_dsn = endpoints.pg_dsn(system.service("application").database)

    def identity(*args: str, stdin: str | None = None) -> tuple[int, str]:
        return _run([str(scripts / "identity"), *args, "--dsn", identity_dsn], env, stdin)

    def application(*args: str) -> tuple[int, str]:
        return _run([str(scripts / "application"), *args, "--dsn", application_dsn], env)

    def outcome(what: str, code: int, out: str) -> str:
        return what if code == 0 else f"{what}: failed ({out[-200:]})"

    lines: list[str] = []
    roster = run_dir / "demo-roster.csv"
    rows = [f"{t},{i},{n},{g},140100,{d},{m}," for t, i, n, g, d, m in ROSTER]
    roster.write_text("\n".join([ROSTER_HEADER, *rows]) + "\n", encoding="utf-8")
    code, out = identity("roster-import", str(roster), "--actor", "ops:demo")
    lines.append(outcome(f"roster: {len(ROSTER)} sandbox people", code, out))

    for account in STAFF:
        points = [arg for point in account.points for arg in ("--cp", point)]
        code, out = identity(
            "staff-create", "--username", account.username, "--display-name",
            account.display_name, "--role", account.role, *points, "--actor", "ops:demo",
            "--password-stdin", stdin=STAFF_PASSWORD + "\n",
        )  # fmt: skip
        if code != 0 and "已被使用" not in out:
            lines.append(outcome(f"staff {account.username}", code, out))
    lines.append("staff: " + ", ".join(a.username for a in STAFF))

    code, out = application("catalogue-import-demo", "--activate", "--actor", "ops:demo")
    lines.append(outcome("catalogue: demo", code, out))

    code, out = application("window-list")
    if "申请中" in out:
        lines.append("window: one is open")
        return lines
    now = datetime.now(CHINA).replace(second=0, microsecond=0)

    def at(days: int) -> str:
        return (now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")

    code, out = application(
        "window-open", "--actor", "ops:demo", "--name", "演示：本期免考申请",
        "--opens", at(-1), "--applications-close", at(14), "--point-review-close", at(24),
        "--province-review-close", at(34), "--results", at(40),
    )  # fmt: skip
    lines.append(outcome("window: opened", code, out))
    return lines


def walkthrough(
    portal: str, review: str, chsi: str, sms: str = "http://127.0.0.1:8203"
) -> list[str]:
    """A short walkthrough with the demo logins, for the terminal."""
    first = ROSTER[0]
    return [
        "demo walkthrough:",
        f"  1. {portal}/register — 考生注册: 准考证号 {first[0]}, 身份证号 {first[1]},",
        f"     姓名 {first[2]},",
        "     any mobile number and the captcha, 获取短信验证码; the SMS sandbox got the code:",
        f"     curl -s {sms}/_sandbox/messages/search -H 'content-type: application/json'",
        """     -d '{"mobile": "<the number>"}'; then 短信验证码, a password of your own""",
        "     (8+ characters, letters and digits), the new captcha, 注册",
        f"  2. {portal}/login — log in, then 学历验证: 获取学信网二维码; open the link under the",
        f"     QR code (the CHSI app sandbox, {chsi}), sign in as 张建国 with password",
        "     sandbox-zhang and approve chsi-rec-0001",
        f"  3. {portal}/apply — 免考确认点 太原市小店区, 新计划, 030101 法学; 新增免考课程:",
        "     大学英语四、六级证书, 证书编号 121141400100123, his ID number, 13000, any JPEG",
        "     over 800×600; 下一步, tick the 承诺书, 提交",
        f"  4. {review}/login — xiaodian.reviewer1 / {STAFF_PASSWORD}: 下一件, then 退回 or",
        f"     初审; province.senior1 / {STAFF_PASSWORD} decides 复审",
        "  5. the case's whole story from the events: source <run dir>/stack.env &&",
        "     uv run ops history <办件编号>  (more: tools/ops/README.md)",
    ]
