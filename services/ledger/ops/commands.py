"""`charity-ledger verify` and `charity-ledger rebuild`: operator commands on the ledger DB.

services/cli.py declares their options; these functions do the work and return the exit status.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from sqlalchemy import Engine, select

from services.contracts.events import utc_now_ms
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import key_id, load_public_key_pem, rotate_signing_key
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.chain import iso_ms
from services.ledger.ops.rebuild import compare_with_live, replace_live, replay
from services.ledger.ops.verify import verify
from services.platform.db import make_engine
from services.platform.settings import Settings


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s")


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None] | None]:
    """A `progress(done, total)` callback drawing a bar on stderr, or None when quiet."""
    with progress_bars((label,), quiet) as (progress,):
        yield progress


@contextmanager
def progress_bars(
    labels: Sequence[str], quiet: bool = False
) -> Iterator[tuple[Callable[[int, int | None], None] | None, ...]]:
    """One `progress(done, total)` callback per label (total None: not known), each drawing
    its own bar on stderr from its first call, or Nones when quiet."""
    if quiet:
        yield (None,) * len(labels)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:

        def callback(label: str) -> Callable[[int, int | None], None]:
            tasks: list[TaskID] = []

            def progress(done: int, total: int | None) -> None:
                if not tasks:
                    tasks.append(bar.add_task(label, total=None))
                bar.update(tasks[0], completed=done, total=total)

            return progress

        yield tuple(callback(label) for label in labels)


def public_keys_in(text: str) -> dict[str, Ed25519PublicKey]:
    """Every PEM public key in a file (one or several, concatenated), by key id."""
    blocks = re.findall(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", text, flags=re.S)
    keys = [load_public_key_pem(block + "\n") for block in blocks]
    return {key_id(key): key for key in keys}


def registered_keys(engine: Engine) -> dict[str, Ed25519PublicKey]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.valid_from)).all()
    return {row.key_id: load_public_key_pem(row.public_key) for row in rows}


def rotate_command(database_url: str | None = None) -> int:
    """A new signing key in place of the current one (or the first one), registered."""
    settings = Settings()
    engine = make_engine(database_url or settings.database_url)
    LedgerStore(engine).migrate()
    old, new = rotate_signing_key(Path(settings.signing_key_path), engine, utc_now_ms())
    if old is None:
        print(f"created the first signing key {new} at {settings.signing_key_path}")
    else:
        print(f"rotated: new heads are signed with {new}; heads signed before keep {old}")
    return 0


def list_keys_command(database_url: str | None = None) -> int:
    settings = Settings()
    engine = make_engine(database_url or settings.database_url, writer=False)
    with engine.connect() as conn:
        rows = conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.valid_from)).all()
    for row in rows:
        print(f"{row.key_id}  {row.algorithm}  valid from {iso_ms(row.valid_from)}")
    if not rows:
        print("no signing keys registered yet", file=sys.stderr)
    return 0


def verify_command(
    database_url: str | None = None, public_key: Path | None = None, quiet: bool = False
) -> int:
    settings = Settings()
    engine = make_engine(database_url or settings.database_url, writer=False)
    # Keys given on the command line are the ones to trust (as published); without
    # them, the keys the ledger registered in its database.
    keys = public_keys_in(public_key.read_text(encoding="ascii")) if public_key else registered_keys(engine)
    if not keys:
        print(
            "no public keys: the database has none registered; pass --public-key with the published "
            "keys (GET /api/transparency/public-keys)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    with progress_bar("verify", quiet) as progress:
        report = verify(engine, keys, progress)
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


def restore_command(
    database_url: str | None = None,
    bootstrap: str | None = None,
    public_key: Path | None = None,
    quiet: bool = False,
) -> int:
    """Restore a wiped ledger database from the journal and checkpoints topics."""
    from services.contracts.topics import Topics
    from services.ledger.adapters.topic_reader import (
        RecordUndecodable,
        TopicMissing,
        read_to_end,
        records_to_end,
    )
    from services.ledger.ops.restore import RestoreRefused, restore

    settings = Settings()
    engine = make_engine(database_url or settings.database_url)
    LedgerStore(engine).migrate()
    brokers = bootstrap or settings.kafka_bootstrap
    topics = Topics(settings.topic_prefix)
    trusted = public_keys_in(public_key.read_text(encoding="ascii")) if public_key else None
    started = time.monotonic()
    labels = (f"restore: entries from {topics.journal}", "restore: projections rebuilt from them")
    try:
        with progress_bars(labels, quiet) as (restoring, rebuilding):
            report = restore(
                engine,
                records_to_end(brokers, topics.journal),
                read_to_end(brokers, topics.checkpoints),
                settings.ledger_group,
                trusted,
                restoring,
                rebuilding,
            )
    except (RestoreRefused, RecordUndecodable, TopicMissing, TimeoutError) as refused:
        print(f"restore refused, nothing written: {refused}", file=sys.stderr)
        return 1
    offsets = ", ".join(f"{topic}/{part}@{off}" for (topic, part), off in sorted(report.offsets.items()))
    print(
        f"restored {report.entries} entries from {topics.journal}; the signed head of size "
        f"{report.tree_size} has root {report.root_hash} and the restored leaves reproduce it; "
        f"{report.projects} projects rebuilt; the ledger resumes at {offsets or 'no stored offsets'} "
        f"({time.monotonic() - started:.1f}s)"
    )
    return 0
