"""`charity-ledger restore --from-topic`: the journal topic's records in order, the refusals,
and the drill on the real broker and both databases: run a ledger, wipe, restore, compare,
verify, then go on from the restored database without applying anything twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select

from services.contracts.codec import EventCodec
from services.contracts.events import (
    Event,
    JournalEntryCommitted,
    derived_id,
)
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import checkpoint_events
from services.ledger.adapters.store import LedgerStore, read_watermark, write_watermark
from services.ledger.adapters.topic_reader import TopicRecord, read_to_end
from services.ledger.domain.merkle import MerkleTree, TreeHead
from services.ledger.ops.restore import Checkpoints, RestoreRefused, in_seq_order, restore, signed_heads
from services.ledger.service.ports import JOURNAL_STREAM, TREE_HEADS_STREAM
from services.platform.db import make_engine
from services.platform.scratch_postgres import scratch_database
from services.platform.settings import Settings
from tests.fixtures import factories as f
from tests.fixtures.ledger import (
    RunningLedger,
    eventually,
    inputs_consumed,
    ledger_settings,
    start_ledger,
    stop_ledger,
)

REPO = Path(__file__).resolve().parents[3]
codec = EventCodec()
NOW = f.confirmed("p").occurred_at
STREAMS = (JOURNAL_STREAM, TREE_HEADS_STREAM)


def committed(seq: int, entry_hash: str | None = None) -> JournalEntryCommitted:
    return JournalEntryCommitted(
        event_id=derived_id("journal", str(seq)),
        occurred_at=NOW,
        actor="ledger",
        project_id="p",
        seq=seq,
        entry_id=f"e-{seq}",
        canonical="{}",
        prev_hash="0" * 64,
        entry_hash=entry_hash or f"{seq:064x}",
    )


def on_topic(*events: Event) -> list[TopicRecord]:
    """The events as the journal topic's records, at offsets 0, 1, 2…"""
    return [TopicRecord("x.charity.ledger.journal", 0, offset, e) for offset, e in enumerate(events)]


def no_earlier(seq: int) -> str | None:
    raise AssertionError(f"seq {seq} was asked of the database, but it is among the recent ones")


# --- the journal topic's records, put in order ------------------------------------------


def test_records_come_out_by_seq_each_once() -> None:
    records = on_topic(committed(1), committed(3), committed(2), committed(1), committed(3), committed(4))
    assert [r.seq for r in in_seq_order(records, no_earlier)] == [1, 2, 3, 4]


def test_a_missing_seq_is_refused() -> None:
    with pytest.raises(RestoreRefused, match=r"lacks seq 2 \(it holds up to 3\)"):
        list(in_seq_order(on_topic(committed(1), committed(3)), no_earlier))


def test_a_seq_published_as_two_entries_is_refused() -> None:
    with pytest.raises(RestoreRefused, match=r"seq 1 is on the journal topic twice.*partition 0 offset 1"):
        list(in_seq_order(on_topic(committed(1), committed(1, entry_hash="f" * 64)), no_earlier))


def test_only_the_recent_hashes_are_kept_an_older_repeat_is_compared_with_the_restored_entry() -> None:
    # Bounded memory: a journal of tens of millions of entries keeps only the last `recent`
    # hashes; a repeat of an older seq is compared with the entry restored at that seq.
    asked: list[int] = []

    def restored(seq: int) -> str:
        asked.append(seq)
        return f"{seq:064x}"

    records = on_topic(*(committed(seq) for seq in range(1, 11)), committed(9), committed(2))
    assert [r.seq for r in in_seq_order(records, restored, recent=3)] == list(range(1, 11))
    assert asked == [2]  # 9 was among the last three
    with pytest.raises(RestoreRefused, match="seq 2 is on the journal topic twice"):
        list(
            in_seq_order(
                on_topic(committed(1), committed(2), committed(3), committed(2, "f" * 64)), restored, 1
            )
        )


@pytest.mark.parametrize("seq", [0, -3])
def test_a_seq_below_one_is_refused_by_where_it_is_and_nothing_is_written(seq: int, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    LedgerStore(engine).migrate()

    with pytest.raises(
        RestoreRefused,
        match=rf"^x.charity.ledger.journal partition 0 offset 0 is a journal entry with seq {seq} ",
    ):
        restore(engine, on_topic(committed(seq), committed(1)), [], "g")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.journal)) == 0
    engine.dispose()


