"""A project's closed loop from its accounts' movements: where the money came from, where it
went, and whether the two sides meet to the fen. No I/O: the read side sums the postings.

Every posting is one leg of a transfer (journal.transfer), so each movement of a project's
account has a counterparty. `Movement` is the sum of one account's legs against one
counterparty; `closed_loop` sorts them into money in (by channel and venue), refunds,
holds, disbursements and leftover, and checks

    raised = disbursed + refunded + held + available + leftover

against the accounts' own balances (summed separately, not from the sorted movements), so a
movement the rules do not explain shows as a difference instead of vanishing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from services.ledger.domain import accounts as acc
from services.ledger.domain.channels import REDIRECTION_KIND, Channel, channel_of
from services.ledger.domain.lineage import Lineage

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Movement:
    """The legs of one project account against one counterparty: in (>0) or out (<0)."""

    account: str
    counterparty: str
    amount_fen: int
    count: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    raised_fen: int
    disbursed_fen: int
    refunded_fen: int
    held_fen: int
    available_fen: int
    leftover_fen: int
    fees_fen: int

    @property
    def accounted_fen(self) -> int:
        return self.disbursed_fen + self.refunded_fen + self.held_fen + self.available_fen + self.leftover_fen

    @property
    def difference_fen(self) -> int:
        """raised minus what it went to: 0 when the loop closes."""
        return self.raised_fen - self.accounted_fen

    @property
    def checked(self) -> bool:
        return self.difference_fen == 0

    @property
    def gross_fen(self) -> int:
        """Raised before the providers' fees: raised + fees."""
        return self.raised_fen + self.fees_fen


@dataclass(slots=True)
class ClosedLoop:
    """What came in, through what, and where it went; amounts in fen of the project's currency."""

    online_net_fen: int = 0  # online gifts after the providers' fees (their channels: the bodies)
    online_by_provider: dict[str, int] = field(default_factory=dict)
    # Cash boxes and charity sales per venue, money redirected from other projects' suspense.
    offline_by_channel: dict[Channel, int] = field(default_factory=dict)
    holds_placed_fen: int = 0
    holds_released_fen: int = 0
    disbursed_fen: int = 0
    refunded_fen: int = 0
    leftover_by_disposition: dict[str, int] = field(default_factory=dict)
    suspense_in_fen: int = 0
    suspense_refunded_fen: int = 0
    suspense_redirected_fen: int = 0
    unexplained: list[Movement] = field(default_factory=list)  # a movement no rule makes

    @property
    def raised_fen(self) -> int:
        return self.online_net_fen + sum(self.offline_by_channel.values())

    @property
    def leftover_fen(self) -> int:
        return sum(self.leftover_by_disposition.values())


def closed_loop(project_id: str, movements: Iterable[Movement]) -> ClosedLoop:
    """Sorts the movements of the project's fund, held and suspense accounts by counterparty."""
    fund, held, suspense = (
        acc.project_fund(project_id),
        acc.project_held(project_id),
        acc.suspense(project_id),
    )
    loop = ClosedLoop()
    for m in movements:
        kind, _, rest = m.counterparty.partition(":")
        if m.account == fund and m.amount_fen > 0:
            if kind == "clearing":
                loop.online_net_fen += m.amount_fen
                _add(loop.online_by_provider, rest, m.amount_fen)
            elif kind == "cash" and rest.endswith((":box", ":sales")):
                venue, _, till = rest.rpartition(":")
                offline = "charity_sale" if till == "sales" else "cash_box"
                channel = channel_of("OfflineDonationRecorded", offline_kind=offline, venue_id=venue)
                _add(loop.offline_by_channel, channel, m.amount_fen)
            elif kind == "suspense" and m.counterparty != suspense:
                _add(loop.offline_by_channel, channel_of(REDIRECTION_KIND), m.amount_fen)
            elif m.counterparty == held:
                loop.holds_released_fen += m.amount_fen
            else:
                loop.unexplained.append(m)
        elif m.account == fund:
            if m.counterparty == held:
                loop.holds_placed_fen -= m.amount_fen
            elif m.counterparty == acc.REFUNDS:
                loop.refunded_fen -= m.amount_fen
            elif m.counterparty.startswith(f"leftover:{project_id}:"):
                disposition = m.counterparty.removeprefix(f"leftover:{project_id}:")
                _add(loop.leftover_by_disposition, disposition, -m.amount_fen)
            else:
                loop.unexplained.append(m)
        elif m.account == held:
            if m.counterparty == acc.PAYOUT and m.amount_fen < 0:
                loop.disbursed_fen -= m.amount_fen
            elif m.counterparty != fund:  # fund <-> held is counted on the fund's side
                loop.unexplained.append(m)
        elif m.account == suspense:
            if m.amount_fen > 0:
                loop.suspense_in_fen += m.amount_fen
            elif m.counterparty == acc.REFUNDS:
                loop.suspense_refunded_fen -= m.amount_fen
            elif m.counterparty.startswith("project:"):
                loop.suspense_redirected_fen -= m.amount_fen
            else:
                loop.unexplained.append(m)
        else:
            loop.unexplained.append(m)
    return loop


def reconcile(
    loop: ClosedLoop, balances: Mapping[str, int], project_id: str, fees_fen: int
) -> Reconciliation:
    """The line, with held and available from the accounts' balances (every leg summed)."""
    return Reconciliation(
        raised_fen=loop.raised_fen,
        disbursed_fen=loop.disbursed_fen,
        refunded_fen=loop.refunded_fen,
        held_fen=balances.get(acc.project_held(project_id), 0),
        available_fen=balances.get(acc.project_fund(project_id), 0),
        leftover_fen=loop.leftover_fen,
        fees_fen=fees_fen,
    )


@dataclass(frozen=True, slots=True)
class FundedBy:
    """One disbursement's share of the gifts, first in, first out."""

    disbursement_id: str
    gifts: int  # how many gifts (or offline records) paid for it
    amount_fen: int
    largest_fen: int  # the largest part one gift paid


@dataclass(frozen=True, slots=True)
class LineageSummary:
    funded: tuple[FundedBy, ...]
    unspent_gifts: int
    unspent_fen: int


def summarise_lineage(lineage: Lineage) -> LineageSummary:
    """Per disbursement, how many gifts paid for it and how much; not the gifts themselves."""
    funded = []
    for disbursement_id, slices in lineage.funded_by.items():
        per_gift: dict[str, int] = defaultdict(int)
        for s in slices:
            per_gift[s.source] += s.amount_fen
        funded.append(
            FundedBy(
                disbursement_id=disbursement_id,
                gifts=len(per_gift),
                amount_fen=sum(per_gift.values()),
                largest_fen=max(per_gift.values(), default=0),
            )
        )
    unspent = [s for s in lineage.unspent if s.amount_fen]
    return LineageSummary(
        funded=tuple(funded),
        unspent_gifts=len({s.source for s in unspent}),
        unspent_fen=sum(s.amount_fen for s in unspent),
    )


def _add(into: dict[K, int], key: K, amount: int) -> None:
    into[key] = into.get(key, 0) + amount
