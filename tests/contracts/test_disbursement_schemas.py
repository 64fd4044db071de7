"""DisbursementRequested v2 (planned date, documents) and DisbursementApproved v2 (comment): records
of v1 still read, and the journal entry of an event without the new fields is what it always was."""

from __future__ import annotations

import dataclasses
from io import BytesIO

import pytest
from fastavro import schemaless_writer

from services.contracts import events as ev
from services.contracts.codec import MAGIC, EventCodec
from services.contracts.schema_catalog import SchemaCatalog
from services.contracts.validation import problems_with
from services.ledger.domain.book import body_of
from tests.fixtures import factories as f

codec = EventCodec()
REQUEST = f.disbursement(
    ev.DisbursementRequested,
    "p1",
    "d1",
    "min",
    planned_on="2026-12-28",
    document_sha256s=["a" * 64, "b" * 64],
)
APPROVAL = f.disbursement(ev.DisbursementApproved, "p1", "d1", "fin", comment="发票已核 invoice checked")
ADDED = {"DisbursementRequested": ("planned_on", "document_sha256s"), "DisbursementApproved": ("comment",)}


@pytest.mark.parametrize("event", [REQUEST, APPROVAL], ids=["requested", "approved"])
def test_the_new_fields_round_trip(event: ev.Event) -> None:
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize("event", [REQUEST, APPROVAL], ids=["requested", "approved"])
def test_a_v1_record_reads_with_the_new_fields_null(event: ev.Event) -> None:
    v1 = SchemaCatalog.load().versions(event.type_name)[0]
    record = event.to_record()
    for name in ADDED[event.type_name]:
        record.pop(name)
    buf = BytesIO()
    buf.write(MAGIC + v1.fingerprint)
    schemaless_writer(buf, v1.parsed, record)
    old = dataclasses.replace(event, **dict.fromkeys(ADDED[event.type_name]))
    assert codec.decode(buf.getvalue()) == old
    # Left out of the journal's body while null: such an entry hashes as it did before v2.
    assert not set(ADDED[event.type_name]) & set(body_of(old))
    assert set(ADDED[event.type_name]) <= set(body_of(event))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"planned_on": "28/12/2026"}, "is not a date (YYYY-MM-DD)"),
        ({"document_sha256s": ["A" * 64]}, "64 lowercase hex digits"),
        ({"document_sha256s": ["a" * 64] * 21}, "the limit is 20"),
    ],
)
def test_a_bad_request_is_invalid(changes: dict[str, object], problem: str) -> None:
    assert problem in "; ".join(problems_with(dataclasses.replace(REQUEST, **changes)))


def test_a_good_request_is_valid() -> None:
    assert problems_with(REQUEST) == [] and problems_with(APPROVAL) == []
