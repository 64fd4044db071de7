"""What the ledger's helper processes (intake, publisher) have in common.

The batch loop is the ledger's bottleneck: one thread that needs a whole
core. The helpers take work off it, but on a small machine they and the
broker also compete with it for the cores, and a batch loop waiting in the
run queue is throughput lost (docs/benchmarks.md). So the helpers run at a
lower priority: they only need the CPU the batch loop leaves.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger(__name__)

# Linux's CFS weighs a niceness of 10 at about a tenth of 0: when a helper and
# the batch loop want the same core, the batch loop gets it. Measured with
# 100,000 gifts on SQLite: 10,865 and 11,223 events/s against 8,953 and 9,561
# at equal priority, the runs alternated.
HELPER_NICENESS = 10


def start(name: str, target: Callable[..., None], args: tuple[Any, ...]) -> BaseProcess:
    """Start a helper by spawning, never forking: the ledger has threads."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, name=name, daemon=True)
    process.start()
    return process


def become_helper(name: str) -> None:
    """The first thing a helper process does."""
    # Ctrl-C reaches the whole process group; the ledger decides when a helper stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    os.nice(HELPER_NICENESS)


def stop(process: BaseProcess, control: Connection, timeout: float, drain: Connection | None = None) -> None:
    """Tell a helper to stop (None on its control pipe), let it finish, and wait for it.

    drain: the pipe the helper sends on, if it may be in the middle of sending
    something larger than the pipe holds; what it still sends is read and
    dropped, so that it gets to read its stop.
    """
    if process.is_alive():
        with contextlib.suppress(OSError):  # already gone
            control.send(None)
    deadline = time.monotonic() + timeout
    while process.is_alive() and time.monotonic() < deadline:
        process.join(0.05)
        with contextlib.suppress(EOFError, OSError):  # it has exited
            while drain is not None and drain.poll(0):
                drain.recv_bytes()
    if process.is_alive():
        log.error("the %s process did not stop within %.0fs; terminating it", process.name, timeout)
        process.terminate()
        process.join(5)
