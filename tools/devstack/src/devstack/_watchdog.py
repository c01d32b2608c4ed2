"""Stops a non-detached stack whose owner process died without stopping it (e.g. a test run
killed by SIGKILL or SIGTERM, which skip atexit). Started by ``Stack.start()`` in its own session:

    python -m devstack._watchdog <run_dir> <owner_pid> <owner_start_time>

Exits on its own once ``stack.json`` is gone or belongs to another owner.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from ._proc import is_alive

log = logging.getLogger("devstack.watchdog")

POLL_SECONDS = 0.5


def _owner_of(state_file: Path) -> int | None:
    try:
        return int(json.loads(state_file.read_text()).get("owner_pid"))
    except (OSError, ValueError, TypeError):
        return None


def watch(run_dir: Path, owner_pid: int, owner_start: int | None) -> int:
    state_file = run_dir / "stack.json"
    while True:
        if _owner_of(state_file) != owner_pid:
            return 0  # stopped normally, or someone else's stack now
        if not is_alive(owner_pid, owner_start):
            break
        time.sleep(POLL_SECONDS)
    from .stack import Stack

    log.warning("owner pid %d of the stack in %s is gone; stopping the stack", owner_pid, run_dir)
    result = Stack.attach(run_dir).stop()
    log.warning("stopped: %s", result)
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    run_dir, owner_pid, owner_start = Path(argv[0]), int(argv[1]), argv[2]
    return watch(run_dir, owner_pid, None if owner_start == "-" else int(owner_start))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
