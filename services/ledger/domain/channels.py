"""Where money that reached a project came from: the one classification of its channels.

Online gifts name their channel (`web`, `qr` at a venue, `venue`, `bank_transfer`); money
counted at a venue is a cash box or a charity sale there; money redirected out of another
project's suspense is `redirected`. The closed-loop page, its charts and its exports all
classify with `channel_of`, from the journal entry's kind and body fields, so each names a
channel the same way. No I/O: a caller that groups rows in SQL classifies the groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Each channel's label, Chinese then English.
LABELS: Mapping[str, tuple[str, str]] = {
    "web": ("网上捐赠", "Online"),
    "qr": ("扫码捐赠", "QR code"),
    "venue": ("现场捐赠", "At a venue"),
    "bank_transfer": ("银行转账", "Bank transfer"),
    "cash_box": ("募捐箱", "Cash box"),
    "charity_sale": ("义卖", "Charity sale"),
    "redirected": ("暂挂资金转入", "Redirected from suspense"),
}
# The entry kinds that bring money into a project, as the journal names them.
GIFT_KINDS = ("DonationConfirmed", "OfflineDonationRecorded")
REDIRECTION_KIND = "SuspenseResolutionApproved"


@dataclass(frozen=True, order=True)
class Channel:
    """A channel, and the venue it is at where that tells channels apart (QR, cash box, sale)."""

    name: str
    venue_id: str | None = None

    @property
    def key(self) -> str:
        """A stable identifier: `web`, `qr:hall-1`, `cash_box:hall-1`..."""
        return f"{self.name}:{self.venue_id}" if self.venue_id else self.name

    @property
    def label_zh(self) -> str:
        return self._label(0)

    @property
    def label_en(self) -> str:
        return self._label(1)

    def _label(self, lang: int) -> str:
        label = LABELS.get(self.name, (self.name, self.name))[lang]
        return f"{label} · {self.venue_id}" if self.venue_id else label


def channel_of(
    entry_kind: str, channel: str | None = None, offline_kind: str | None = None, venue_id: str | None = None
) -> Channel:
    """The channel of an entry that brought money in, from its kind and body fields (a gift's
    `channel`, an offline record's `kind`, and `venue_id`). ValueError for any other kind."""
    if entry_kind == "DonationConfirmed":
        name = channel or "web"
        # A venue tells QR codes apart; a web gift names none.
        return Channel(name, venue_id if name in ("qr", "venue") else None)
    if entry_kind == "OfflineDonationRecorded":
        return Channel("charity_sale" if offline_kind == "charity_sale" else "cash_box", venue_id)
    if entry_kind == REDIRECTION_KIND:
        return Channel("redirected")
    raise ValueError(f"{entry_kind} brings no money into a project")


def channel_of_body(entry_kind: str, body: Mapping[str, Any]) -> Channel:
    """`channel_of` for a journal entry's body."""
    return channel_of(entry_kind, body.get("channel"), body.get("kind"), body.get("venue_id"))
