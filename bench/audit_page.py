"""`python -m bench.audit_page`: the closed-loop page of a project with 100,000 gifts (p50, p99).

1. builds a SQLite ledger (or `--database-url`) with one project: N confirmed gifts (default
   100,000, the ingest benchmark's gift workload), a cash box count every 1,000 gifts, a refund
   every 5,000, and a disbursement requested, approved, paid and evidenced every 10,000, with the
   real rules and store (as `bench.journal.build_journal` does), or reuses the SQLite file an
   earlier run left in var/bench/audit-<N>.db;
2. renders /staff/audit/projects/<id> through the app (a TestClient, an auditor logged in): the
   first requests while the journal's verification catches up, reported apart, then `--renders`
   renders each, timed whole (the request, every query, the template): now and as of the
   instant half-way through the gifts with nothing remembered (cold: every figure summed),
   and now again at the same journal seq (warm: the figures at that seq remembered, as for
   another page of the timeline or a reload).

Prints the report to stderr; the last line (stdout) is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from bench import workload
from bench.journal import commit_events
from bench.measure import summary_line
from services.api.app import create_app
from services.contracts import events as ev
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.view import LedgerView
from services.ledger.read import LedgerQueries, ProjectAudit
from services.platform.db import make_engine
from services.platform.settings import VAR_DIR, Settings
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password

PROJECT = "audit-bench"
PASSWORD = "a long bench passphrase, not a secret"
Figures = dict[str, float | int | str | bool | None]


def life(gifts: int, now: datetime) -> Iterator[ev.Event]:
    """The project's events: opened, then gifts with takings, refunds and disbursements among them."""
    yield from workload.opened_projects([PROJECT], now)
    common: dict[str, Any] = {"occurred_at": now, "project_id": PROJECT}
    for i, gift in enumerate(workload.confirmed_gifts(gifts, [PROJECT], now), start=1):
        yield gift
        if i % 1_000 == 0:
            yield ev.OfflineDonationRecorded(
                event_id=str(uuid.uuid4()), actor="till", **common, record_id=f"o-{i}",
                kind="cash_box", venue_id="botanic-garden", amount_fen=12_345, currency="CNY",
            )  # fmt: skip
        if i % 5_000 == 0:
            yield ev.DonationRefunded(
                event_id=str(uuid.uuid4()), actor="finance", **common, donation_id=gift.donation_id,
                refund_id=f"r-{i}", amount_fen=gift.gross_fen // 2, currency="CNY", reason="bench",
            )  # fmt: skip
        if i % 10_000 == 0:
            yield from _disbursement(f"d-{i}", common)


def _disbursement(disbursement_id: str, common: dict[str, Any]) -> Iterator[ev.Event]:
    def step(event_type: type[ev.Event], actor: str, **fields: Any) -> ev.Event:
        fields.update(event_id=str(uuid.uuid4()), actor=actor, disbursement_id=disbursement_id)
        return event_type(**common, **fields)

    yield step(
        ev.DisbursementRequested, "manager", amount_fen=5_000_000, currency="CNY",
        payee=f"助餐点 {disbursement_id}", purpose="餐费 meals",
    )  # fmt: skip
    yield step(ev.DisbursementApproved, "finance-a")
    yield step(ev.DisbursementApproved, "finance-b")
    yield step(ev.DisbursementPaid, "finance-a", payout_ref=f"BANK-{disbursement_id}")
    yield step(ev.EvidenceAttached, "manager", document_sha256="ab" * 32, description="发票 invoice")


def build(url: str, gifts: int) -> datetime:
    """The ledger of the project; returns the instant half-way through its gifts."""
    store = LedgerStore(make_engine(url))
    store.migrate()
    view = LedgerView()
    events = life(gifts, ev.utc_now_ms())
    commit_events(store, view, itertools.islice(events, gifts // 2), forget_donations=False)
    halfway = ev.utc_now_ms()
    commit_events(store, view, events, forget_donations=False)
    store.engine.dispose()
    return halfway


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(browser: TestClient, path: str) -> float:
    started = time.perf_counter()
    answer = browser.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or "✓" not in answer.text:
        raise SystemExit(f"{path}: {answer.status_code}: the page did not reconcile\n{answer.text[:2000]}")
    return elapsed


class _NothingPublished:
    """The page publishes nothing."""

    async def publish(self, event: ev.Event) -> None:
        raise AssertionError("the closed-loop page published an event")

    def close(self) -> None:
        pass


def run(url: str, gifts: int, renders: int, workdir: Path, halfway: datetime) -> Figures:
    staff = StaffStore(make_engine(url))
    auditor = f"auditor-{uuid.uuid4().hex[:8]}"  # a reused ledger keeps earlier runs' accounts
    staff.add_account(auditor, Role.AUDITOR, hash_password(PASSWORD), 1)
    settings = Settings(
        database_url=url, web_secret_path=str(workdir / "web.key"), documents_dir=str(workdir / "documents")
    )
    queries = LedgerQueries(make_engine(url, writer=False))
    app = create_app(settings, queries, _NothingPublished(), {}, staff_store=staff)
    page = f"/staff/audit/projects/{PROJECT}"
    with TestClient(app) as browser:
        form = browser.get("/staff/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        login = {"username": auditor, "password": PASSWORD, "csrf": csrf}
        assert browser.post("/staff/login", data=login, follow_redirects=False).status_code == 303
        # The first renders also verify the journal, 50,000 entries a request (read/verification.py).
        warmup = [timed(browser, page) for _ in range(3)]

        def cold(path: str) -> float:
            app.state.project_audit = ProjectAudit(queries.engine)  # nothing remembered
            return timed(browser, path)

        as_of = f"{page}?as_of={quote(halfway.isoformat())}"
        runs = {
            "now_cold": [cold(page) for _ in range(renders)],
            "as_of_cold": [cold(as_of) for _ in range(renders)],
            # The same cut again (another page of the timeline, a reload): remembered figures.
            "now_warm": [timed(browser, page) for _ in range(renders)],
        }
    print(
        f"first renders (verifying the journal meanwhile): {', '.join(f'{m:.0f}' for m in warmup)} ms",
        file=sys.stderr,
    )
    figures: Figures = {"audit_page_gifts": gifts, "audit_page_first_ms": round(warmup[0], 1)}
    for name, values in runs.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"{name}: {renders} renders, p50 {p50:.0f} ms, p99 {p99:.0f} ms", file=sys.stderr)
        figures[f"audit_page_{name}_p50_ms"] = round(p50, 1)
        figures[f"audit_page_{name}_p99_ms"] = round(p99, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gifts", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--database-url", help="an empty database (default: SQLite under var/bench)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database_url:
            url = args.database_url
            halfway = build(url, args.gifts)
        else:
            url, halfway = _cached_sqlite(args.gifts)
        print(f"a project of {args.gifts} gifts in {url}", file=sys.stderr)
        figures = run(url, args.gifts, args.renders, workdir, halfway)
    print(summary_line(figures), flush=True)
    return 0


def _cached_sqlite(gifts: int) -> tuple[str, datetime]:
    """The SQLite ledger of `gifts`, built unless an earlier run left it (with its half-way instant)."""
    path = VAR_DIR / "bench" / f"audit-{gifts}.db"
    stamp = path.with_suffix(".halfway")
    if not (path.exists() and stamp.exists()):
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        halfway = build(f"sqlite:///{path}", gifts)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        stamp.write_text(json.dumps(halfway.isoformat()))
    return f"sqlite:///{path}", datetime.fromisoformat(json.loads(stamp.read_text()))


if __name__ == "__main__":
    sys.exit(main())
