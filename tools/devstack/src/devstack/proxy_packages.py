"""The reverse proxy the proxy tests put in front of the web UIs: Debian's nginx (apt-get).

The tests that check which client address reaches identity through a real reverse proxy start
``nginx`` themselves (their own configuration in a temporary directory, a free port, in the
foreground, stopped at the end); they only need the binary. ``devstack install`` installs
``nginx-light`` when it is missing, if it can (root and apt-get), the same way as the browser
packages; otherwise it names the package and carries on (those tests then fail with that hint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack import apt
from devstack.apt import Runner

PACKAGE = "nginx-light"
NGINX = Path("/usr/sbin/nginx")  # where Debian's nginx packages put the binary


def nginx_binary() -> Path | None:
    """The nginx binary, when installed."""
    if NGINX.exists():
        return NGINX
    found = shutil.which("nginx")
    return Path(found) if found else None


def missing_nginx_message() -> str | None:
    """None when nginx is there; else what to install (for a test's failure)."""
    if nginx_binary() is not None:
        return None
    return f"nginx is not installed: run `uv run devstack install` as root, or install {PACKAGE}"


def apt_commands(apt_get: str) -> list[list[str]]:
    return apt.apt_commands(apt_get, [PACKAGE])


def ensure_nginx(run: Runner = subprocess.run, say: Callable[[str], Any] = print) -> bool:
    """Install nginx when missing and possible; True when it is present.

    Quiet when it is; one line when installing; a hint naming the package when it cannot."""
    if nginx_binary() is not None:
        return True
    apt_get = shutil.which("apt-get")
    reason = "no apt-get on this machine" if apt_get is None else "not root" if os.geteuid() else ""
    if apt_get is None or reason:
        say(
            f"proxy     missing nginx and cannot install ({reason}): install the Debian package "
            f"{PACKAGE} (the reverse-proxy tests fail without it)"
        )
        return False
    say(f"proxy     missing nginx: apt-get install {PACKAGE}")
    if not apt.apt_install(
        apt_get, [PACKAGE], label="proxy", without="the reverse-proxy tests fail without it",
        run=run, say=say,
    ):  # fmt: skip
        return False
    return nginx_binary() is not None


def status_line() -> str:
    return f"proxy     nginx: {nginx_binary()}"
