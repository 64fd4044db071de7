"""Throw-away PostgreSQL databases, for the tests and the benchmark."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from services.platform.settings import REPO_ROOT

DROP_ATTEMPTS = 10


def local_postgres_url() -> str:
    """Start Debian's cluster if needed (deploy/postgres/ensure-test-db.sh) and return its URL."""
    script = REPO_ROOT / "deploy" / "postgres" / "ensure-test-db.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"PostgreSQL is not available: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def scratch_database(base_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of base_url, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
        finally:
            _drop(admin, name)
    finally:
        admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    for attempt in range(DROP_ATTEMPTS):
        for statement in (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            # FORCE may not end an autovacuum worker (a superuser process) that
            # many writes started; a plain DROP cancels autovacuum itself.
            f'DROP DATABASE IF EXISTS "{name}"',
        ):
            try:
                with admin.connect() as conn:
                    conn.execute(text(statement))
                return
            except DBAPIError:
                if attempt == DROP_ATTEMPTS - 1 and "FORCE" not in statement:
                    raise
        time.sleep(0.5)
