"""A step run every few seconds by a thread of its own, which stops its process on a fatal error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def run_every(
    stop: threading.Event,
    every_s: float,
    step: Callable[[], object],
    fatal: type[Exception],
    failures: list[Exception],
    what: str,
) -> None:
    """Run `step` every `every_s` until `stop`. Any error is logged and the step tried
    again at the next turn, but a `fatal` one: that is recorded in `failures` and sets
    `stop`, so the whole process stops (and is restarted) instead of going on without it."""
    while not stop.wait(every_s):
        try:
            step()
        except fatal as exc:
            log.critical("%s failed for good (%s); stopping", what, exc)
            failures.append(exc)
            stop.set()
            return
        except Exception:
            log.exception("%s failed; trying again at the next turn", what)