def test_a_record_other_than_a_journal_entry_is_refused_by_where_it_is() -> None:
    with pytest.raises(
        RestoreRefused, match="partition 0 offset 0 is a DonationConfirmed, not a journal entry"
    ):
        list(in_seq_order(on_topic(f.confirmed("p")), no_earlier))


def test_a_database_that_holds_anything_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    LedgerStore(engine).migrate()
    with engine.begin() as conn:
        conn.execute(t.consumer_offsets.insert().values(group_id="g", topic="x", partition=0, next_offset=7))

    with pytest.raises(RestoreRefused, match=r"not empty \(consumer_offsets hold rows\)"):
        restore(engine, on_topic(committed(1)), [], "g")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.journal)) == 0
    engine.dispose()


def test_the_outputs_watermarks_are_those_of_the_restored_journal(tmp_path: Path) -> None:
    # A database whose ledger tables were emptied, but not its watermarks: they never move back,
    # so a leftover one above the restored journal would keep the ledger from publishing the
    # entries and heads it adds up to there (the next restore would find seqs missing).
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    LedgerStore(engine).migrate()
    with engine.begin() as conn:
        for stream in STREAMS:
            write_watermark(conn, stream, 1000)

    restore(engine, [], [], "g")

    with engine.connect() as conn:
        assert {s: read_watermark(conn, s) for s in STREAMS} == dict.fromkeys(STREAMS, 0)
    engine.dispose()


def signed_over_one_leaf() -> tuple[Checkpoints, MerkleTree]:
    """A tree of one leaf and the checkpoints topic of a head over it, with its key."""
    tree = MerkleTree()
    tree.append(bytes(32))
    head = TreeHead(1, tree.root(), 1_700_000_000_000)
    return Checkpoints.of(checkpoint_events(Ed25519PrivateKey.generate(), head, NOW)), tree


def test_heads_are_checked_with_the_topics_keys_unless_the_operator_names_keys() -> None:
    marks, _ = signed_over_one_leaf()
    assert [head.tree_size for head in signed_heads(marks, None)] == [1]
    # --public-key with a file that holds no key (or none of these) trusts nothing, never the
    # keys on the topic it was given to distrust.
    with pytest.raises(RestoreRefused, match="not among the trusted keys"):
        signed_heads(marks, {})


# --- the drill --------------------------------------------------------------------------


def produce(bootstrap: str, topics: Topics, events: list[Event], garbage_for: str | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for e in events:
        producer.send(f"{topics.prefix}{e.topic_base}", key=e.project_id.encode(), value=codec.encode(e))
    if garbage_for is not None:  # a dead letter after the last entry of its partition
        producer.send(topics.donations, key=garbage_for.encode(), value=b"\x00not avro")
    producer.flush()
    producer.close()


def gifts(projects: list[str], count: int, start: int = 0) -> list[Event]:
    return [f.confirmed(projects[n % len(projects)], 100 + n, n % 7) for n in range(start, start + count)]


def snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "journal": conn.execute(select(t.journal).order_by(t.journal.c.seq)).all(),
            "postings": conn.execute(select(t.postings).order_by(t.postings.c.seq, t.postings.c.leg)).all(),
            "leaves": conn.execute(select(t.merkle_leaves).order_by(t.merkle_leaves.c.seq)).all(),
            "heads": conn.execute(select(t.tree_heads).order_by(t.tree_heads.c.tree_size)).all(),
            "totals": conn.execute(select(t.project_totals).order_by(t.project_totals.c.project_id)).all(),
            "donations": conn.execute(select(t.donations).order_by(t.donations.c.donation_id)).all(),
            "offsets": {
                (r.topic, r.partition): r.next_offset for r in conn.execute(select(t.consumer_offsets))
            },
            "chain": conn.execute(select(t.chain_head)).one(),
        }


def settled(ledger: RunningLedger, bootstrap: str, topics: Topics) -> bool:
    """Every input applied, a head signed over all of it (the running ledger's thread signs
    none: the test signs as the ledger's signing thread would), every entry on the journal
    topic and the head on the checkpoints topic."""
    engine = ledger.app.store.engine
    if not inputs_consumed(engine, bootstrap, topics):
        return False
    ledger.app.signer.publish_if_grown()
    with engine.connect() as conn:
        size = conn.scalar(select(t.chain_head.c.seq)) or 0
        head = conn.scalar(select(func.max(t.tree_heads.c.tree_size))) or 0
        sent = read_watermark(conn, TREE_HEADS_STREAM)
    if not size == head == sent:
        return False
    on_topic = {e.seq for e in read_to_end(bootstrap, topics.journal)}  # type: ignore[attr-defined]
    return on_topic == set(range(1, size + 1))


