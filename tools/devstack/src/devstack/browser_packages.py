"""The system packages browser tests need: Chromium and a CJK font (Debian: apt-get).

Playwright's own browser download is not used; tests drive the system Chromium at
``/usr/bin/chromium`` and need ``fonts-noto-cjk`` so Chinese text renders as glyphs, not tofu.
``devstack install`` installs both when missing, if it can (root and apt-get); otherwise it
says which packages to install and carries on (the browser tests then fail with that hint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devstack import apt
from devstack.apt import Runner

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "fonts-noto-cjk")
# Where Debian's fonts-noto-cjk puts its files (used when fc-list is not installed yet).
NOTO_CJK_DIR = Path("/usr/share/fonts/opentype/noto")


@dataclass(frozen=True)
class Plan:
    """What to do about the browser packages."""

    action: Literal["present", "install", "cannot"]
    missing: tuple[str, ...] = ()
    reason: str = ""


def plan(*, chromium: bool, cjk_font: bool, is_root: bool, apt_get: str | None) -> Plan:
    """The decision, from the facts: nothing, ``apt-get install``, or a hint to the user."""
    missing = tuple(
        what for what, ok in (("chromium", chromium), ("fonts-noto-cjk", cjk_font)) if not ok
    )
    if not missing:
        return Plan("present")
    if apt_get is None:
        return Plan("cannot", missing, "no apt-get on this machine")
    if not is_root:
        return Plan("cannot", missing, "not root")
    return Plan("install", missing)


def has_cjk_font(run: Runner = subprocess.run) -> bool:
    """A font covering Chinese is installed (``fc-list :lang=zh``, else the Noto CJK files)."""
    fc_list = shutil.which("fc-list")
    if fc_list is not None:
        try:
            out = run(
                [fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.strip():
            return True
    return any(NOTO_CJK_DIR.glob("NotoSansCJK*"))


def current_plan(run: Runner = subprocess.run) -> Plan:
    return plan(
        chromium=CHROMIUM.exists(),
        cjk_font=has_cjk_font(run),
        is_root=os.geteuid() == 0,
        apt_get=shutil.which("apt-get"),
    )


def apt_commands(apt_get: str) -> list[list[str]]:
    return apt.apt_commands(apt_get, PACKAGES)


def ensure_browser_packages(
    run: Runner = subprocess.run, say: Callable[[str], Any] = print
) -> bool:
    """Install Chromium and the CJK font when missing and possible; True when both are present.

    Quiet when they are; one line when installing; a hint naming the packages when it cannot.
    """
    p = current_plan(run)
    if p.action == "present":
        return True
    packages = " ".join(PACKAGES)
    if p.action == "cannot":
        say(
            f"browser   missing {', '.join(p.missing)} and cannot install ({p.reason}): "
            f"install the Debian packages {packages} (browser tests fail without them)"
        )
        return False
    apt_get = shutil.which("apt-get")
    assert apt_get is not None  # plan() said "install"
    say(f"browser   missing {', '.join(p.missing)}: apt-get install {packages}")
    if not apt.apt_install(
        apt_get, PACKAGES, label="browser", without="browser tests fail without them",
        run=run, say=say,
    ):  # fmt: skip
        return False
    return current_plan(run).action == "present"


def chromium_version(run: Runner = subprocess.run) -> str:
    try:
        out = run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.split(" built on ")[0].strip() or "unknown"


def status_line(run: Runner = subprocess.run) -> str:
    return f"browser   {chromium_version(run)}: {CHROMIUM}; CJK font present"
