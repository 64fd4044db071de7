"""`charity-ledger staff token add | list | revoke`: a token printed once, only its hash kept."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore, token_hash
from services.staff.domain.roles import Permission

runner = CliRunner()


def token_cli(db: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["staff", "token", *args, "--database-url", db])
    return result.exit_code, result.output


def test_a_token_is_printed_once_stored_as_its_hash_listed_and_revoked(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    status, out = token_cli(
        db, "add", "reports", "--permission", "project.register", "--permission", "project.fundraising"
    )
    assert status == 0, out
    assert "made machine:reports (project.fundraising project.register)" in out
    token = re.search(r"^(clm_[A-Za-z0-9_-]{40,})$", out, re.MULTILINE)
    assert token is not None, out
    store = StaffStore(make_engine(db))
    [stored] = store.machine_tokens()
    assert stored.token_hash == token_hash(token.group(1)) != token.group(1)
    assert stored.permissions == {Permission.REGISTER_PROJECT, Permission.RUN_FUNDRAISING}
    found = store.machine_token(token.group(1))
    assert found is not None and found.name == "reports"

    assert token_cli(db, "list")[1].split() == [
        "reports",
        "active",
        "project.fundraising",
        "project.register",
    ]
    assert token.group(1) not in token_cli(db, "list")[1]

    assert token_cli(db, "revoke", "reports") == (0, "revoked machine:reports\n")
    assert store.machine_token(token.group(1)) is None
    assert token_cli(db, "list")[1].split() == [
        "reports",
        "revoked",
        "project.fundraising",
        "project.register",
    ]
    assert token_cli(db, "revoke", "nobody") == (1, "no token 'nobody'\n")


def test_names_permissions_and_reuse_are_checked(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    status, out = token_cli(db, "add", "feeds", "--permission", "project.everything")
    assert status == 2 and "unknown permission 'project.everything'" in out
    status, out = token_cli(db, "add", "automation", "--permission", "project.register")
    assert status == 2 and "CHARITY_STAFF_TOKEN" in out
    status, out = token_cli(db, "add", "Bad Name", "--permission", "project.register")
    assert status == 2 and "2-32 of a-z" in out
    assert token_cli(db, "add", "feeds", "--permission", "venue.manage")[0] == 0
    token_cli(db, "revoke", "feeds")
    status, out = token_cli(db, "add", "feeds", "--permission", "venue.manage")
    assert status == 1 and "never reused" in out
