"""The API's memory of fundraising projects: only 'fundraising' is remembered, and only for ttl_s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.api.open_projects import OpenProjects
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.state import ProjectStatus, ProjectTotals
from services.ledger.read.queries import LedgerQueries
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed


class CountingQueries(LedgerQueries):
    reads = 0

    def project(self, project_id: str) -> ProjectTotals | None:
        self.reads += 1
        return super().project(project_id)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[BatchProcessor, CountingQueries]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore(make_engine(url))
    store.migrate()
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    feed(processor, [*f.opened_project("open"), f.registered("new")])
    return processor, CountingQueries(make_engine(url, writer=False))


def status(gate: OpenProjects, project_id: str) -> ProjectStatus | None:
    project = asyncio.run(gate.project(project_id))
    return None if project is None else project.status


def test_a_fundraising_project_is_read_once_per_ttl(ledger: tuple[BatchProcessor, CountingQueries]) -> None:
    _, queries = ledger
    clock = Clock()
    gate = OpenProjects(queries, ttl_s=1.0, clock=clock)
    assert status(gate, "open") == ProjectStatus.FUNDRAISING
    clock.now += 0.9
    assert status(gate, "open") == ProjectStatus.FUNDRAISING
    assert queries.reads == 1
    clock.now += 0.2
    assert status(gate, "open") == ProjectStatus.FUNDRAISING
    assert queries.reads == 2


def test_a_closing_is_seen_once_the_ttl_has_passed(ledger: tuple[BatchProcessor, CountingQueries]) -> None:
    processor, queries = ledger
    clock = Clock()
    gate = OpenProjects(queries, ttl_s=1.0, clock=clock)
    assert status(gate, "open") == ProjectStatus.FUNDRAISING
    feed(processor, [f.lifecycle(ev.FundraisingClosed, "open")], start=10)
    assert status(gate, "open") == ProjectStatus.FUNDRAISING  # remembered: the ledger decides meanwhile
    clock.now += 1.0
    assert status(gate, "open") == ProjectStatus.FUNDRAISING_CLOSED


def test_what_is_not_fundraising_is_asked_again_every_time(
    ledger: tuple[BatchProcessor, CountingQueries],
) -> None:
    processor, queries = ledger
    gate = OpenProjects(queries, ttl_s=60.0, clock=Clock())
    assert status(gate, "new") == ProjectStatus.REGISTERED
    assert status(gate, "later") is None
    feed(
        processor,
        [f.lifecycle(ev.ProjectApproved, "new"), f.lifecycle(ev.FundraisingOpened, "new")],
        start=10,
    )
    feed(processor, f.opened_project("later"), start=20)
    assert status(gate, "new") == ProjectStatus.FUNDRAISING  # opened: seen at once
    assert status(gate, "later") == ProjectStatus.FUNDRAISING  # registered and opened: seen at once
    assert queries.reads == 4
