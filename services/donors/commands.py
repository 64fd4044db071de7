"""`charity-ledger donors …`: what operators do with the donor store."""

from __future__ import annotations

import time

from rich.console import Console

from services.donors.adapters.store import DonorStore
from services.donors.domain.receipts import RECEIPT_NO
from services.platform.db import make_engine


def erase_command(database_url: str, receipt_no: str, console: Console | None = None) -> int:
    """Erase one donor's personal data (name, message, data key), found by a receipt number.

    The receipt, its amounts and its proofs stay: the journal never held the person.
    Exit status: 0 erased, 1 no such receipt, 2 not a receipt number.
    """
    out = console or Console(highlight=False)
    number = receipt_no.strip().upper()
    if RECEIPT_NO.fullmatch(number) is None:
        out.print(f"{receipt_no!r} is not a receipt number (e.g. SIP-2026-0001234)")
        return 2
    engine = make_engine(database_url)
    try:
        store = DonorStore(engine)
        pledge = store.pledge_by_receipt(number)
        if pledge is None:
            out.print(f"no receipt {number}")
            return 1
        store.erase(pledge.donor_ref, now_ms=int(time.time() * 1000))
        out.print(f"erased the personal data of receipt {number}; the gift and its proofs remain")
        return 0
    finally:
        engine.dispose()
