"""Unit: `devstack install` apt-gets nginx-light for the reverse-proxy tests when it is missing
(subprocess and the file system faked here only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import proxy_packages as pp

pytestmark = pytest.mark.unit

APT = "/usr/bin/apt-get"


class FakeSystem:
    """A machine without nginx until `apt-get install nginx-light` "installs" it."""

    def __init__(self, tmp_path: Path, *, apt_rc: int = 0) -> None:
        self.nginx = tmp_path / "nginx"
        self.apt_rc = apt_rc
        self.calls: list[list[str]] = []

    def run(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        assert kw["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        if cmd[1] == "install" and self.apt_rc == 0:
            self.nginx.write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(cmd, self.apt_rc, "", "E: failed" if self.apt_rc else "")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    fake = FakeSystem(tmp_path)
    monkeypatch.setattr(pp, "NGINX", fake.nginx)
    monkeypatch.setattr(shutil, "which", {"apt-get": APT}.get)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return fake


def test_installs_nginx_once_as_root(fake: FakeSystem) -> None:
    said: list[str] = []
    assert pp.missing_nginx_message() is not None
    assert pp.ensure_nginx(run=fake.run, say=said.append)
    assert fake.calls == [
        [APT, "update", "-q"],
        [APT, "install", "-y", "-q", "--no-install-recommends", "nginx-light"],
    ]
    assert said == ["proxy     missing nginx: apt-get install nginx-light"]
    assert pp.nginx_binary() == fake.nginx and pp.missing_nginx_message() is None
    fake.calls.clear()
    said.clear()
    assert pp.ensure_nginx(run=fake.run, say=said.append)
    assert fake.calls == [] and said == []


def test_without_root_or_apt_it_names_the_package(
    fake: FakeSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    said: list[str] = []
    assert not pp.ensure_nginx(run=fake.run, say=said.append)
    assert fake.calls == [] and "not root" in said[0] and "nginx-light" in said[0]
    monkeypatch.setattr(shutil, "which", {}.get)
    said.clear()
    assert not pp.ensure_nginx(run=fake.run, say=said.append)
    assert "no apt-get" in said[0]


def test_a_failed_install_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSystem(tmp_path, apt_rc=100)
    monkeypatch.setattr(pp, "NGINX", fake.nginx)
    monkeypatch.setattr(shutil, "which", {"apt-get": APT}.get)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    said: list[str] = []
    assert not pp.ensure_nginx(run=fake.run, say=said.append)
    assert "failed (rc=100)" in said[-1] and "E: failed" in said[-1]
