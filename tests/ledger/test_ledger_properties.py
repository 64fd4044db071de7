"""Property-based: random histories through the real processor and store (SQLite).

A Hypothesis state machine sends registrations, lifecycle steps, gifts,
redeliveries, refunds, disbursements and consumer restarts; after every step
the ledger's invariants must hold. CI runs >= 2,000 steps; `make test-long`
(CHARITY_LONG_TESTS=1) runs ten times as many.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.adapters.store import LedgerStore
from services.ledger.ops.rebuild import compare_with_live, replay
from services.ledger.service.ports import RawRecord
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput

LONG = bool(os.environ.get("CHARITY_LONG_TESTS"))
codec = EventCodec()
PROJECTS = st.sampled_from(["p1", "p2", "p3"])
PEOPLE = st.sampled_from(["alice", "bob", "carol"])
AMOUNTS = st.integers(min_value=1, max_value=50_000)
TRANSITIONS = st.sampled_from(
    [
        ev.ProjectApproved,
        ev.FundraisingOpened,
        ev.FundraisingClosed,
        ev.ProjectSuspended,
        ev.ProjectResumed,
        ev.ProjectClosed,
    ]
)


class LedgerMachine(RuleBasedStateMachine):
    steps = 0  # counted across all examples of one run
    donations = Bundle("donations")
    disbursements = Bundle("disbursements")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = LedgerStore(make_engine(f"sqlite:///{Path(self.dir.name) / 'ledger.db'}"))
        self.store.migrate()
        self.processor = self._processor()
        self.sent: list[ev.Event] = []
        self.offset = 0

    def _processor(self) -> BatchProcessor:
        return BatchProcessor(self.store, RecordingOutput(), Topics(""), "g")

    def send(self, *events: ev.Event) -> None:
        records = []
        for e in events:
            records.append(
                RawRecord(f"charity.{e.topic_base.split('.')[1]}", 0, self.offset, None, codec.encode(e))
            )
            self.offset += 1
            self.sent.append(e)
        self.processor.process(records)

    def teardown(self) -> None:
        self.store.engine.dispose()
        self.dir.cleanup()

    # --- rules -------------------------------------------------------------------

    @rule(project=PROJECTS, emergency=st.booleans())
    def register(self, project: str, emergency: bool) -> None:
        self.send(f.registered(project, emergency=emergency))

    @rule(project=PROJECTS, step=TRANSITIONS, disposition=st.sampled_from(["none", "return_to_donors"]))
    def lifecycle(self, project: str, step: type[ev.Event], disposition: str) -> None:
        extra = {"leftover_disposition": disposition} if step is ev.ProjectClosed else {}
        self.send(f.lifecycle(step, project, **extra))

    @rule(target=donations, project=PROJECTS, gross=AMOUNTS, fee_permille=st.integers(0, 20))
    def donate(self, project: str, gross: int, fee_permille: int) -> tuple[str, str]:
        gift = f.confirmed(project, gross, gross * fee_permille // 1000)
        self.send(gift)
        return gift.donation_id, project

    @rule(project=PROJECTS, amount=AMOUNTS, kind=st.sampled_from(["cash_box", "charity_sale"]))
    def offline_gift(self, project: str, amount: int, kind: str) -> None:
        self.send(f.offline(project, amount, kind))

    @rule(donation=donations, amount=AMOUNTS)
    def refund(self, donation: tuple[str, str], amount: int) -> None:
        self.send(f.refunded(donation[1], donation[0], amount))

    @rule(target=disbursements, project=PROJECTS, amount=AMOUNTS, who=PEOPLE)
    def request(self, project: str, amount: int, who: str) -> tuple[str, str]:
        d = f.disbursement(ev.DisbursementRequested, project, f"x{self.offset}", who, amount_fen=amount)
        self.send(d)
        return d.disbursement_id, project  # type: ignore[attr-defined]

    @rule(
        d=disbursements,
        who=PEOPLE,
        step=st.sampled_from(
            [ev.DisbursementApproved, ev.DisbursementApproved, ev.DisbursementPaid, ev.DisbursementRejected]
        ),
    )
    def act_on_disbursement(self, d: tuple[str, str], who: str, step: type[ev.Event]) -> None:
        self.send(f.disbursement(step, d[1], d[0], who))

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """At-least-once delivery: something already applied arrives again."""
        if self.sent:
            again = data.draw(st.sampled_from(self.sent))
            self.send(again)
            self.sent.pop()  # it is a redelivery, not a new event

    @rule(project=PROJECTS, n=st.integers(2, 6))
    def batch_with_a_duplicate_inside(self, project: str, n: int) -> None:
        gifts = [f.confirmed(project, 100 + i, 0) for i in range(n)]
        self.send(*gifts, gifts[0])
        self.sent.pop()

    @rule()
    def restart_consumer(self) -> None:
        """A crash between batches: all in-memory state is rebuilt from the store."""
        self.processor = self._processor()

    # --- invariants --------------------------------------------------------------

    def _sql(self, query: str) -> list[tuple[object, ...]]:
        with self.store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]

    @invariant()
    def every_transaction_balances(self) -> None:
        LedgerMachine.steps += 1
        assert (
            self._sql("SELECT seq, currency FROM postings GROUP BY seq, currency HAVING sum(amount) <> 0")
            == []
        )

    @invariant()
    def project_accounts_never_go_negative(self) -> None:
        negative = self._sql(
            "SELECT account FROM postings WHERE account LIKE 'project:%' OR account LIKE 'suspense:%' "
            "GROUP BY account HAVING sum(amount) < 0"
        )
        assert negative == []

    @invariant()
    def funds_equal_money_in_minus_money_out(self) -> None:
        projects = self.store.load_projects().values()
        for p in projects:
            assert p.fund_fen + p.held_fen == (
                p.net_fen
                + p.offline_cash_fen
                + p.offline_sales_fen
                - p.refunded_fen
                - p.disbursed_fen
                - p.leftover_fen
            ), p.project_id
            assert p.fund_fen >= 0 and p.held_fen >= 0
        in_funds = self._sql("SELECT coalesce(sum(amount), 0) FROM postings WHERE account LIKE 'project:%'")[
            0
        ][0]
        assert in_funds == sum(p.fund_fen + p.held_fen for p in projects)

    @invariant()
    def each_event_is_applied_exactly_once(self) -> None:
        ((entries, distinct),) = self._sql("SELECT count(*), count(DISTINCT entry_id) FROM journal")
        assert entries == distinct == len({e.event_id for e in self.sent})

    @invariant()
    def projections_equal_a_rebuild(self) -> None:
        comparison = compare_with_live(self.store.engine, replay(self.store.engine))
        assert comparison.equal, comparison.differences


MIN_STEPS = 20_000 if LONG else 2_000


def test_random_histories_keep_every_invariant() -> None:
    LedgerMachine.steps = 0
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=400 if LONG else 40,
            stateful_step_count=100,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # Hypothesis chooses how long each history is; make sure enough steps really ran.
    assert LedgerMachine.steps >= MIN_STEPS, f"only {LedgerMachine.steps} steps ran"
