"""A donor's receipt, put together from the donor store and the ledger's read side.

The number and the verification code open it; the number alone opens nothing
(the same 404 either way, so guessing numbers learns nothing). It shows the
gift, never the donor: the name and message stay in the donor store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.donors.adapters.store import DonorStore
from services.donors.domain.pledges import Pledge
from services.donors.domain.receipts import codes_match
from services.ledger.read import LedgerQueries, NotYetCovered, Transparency


@dataclass
class ReceiptView:
    pledge: Pledge
    project_name: str
    gift: dict[str, Any] | None  # None until the ledger has applied the confirmation
    proof: dict[str, Any] | None  # None until a signed tree head covers the gift's entry
    public_key: dict[str, Any] | None  # the key that signed proof's head
    uses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def paid_at(self) -> datetime | None:
        if self.pledge.paid_at_ms is None:
            return None
        return datetime.fromtimestamp(self.pledge.paid_at_ms / 1000, UTC)

    def as_json(self) -> dict[str, Any]:
        p = self.pledge
        return {
            "receipt_no": p.receipt_no,
            "donation_id": p.donation_id,
            "project_id": p.project_id,
            "project_name": self.project_name,
            "amount_fen": p.amount_fen,
            "currency": p.currency,
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "provider": p.provider,
            "payment_reference": p.provider_charge_id,
            "in_ledger": self.gift is not None,
            "entry_id": self.gift["entry_id"] if self.gift else None,
            "proof": self.proof,
            "public_key": self.public_key,
            "uses": self.uses,
        }


def receipt_view(
    store: DonorStore, queries: LedgerQueries, transparency: Transparency, receipt_no: str, code: str
) -> ReceiptView | None:
    pledge = store.pledge_by_receipt(receipt_no)
    if pledge is None or not codes_match(code, pledge.verification_code):
        return None
    project = queries.project(pledge.project_id)
    name = str(project.plan.get("name", pledge.project_id)) if project else pledge.project_id
    gift = queries.gift(pledge.donation_id)
    proof = public_key = None
    uses: list[dict[str, Any]] = []
    if gift is not None:
        uses = queries.gift_uses(pledge.donation_id)
        try:
            proof = transparency.receipt(gift["entry_id"])
        except NotYetCovered:
            proof = None
        if proof is not None:
            key_id = proof["tree_head"].get("key_id")
            keys = transparency.public_keys()
            public_key = next((k for k in keys if k["key_id"] == key_id), keys[-1] if keys else None)
    return ReceiptView(pledge, name, gift, proof, public_key, uses)
