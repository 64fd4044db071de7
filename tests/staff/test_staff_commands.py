"""`charity-ledger staff add | list | disable`, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.hashing import verify_password

ENTRY_POINT = Path(sys.executable).with_name("charity-ledger")
GOOD = "a long and varied passphrase"


def staff(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARITY_")}
    return subprocess.run(
        [str(ENTRY_POINT), "staff", *args, "--database-url", db],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_first_administrator_from_stdin_then_list_and_disable(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    made = staff(db, "add", "--role", "admin", "--password-stdin", "ada", stdin=GOOD + "\n")
    assert made.returncode == 0, made.stderr + made.stdout
    assert "made ada (administrator)" in made.stdout
    account = StaffStore(make_engine(db)).account("ada")
    assert account is not None and verify_password(account.password_hash, GOOD)
    manager = staff(
        db, "add", "--role", "manager", "--project", "meals", "--password-stdin", "min", stdin=GOOD + "\n"
    )
    assert manager.returncode == 0, manager.stdout
    listed = staff(db, "list")
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["ada", "administrator", "active"],
        ["min", "project_manager", "active", "project:meals"],
    ]
    assert staff(db, "disable", "min").returncode == 0
    assert ["min", "project_manager", "disabled", "project:meals"] in [
        line.split() for line in staff(db, "list").stdout.splitlines()
    ]
    assert staff(db, "disable", "nobody").returncode == 1


def test_weak_passwords_bad_names_and_taken_names_are_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    weak = staff(db, "add", "--role", "admin", "--password-stdin", "ada", stdin="admin\n")
    assert weak.returncode == 2 and "at least 12" in weak.stdout
    assert staff(db, "add", "--role", "root", "--password-stdin", "ada", stdin=GOOD).returncode == 2
    assert staff(db, "add", "--role", "admin", "--password-stdin", "Ada!", stdin=GOOD).returncode == 2
    assert staff(db, "add", "--role", "admin", "--password-stdin", "ada", stdin=GOOD).returncode == 0
    taken = staff(db, "add", "--role", "auditor", "--password-stdin", "ada", stdin=GOOD)
    assert taken.returncode == 1 and "already an account" in taken.stdout
    assert [line.split() for line in staff(db, "list").stdout.splitlines()] == [
        ["ada", "administrator", "active"]
    ]


def test_there_is_no_default_password_the_prompt_asks_twice(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = CliRunner()
    args = ["staff", "add", "--role", "admin", "ada", "--database-url", db]
    mismatch = runner.invoke(app, args, input=f"{GOOD}\n{GOOD}x\n{GOOD}\n{GOOD}\n")
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output
    account = StaffStore(make_engine(db)).account("ada")
    assert account is not None and verify_password(account.password_hash, GOOD)
    # Nothing typed: nothing made.
    empty = runner.invoke(app, [*args[:-3], "bob", "--database-url", db], input="\n\n")
    assert empty.exit_code != 0 and StaffStore(make_engine(db)).account("bob") is None
