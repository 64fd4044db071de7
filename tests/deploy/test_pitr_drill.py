"""deploy/postgres/pitr-drill.sh: a base backup and archived WAL bring a PostgreSQL cluster
back to a noted time, holding exactly the rows written before it (about 30 s here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "pitr-drill.sh"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_base_backup_and_the_archived_wal_restore_to_the_noted_time() -> None:
    if shutil.which("pg_lsclusters") is None:
        pytest.fail("PostgreSQL is needed for this test (apt-get install -y postgresql)")
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=170, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any("base backup taken (pg_basebackup" in line for line in lines)
    assert any("starting point-in-time recovery to" in line for line in lines)
    assert "PASS: the restored cluster holds 200 gifts, 2010000 fen" in lines[-1]
    assert "the primary ended with 250 gifts" in lines[-1]
    work = Path(lines[0].split("initdb ")[1].split()[0]).parent
    assert work.name.startswith("pitr-drill.") and not work.exists()  # nothing left behind
