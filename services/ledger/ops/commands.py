"""`charity-ledger verify` and `charity-ledger rebuild`: operator commands on the ledger DB.

services/cli.py declares their options; these functions do the work and return the exit status.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from services.ledger.adapters.db import make_engine
from services.ledger.adapters.signing import load_or_create_signing_key, load_public_key_pem
from services.ledger.ops.rebuild import compare_with_live, replace_live, replay
from services.ledger.ops.verify import verify
from services.platform.settings import Settings


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s")


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None] | None]:
    """A `progress(done, total)` callback drawing a bar on stderr, or None when quiet."""
    if quiet:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def verify_command(
    database_url: str | None = None, public_key: Path | None = None, quiet: bool = False
) -> int:
    settings = Settings()
    engine = make_engine(database_url or settings.database_url, writer=False)
    key: Ed25519PublicKey
    key_path = Path(settings.signing_key_path)
    if public_key:
        key = load_public_key_pem(public_key.read_text())
    elif key_path.exists():
        key = load_or_create_signing_key(key_path).public_key()
    else:
        # A fresh key would make every published signature look forged.
        print(
            f"no tree-head signing key at {key_path}; pass --public-key with the published key "
            "(GET /api/transparency/public-key)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    with progress_bar("verify", quiet) as progress:
        report = verify(engine, key, progress)
    seconds = time.monotonic() - started
    if not report.ok:
        print(f"FAILED: {report.problems[0]}")
        for extra in report.problems[1:]:
            print(f"        {extra}")
        return 1
    print(
        f"OK: {report.entries} entries chained and balanced, {report.tree_heads} signed tree heads match, "
        f"projections equal a rebuild ({seconds:.1f}s)"
    )
    return 0


def rebuild_command(database_url: str | None = None, check: bool = False, quiet: bool = False) -> int:
    engine = make_engine(database_url or Settings().database_url)
    started = time.monotonic()
    with progress_bar("rebuild", quiet) as progress:
        rebuilt = replay(engine, progress)
    comparison = compare_with_live(engine, rebuilt)
    seconds = time.monotonic() - started
    if comparison.equal:
        print(f"rebuilt {len(rebuilt.projects)} projects in {seconds:.1f}s: equal to the live projections")
    else:
        print(f"rebuilt projections differ from the live ones in {len(comparison.differences)} places:")
        for line in comparison.differences[:20]:
            print(f"  {line}")
    if check:
        return 0 if comparison.equal else 1
    replace_live(engine, rebuilt)
    print("live projections replaced by the rebuild")
    return 0
