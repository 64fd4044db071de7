"""`charity-ledger donors erase`: the person goes, the gift stays."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from services.donors.adapters.store import DonorDetails, DonorStore
from services.donors.commands import erase_command
from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from tests.fixtures.donor_payments import mark_paid
from tests.fixtures.factories import a_pledge

KNOWN = DonorDetails.new("王小明", "加油")


def test_erase_by_receipt_number(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    LedgerStore(engine).migrate()
    store = DonorStore(engine)
    pledge = a_pledge()
    store.create_pledge(pledge, KNOWN, client_hash="c", idempotency=None, now_ms=pledge.created_at_ms)
    paid = mark_paid(store, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026)
    out = io.StringIO()
    console = Console(file=out, width=200)

    assert erase_command(url, "sip-2026-0000001", console) == 0
    assert store.details(pledge.donor_ref) == DonorDetails(None, None, None)
    assert store.pledge_by_receipt("SIP-2026-0000001") == paid  # the gift and its number stay
    assert "erased" in out.getvalue()
    assert erase_command(url, "SIP-2026-0000009", console) == 1
    assert erase_command(url, "not-a-number", console) == 2
    assert "not a receipt number" in out.getvalue()