def charity_ledger(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CHARITY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "CHARITY_TOPIC_PREFIX": settings.topic_prefix,
        "CHARITY_LEDGER_GROUP": settings.ledger_group,
        "CHARITY_SIGNING_KEY": settings.signing_key_path,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def wiped_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another database of the same kind, migrated and empty: the wiped one."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'restored.db'}"
        LedgerStore(make_engine(url)).migrate()
        yield url
        return
    with scratch_database(request.getfixturevalue("postgres_url"), "r") as url:
        LedgerStore(make_engine(url)).migrate()
        yield url


@pytest.mark.integration
def test_an_undecodable_record_on_the_journal_topic_is_refused_in_one_line_nothing_written(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    settings = ledger_settings(kafka_bootstrap, topics, f"sqlite:///{tmp_path / 'ledger.db'}")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(topics.journal, key=b"p", value=b"\x00not an avro record").get(timeout=30)
    producer.close()
    url = f"sqlite:///{tmp_path / 'restored.db'}"

    refused = charity_ledger("restore", "--from-topic", "--database-url", url, settings=settings)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"restore refused, nothing written: {topics.journal} partition 0 offset 0: "
        "not an event this ledger can read (bad magic 006e: not Avro single-object encoding)"
    ]
    with make_engine(url).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.journal)) == 0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_wiped_ledger_is_restored_from_the_journal_topic_and_goes_on(
    kafka_bootstrap: str, topics: Topics, db_url: str, wiped_url: str, tmp_path: Path
) -> None:
    settings = ledger_settings(
        kafka_bootstrap,
        topics,
        db_url,
        signing_key_path=str(tmp_path / "keys" / "sth.pem"),
    )
    projects = ["meals", "books", "wells"]
    given = gifts(projects, 300)
    first = [e for p in projects for e in f.opened_project(p)] + given
    refund = f.refunded("meals", given[0].donation_id, 50)  # type: ignore[attr-defined]

    ledger = start_ledger(settings)
    try:
        engine = ledger.app.store.engine
        produce(kafka_bootstrap, topics, [*first, refund], garbage_for="meals")
        eventually(lambda: settled(ledger, kafka_bootstrap, topics), timeout=90, what="the ledger settled")
        before = snapshot(engine)
    finally:
        stop_ledger(ledger)
    assert len(before["journal"]) == len(first) + 1

    refused = charity_ledger(
        "restore", "--from-topic", "--database-url", db_url, "--quiet", settings=settings
    )
    assert refused.returncode == 1 and "is not empty" in refused.stderr

    restored = charity_ledger(
        "restore", "--from-topic", "--database-url", wiped_url, "--quiet", settings=settings
    )
    assert restored.returncode == 0, restored.stderr
    assert f"root {before['heads'][-1].root_hash}" in restored.stdout

    wiped = make_engine(wiped_url)
    after = snapshot(wiped)
    for part in ("journal", "postings", "leaves", "heads", "totals", "donations", "chain"):
        assert after[part] == before[part], part
    # Where each partition resumes: after its last journaled record. The garbage record
    # after the last gift of meals' partition made no entry, so it is read again.
    meals_partition = next(
        int(row.source.rsplit("/", 2)[1]) for row in reversed(before["journal"]) if row.project_id == "meals"
    )
    assert {
        tp: offset + (tp == (topics.donations, meals_partition)) for tp, offset in after["offsets"].items()
    } == before["offsets"]

    verified = charity_ledger("verify", "--database-url", wiped_url, "--quiet", settings=settings)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"OK: {len(first) + 1} entries")

    # The restored ledger goes on: new gifts and a redelivery of old ones, each applied once.
    ledger = start_ledger(settings.model_copy(update={"database_url": wiped_url}))
    try:
        more = gifts(projects, 60, start=300)
        produce(kafka_bootstrap, topics, [*more, *first[-20:]])
        eventually(
            lambda: settled(ledger, kafka_bootstrap, topics), timeout=90, what="the restored ledger settled"
        )
    finally:
        stop_ledger(ledger)
    with wiped.connect() as conn:
        entries = conn.scalar(select(func.count()).select_from(t.journal))
        ids = conn.scalar(select(func.count(func.distinct(t.journal.c.entry_id))))
        donations = conn.scalar(select(func.sum(t.project_totals.c.donations_count)))
    assert entries == ids == len(first) + 1 + len(more)
    assert donations == 360
    wiped.dispose()
    assert charity_ledger("verify", "--database-url", wiped_url, "--quiet", settings=settings).returncode == 0
