"""`charity-ledger verify` and `rebuild` as commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ledger.adapters.db import make_engine
from services.ledger.adapters.signing import load_or_create_signing_key
from services.ledger.adapters.store import LedgerStore
from services.ledger.ops.commands import progress_bar, verify_command


@pytest.fixture
def empty_ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    LedgerStore(make_engine(url)).migrate()
    return url


def test_verify_without_any_key_refuses_instead_of_making_one(
    empty_ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "absent.pem"
    monkeypatch.setenv("CHARITY_SIGNING_KEY", str(key))
    assert verify_command(database_url=empty_ledger, quiet=True) == 2
    assert "--public-key" in capsys.readouterr().err
    assert not key.exists()


def test_verify_uses_the_local_key_when_there_is_one(
    empty_ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "present.pem"
    load_or_create_signing_key(key)
    monkeypatch.setenv("CHARITY_SIGNING_KEY", str(key))
    assert verify_command(database_url=empty_ledger, quiet=True) == 0
    assert capsys.readouterr().out.startswith("OK: 0 entries")


def test_the_progress_bar_draws_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("rebuild") as progress:
        assert progress is not None
        progress(5, 10)
        progress(10, 10)
    captured = capsys.readouterr()
    assert "rebuild" in captured.err and "10/10" in captured.err
    assert captured.out == ""
    with progress_bar("rebuild", quiet=True) as progress:
        assert progress is None
