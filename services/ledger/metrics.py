"""Prometheus metrics of the ledger process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "ledger_events_applied_total", "Input events turned into journal entries", ["decision"]
)
DUPLICATES = Counter("ledger_duplicate_events_total", "Redelivered events skipped by event id")
CONFLICTING_DUPLICATES = Counter(
    "ledger_conflicting_duplicates_total",
    "Events whose id was applied before with another body: dead-lettered, the first stands",
)
DEAD_LETTERS = Counter("ledger_dead_letters_total", "Records sent to the DLQ", ["reason"])
# Every kind exported from the start at 0, so that the first dead letter of a kind is an
# increase Prometheus can see (a series that appears at 1 has no earlier sample to rise from).
DEAD_LETTER_KINDS = ("undecodable", "wrong_topic", "invalid", "refused", "conflicting_duplicate")
for _kind in DEAD_LETTER_KINDS:
    DEAD_LETTERS.labels(_kind)
BATCH_SIZE = Histogram(
    "ledger_batch_size", "Records per committed batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
APPLY_SECONDS = Histogram(
    "ledger_batch_apply_seconds",
    "Time to decide, commit and publish one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CONSUMER_LAG = Gauge("ledger_consumer_lag", "Records not yet applied", ["topic", "partition"])
BATCH_FAILURES = Counter("ledger_batch_failures_total", "Batches whose commit failed")
BATCH_SPLITS = Counter(
    "ledger_batch_splits_total",
    "Batches refused for their data and split to find the record to dead-letter",
)
BATCH_RETRIES = Counter(
    "ledger_batch_retries_total",
    "Batches retried after a transient failure, by what failed (store, broker, other)",
    ["cause"],
)
SECONDS_SINCE_COMMIT = Gauge(
    "ledger_seconds_since_last_commit",
    "Seconds since the ledger last committed a batch (rises while it is stalled)",
)
PARTITION_ASSIGNMENTS = Counter(
    "ledger_partition_assignments_total",
    "Group rebalances that handed this ledger its partitions; more than one per start means churn",
)
WAL_FRAMES = Gauge(
    "ledger_sqlite_wal_frames",
    "Pages in the SQLite write-ahead log at the last background checkpoint (SQLite only)",
)
CAUGHT_UP = Counter(
    "ledger_outputs_caught_up_total",
    "Committed entries whose outputs were published again from the stored watermark",
)
PUBLISH_FAILURES = Counter(
    "ledger_publish_failures_total",
    "Committed batches whose outcomes, feed items or totals the broker did not all acknowledge",
)
KAFKA_COMMIT_FAILURES = Counter(
    "ledger_kafka_offset_commit_failures_total",
    "Committed batches whose offsets Kafka's group coordinator did not take (informational only: "
    "the database's offsets are the ones reading resumes from)",
)
JOURNAL_LAST_SEQ = Gauge("ledger_journal_last_seq", "The seq of the last journal entry committed")
OUTPUTS_ACKNOWLEDGED_SEQ = Gauge(
    "ledger_outputs_acknowledged_seq",
    "The last journal seq whose outputs (journal record, outcome, feed item, totals) the broker "
    "acknowledged, with everything before it",
)
TREE_HEAD_SIZE = Gauge("ledger_tree_head_size", "Journal entries under the latest signed tree head")
TREE_HEAD_TIMESTAMP = Gauge(
    "ledger_tree_head_timestamp_seconds", "When the latest signed tree head was signed (Unix time)"
)
WRITER_LEASE_HELD = Gauge(
    "ledger_writer_lease_held",
    "1 while this ledger holds the writer lease (the active one), 0 while it stands by",
)
