"""Unit: when `devstack install` apt-gets chromium + fonts-noto-cjk (subprocess faked here only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import browser_packages as bp

pytestmark = pytest.mark.unit

APT = "/usr/bin/apt-get"


@pytest.mark.parametrize(
    ("chromium", "font", "root", "apt", "expected"),
    [
        (True, True, True, APT, bp.Plan("present")),
        (True, True, False, None, bp.Plan("present")),
        (False, True, True, APT, bp.Plan("install", ("chromium",))),
        (True, False, True, APT, bp.Plan("install", ("fonts-noto-cjk",))),
        (False, False, True, APT, bp.Plan("install", ("chromium", "fonts-noto-cjk"))),
        (False, False, False, APT, bp.Plan("cannot", ("chromium", "fonts-noto-cjk"), "not root")),
        (
            True,
            False,
            True,
            None,
            bp.Plan("cannot", ("fonts-noto-cjk",), "no apt-get on this machine"),
        ),
    ],
)
def test_plan(chromium: bool, font: bool, root: bool, apt: str | None, expected: bp.Plan) -> None:
    assert bp.plan(chromium=chromium, cjk_font=font, is_root=root, apt_get=apt) == expected


class FakeSystem:
    """A machine without chromium and CJK fonts until `apt-get install` "installs" them."""

    def __init__(self, tmp_path: Path, *, apt_rc: int = 0) -> None:
        self.chromium = tmp_path / "chromium"
        self.installed = False
        self.apt_rc = apt_rc
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def run(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((cmd, kw))
        out = ""
        rc = 0
        if cmd[0].endswith("fc-list"):
            out = "Noto Sans CJK SC\n" if self.installed else ""
        elif cmd[0] == APT:
            rc = self.apt_rc
            out = "E: Unable to locate package chromium" if rc else ""
            if cmd[1] == "install" and rc == 0:
                self.installed = True
                self.chromium.write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(cmd, rc, out, "")

    def apt_calls(self) -> list[tuple[list[str], dict[str, Any]]]:
        return [c for c in self.calls if c[0][0] == APT]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    fake = FakeSystem(tmp_path)
    monkeypatch.setattr(bp, "CHROMIUM", fake.chromium)
    monkeypatch.setattr(bp, "NOTO_CJK_DIR", tmp_path / "no-fonts")
    tools = {"apt-get": APT, "fc-list": "/usr/bin/fc-list"}
    monkeypatch.setattr(shutil, "which", tools.get)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return fake


def test_installs_both_once_as_root(fake: FakeSystem) -> None:
    said: list[str] = []
    assert bp.ensure_browser_packages(run=fake.run, say=said.append)
    cmds = [c for c, _ in fake.apt_calls()]
    assert cmds == [
        [APT, "update", "-q"],
        [APT, "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-noto-cjk"],
    ]
    assert all(kw["env"]["DEBIAN_FRONTEND"] == "noninteractive" for _, kw in fake.apt_calls())
    assert said == [
        "browser   missing chromium, fonts-noto-cjk: apt-get install chromium fonts-noto-cjk"
    ]

    # Second run: everything present, no apt-get, nothing said.
    said.clear()
    fake.calls.clear()
    assert bp.ensure_browser_packages(run=fake.run, say=said.append)
    assert fake.apt_calls() == []
    assert said == []


def test_not_root_names_the_packages_and_carries_on(
    fake: FakeSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    said: list[str] = []
    assert not bp.ensure_browser_packages(run=fake.run, say=said.append)
    assert fake.apt_calls() == []
    assert len(said) == 1
    assert "not root" in said[0]
    assert "chromium fonts-noto-cjk" in said[0]


def test_no_apt_names_the_packages(fake: FakeSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", {"fc-list": "/usr/bin/fc-list"}.get)
    said: list[str] = []
    assert not bp.ensure_browser_packages(run=fake.run, say=said.append)
    assert "no apt-get" in said[0]
    assert "chromium fonts-noto-cjk" in said[0]


def test_apt_failure_is_reported_not_raised(fake: FakeSystem) -> None:
    fake.apt_rc = 100
    said: list[str] = []
    assert not bp.ensure_browser_packages(run=fake.run, say=said.append)
    assert [c[1] for c, _ in fake.apt_calls()] == ["update"]  # stops at the first failure
    assert "rc=100" in said[-1]
    assert "Unable to locate package" in said[-1]


def test_font_files_count_without_fc_list(
    fake: FakeSystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", {"apt-get": APT}.get)
    assert not bp.has_cjk_font(fake.run)
    fonts = tmp_path / "noto"
    fonts.mkdir()
    (fonts / "NotoSansCJK-Regular.ttc").write_bytes(b"")
    monkeypatch.setattr(bp, "NOTO_CJK_DIR", fonts)
    assert bp.has_cjk_font(fake.run)
