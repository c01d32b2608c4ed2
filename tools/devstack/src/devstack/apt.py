"""Installing Debian packages the test lanes need (chromium and its CJK fonts, nginx), the one
way: `apt-get update` then `apt-get install --no-install-recommends`, as root, non-interactive,
with a hint naming the packages when a step fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

Runner = Callable[..., subprocess.CompletedProcess[str]]


def apt_commands(apt_get: str, packages: Sequence[str]) -> list[list[str]]:
    """The two commands that install `packages`."""
    return [
        [apt_get, "update", "-q"],
        [apt_get, "install", "-y", "-q", "--no-install-recommends", *packages],
    ]


def apt_install(
    apt_get: str,
    packages: Sequence[str],
    *,
    label: str,
    without: str,
    run: Runner = subprocess.run,
    say: Callable[[str], Any] = print,
) -> bool:
    """Run the install; False (and a hint: `label`, what fails `without` them) when a step
    fails. Whether the packages now work is the caller's to check."""
    names = " ".join(packages)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in apt_commands(apt_get, packages):
        proc = run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            say(
                f"{label:<9} `{' '.join(cmd)}` failed (rc={proc.returncode}); install {names} "
                f"by hand ({without}):\n{tail}"
            )
            return False
    return True
