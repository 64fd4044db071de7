"""The canonical form of a journal entry, and the hash chain over entries.

The same canonical bytes feed the SHA-256 hash chain (each entry commits to the
one before) and the Merkle tree leaves (so one receipt proves one entry).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.merkle import canonical_entry_bytes, leaf_hash

GENESIS_HASH = "0" * 64


def iso_ms(moment: datetime) -> str:
    # SQLite hands datetimes back without a zone; everything the ledger stores is UTC.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# One definition of the canonical bytes, shared with the Merkle leaves.
canonical_bytes = canonical_entry_bytes


def entry_record(seq: int, entry: JournalEntry, recorded_at: str) -> dict[str, Any]:
    """Everything a journal entry asserts, as plain JSON values.

    recorded_at is already `iso_ms` of the batch's time: the same for every
    entry of a batch, so formatted once (it was 2% of the batch loop).
    """
    return {
        "seq": seq,
        "entry_id": entry.entry_id,
        "kind": entry.kind,
        "project_id": entry.project_id,
        "effective_at": iso_ms(entry.effective_at),
        "recorded_at": recorded_at,
        "decision": entry.decision,
        "reason": entry.reason,
        "body": entry.body,
        "postings": [[p.account, p.amount.currency, p.amount.minor] for p in entry.postings],
    }


def entry_hashes(prev_hash: str, record: dict[str, Any]) -> tuple[str, str]:
    """(chain hash, Merkle leaf hash) of an entry, from one canonical encoding."""
    return hashes_of(prev_hash, canonical_bytes(record))


def hashes_of(prev_hash: str, canonical: bytes) -> tuple[str, str]:
    """(chain hash, Merkle leaf hash) of an entry's canonical bytes."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest(), leaf_hash(canonical).hex()
