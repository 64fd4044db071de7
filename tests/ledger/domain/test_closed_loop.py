"""The closed loop from a project's account movements (services/ledger/domain/audit.py): no I/O."""

from __future__ import annotations

from services.ledger.domain.audit import Movement, closed_loop, reconcile, summarise_lineage
from services.ledger.domain.channels import Channel
from services.ledger.domain.lineage import Lineage, Slice

FUND, HELD, SUSPENSE = "project:p:fund", "project:p:held", "suspense:p"


def movements() -> list[Movement]:
    """A project's life, as its accounts' legs summed per counterparty."""
    return [
        Movement(FUND, "clearing:wechatpay", 99_400, 3),  # gifts after fees
        Movement(FUND, "cash:hall-1:box", 3_000, 1),
        Movement(FUND, "cash:hall-1:sales", 1_200, 1),
        Movement(FUND, "suspense:q", 500, 1),  # redirected from another project's suspense
        Movement(FUND, HELD, -60_000, 2),  # holds placed
        Movement(HELD, FUND, 60_000, 2),
        Movement(FUND, HELD, 10_000, 1),  # one released
        Movement(HELD, FUND, -10_000, 1),
        Movement(HELD, "payout", -50_000, 1),
        Movement(FUND, "refunds", -2_000, 1),
        Movement(FUND, "leftover:p:return_to_donors", -5_000, 1),
        Movement(SUSPENSE, "clearing:wechatpay", 800, 1),
        Movement(SUSPENSE, "refunds", -300, 1),
        Movement(SUSPENSE, "project:r:fund", -200, 1),
    ]


def balances() -> dict[str, int]:
    fund = 99_400 + 3_000 + 1_200 + 500 - 60_000 + 10_000 - 2_000 - 5_000
    return {FUND: fund, HELD: 60_000 - 10_000 - 50_000, SUSPENSE: 300}


def test_each_movement_is_sorted_by_its_counterparty() -> None:
    loop = closed_loop("p", movements())
    assert loop.online_net_fen == 99_400 and loop.online_by_provider == {"wechatpay": 99_400}
    assert loop.offline_by_channel == {
        Channel("cash_box", "hall-1"): 3_000,
        Channel("charity_sale", "hall-1"): 1_200,
        Channel("redirected"): 500,
    }
    assert (loop.holds_placed_fen, loop.holds_released_fen, loop.disbursed_fen) == (60_000, 10_000, 50_000)
    assert (loop.refunded_fen, loop.leftover_by_disposition) == (2_000, {"return_to_donors": 5_000})
    assert (loop.suspense_in_fen, loop.suspense_refunded_fen, loop.suspense_redirected_fen) == (800, 300, 200)
    assert loop.raised_fen == 99_400 + 3_000 + 1_200 + 500
    assert loop.unexplained == []


def test_raised_equals_where_it_went_to_the_fen() -> None:
    line = reconcile(closed_loop("p", movements()), balances(), "p", fees_fen=600)
    assert line.checked and line.difference_fen == 0
    assert line.accounted_fen == line.raised_fen == 104_100
    assert line.available_fen == 47_100 and line.held_fen == 0
    assert line.gross_fen == 104_700


def test_a_movement_no_rule_makes_is_a_difference_not_a_silence() -> None:
    odd = [*movements(), Movement(FUND, "somewhere:else", -700, 1)]
    loop = closed_loop("p", odd)
    assert loop.unexplained == [Movement(FUND, "somewhere:else", -700, 1)]
    line = reconcile(loop, {**balances(), FUND: balances()[FUND] - 700}, "p", fees_fen=0)
    assert not line.checked and line.difference_fen == 700


def test_a_balance_that_disagrees_with_the_movements_shows_its_difference() -> None:
    line = reconcile(closed_loop("p", movements()), {**balances(), HELD: 1}, "p", fees_fen=0)
    assert line.difference_fen == -1


def test_lineage_is_summarised_per_disbursement_not_listed() -> None:
    lineage = Lineage(
        funded_by={
            "d-1": [Slice("g-1", 700), Slice("g-2", 300), Slice("g-1", 100)],
            "d-2": [Slice("g-2", 50)],
        },
        unspent=[Slice("g-3", 20), Slice("g-3", 5), Slice("g-4", 0)],
    )
    summary = summarise_lineage(lineage)
    assert [(f.disbursement_id, f.gifts, f.amount_fen, f.largest_fen) for f in summary.funded] == [
        ("d-1", 2, 1_100, 800),
        ("d-2", 1, 50, 50),
    ]
    assert (summary.unspent_gifts, summary.unspent_fen) == (1, 25)
