"""`charity-ledger verify` and `rebuild` as commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ledger.adapters.signing import key_id, load_or_create_signing_key
from services.ledger.adapters.store import LedgerStore
from services.ledger.ops.commands import list_keys_command, progress_bar, rotate_command, verify_command
from services.platform.db import make_engine


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


def test_verify_uses_the_keys_registered_in_the_database(
    empty_ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "present.pem"
    monkeypatch.setenv("CHARITY_SIGNING_KEY", str(key))
    assert rotate_command(database_url=empty_ledger) == 0  # the first key, registered
    assert capsys.readouterr().out.startswith("created the first signing key ")
    assert verify_command(database_url=empty_ledger, quiet=True) == 0
    assert capsys.readouterr().out.startswith("OK: 0 entries")


def test_keys_rotate_then_list_shows_both_oldest_first(
    empty_ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "k.pem"
    monkeypatch.setenv("CHARITY_SIGNING_KEY", str(key))
    rotate_command(database_url=empty_ledger)
    first = key_id(load_or_create_signing_key(key, create=False))
    rotate_command(database_url=empty_ledger)
    second = key_id(load_or_create_signing_key(key, create=False))
    assert first != second
    assert f"heads signed before keep {first}" in capsys.readouterr().out
    assert list_keys_command(database_url=empty_ledger) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [first, second]
    assert (key.parent / f"k.pem.{first[:16]}.retired").exists()  # the old private key, kept aside


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
