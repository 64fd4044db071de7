"""The export benchmark's measurement, on a small journal built as the benchmark builds its million."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bench import journal as journal_bench
from bench import workload
from bench.export import export_once
from services.ledger.adapters import tables as t


def test_an_export_is_measured_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    store, _ = journal_bench.build_journal(f"sqlite:///{path}", 400)
    with store.engine.connect() as conn:
        postings = conn.scalar(select(func.count()).select_from(t.postings))
        bare = conn.scalar(
            select(func.count()).select_from(t.journal).where(t.journal.c.kind != "DonationConfirmed")
        )
    store.engine.dispose()
    whole = export_once(path, None, "csv")
    assert whole["rows"] == int(postings or 0) + int(bare or 0)
    assert whole["bytes"] > 0 and whole["rows_per_s"] > 0
    assert whole["peak_rss_mib"] >= whole["rss_before_mib"] > 0
    one = export_once(path, workload.project_ids(journal_bench.PROJECTS)[0], "xlsx")
    assert 0 < one["rows"] < whole["rows"]
