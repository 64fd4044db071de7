"""The journal's verification status as metrics, for the alert on a failed verification.

The same incremental `JournalVerification` the console's pages show (one per API
process, `app.state.verification`), asked every so often in a worker thread, so a
journal entry or signed tree head that fails its checks raises an alert without
anyone opening a page. `charity-ledger verify` remains the full check.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from prometheus_client import Gauge

log = logging.getLogger(__name__)
EVERY_S = 60.0

VERIFICATION_FAILED = Gauge(
    "api_journal_verification_failed",
    "1 once this process found a journal entry or signed tree head failing verification "
    "(it stays until the process restarts: the journal is append-only)",
)
VERIFIED_SEQ = Gauge("api_journal_verified_seq", "The journal is verified from seq 1 up to this seq")


class Status(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def checked_seq(self) -> int: ...


class Verification(Protocol):
    def status(self) -> Status: ...


def observe(status: Status) -> None:
    VERIFICATION_FAILED.set(1 if status.state == "failed" else 0)
    VERIFIED_SEQ.set(status.checked_seq)


async def watch_journal(verification: Verification, every_s: float = EVERY_S) -> None:
    """Check the entries added since the last round, every `every_s` (the first after one wait)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            observe(await asyncio.to_thread(verification.status))
        except Exception:  # the database away: the gauges keep their last values
            log.exception("reading the journal's verification status failed; again in %.0f s", every_s)
