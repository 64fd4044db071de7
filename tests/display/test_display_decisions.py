"""The file of staff decisions the gateways of a host share: appended once, read by all."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.display.decisions import APPROVED, REJECTED, DecisionLog


def test_every_reader_gets_every_decision_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "d" / "decisions.jsonl"
    writer, other = DecisionLog(path), DecisionLog(path)
    assert other.read_new() == []  # no file yet
    writer.append("gift-1", APPROVED)
    writer.append("gift-2", REJECTED)
    assert other.read_new() == [("gift-1", APPROVED), ("gift-2", REJECTED)]
    assert other.read_new() == []
    writer.append("gift-3", APPROVED)
    assert other.read_new() == [("gift-3", APPROVED)]
    assert DecisionLog(path).read_new() == [("gift-1", APPROVED), ("gift-2", REJECTED), ("gift-3", APPROVED)]


def test_a_line_still_being_written_waits_and_a_broken_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_text(
        'not json\n{"id": "gift-1", "decision": "maybe"}\n{"id": "gift-2", "deci', encoding="utf-8"
    )
    log = DecisionLog(path)
    assert log.read_new() == []
    with path.open("a", encoding="utf-8") as handle:
        handle.write('sion": "approved"}\n')
    assert log.read_new() == [("gift-2", APPROVED)]


def test_only_approvals_and_rejections_are_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown decision"):
        DecisionLog(tmp_path / "decisions.jsonl").append("gift-1", "maybe")
