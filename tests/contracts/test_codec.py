import dataclasses
import json
from io import BytesIO

import pytest
from fastavro import schemaless_writer

from services.contracts.codec import MAGIC, DecodeError, EventCodec
from services.contracts.events import ALL_EVENT_TYPES, Event
from services.contracts.schema_catalog import SchemaCatalog
from tests.fixtures import factories as f

codec = EventCodec()


def test_a_confirmed_donation_round_trips_with_the_single_object_header() -> None:
    event = f.confirmed("p1", gross_fen=5000, fee_fen=30)
    data = codec.encode(event)
    assert data[:2] == MAGIC
    assert data[2:10] == SchemaCatalog.load().latest("DonationConfirmed").fingerprint
    assert codec.decode(data) == event


@pytest.mark.parametrize(
    "event",
    [
        f.registered("p1", name_en="Meals"),
        f.confirmed("p1", receipt_no="SIP-2026-0001234"),
        f.offline("p1", kind="charity_sale", item="二手书"),
        f.refunded("p1", "d1", 10),
    ],
)
def test_events_round_trip(event: object) -> None:
    assert codec.decode(codec.encode(event)) == event  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "added_in_v2"),
    [
        (f.registered("p1", name_en="Meals"), "name_en"),
        (f.confirmed("p1", receipt_no="SIP-2026-0001234"), "receipt_no"),
    ],
    ids=["ProjectRegistered", "DonationConfirmed"],
)
def test_a_record_written_with_v1_reads_as_the_newest_shape(event: Event, added_in_v2: str) -> None:
    catalog = SchemaCatalog.load()
    v1 = next(v for v in catalog.versions(event.type_name) if v.version == 1)
    record = event.to_record()
    record.pop(added_in_v2)
    buf = BytesIO()
    buf.write(MAGIC + v1.fingerprint)
    schemaless_writer(buf, v1.parsed, record)
    decoded = codec.decode(buf.getvalue())
    # An old writer knew nothing of the field: it reads as its default, the rest unchanged.
    assert decoded == dataclasses.replace(event, **{added_in_v2: None})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "shorter"),
        (b"\xc3", "shorter"),
        (b"{" + b"x" * 20, "bad magic"),
        (MAGIC + b"\x00" * 8 + b"\x02", "unknown schema fingerprint"),
    ],
)
def test_undecodable_records_say_why(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        codec.decode(data)


def test_a_truncated_body_and_trailing_bytes_are_rejected() -> None:
    data = codec.encode(f.confirmed("p1"))
    with pytest.raises(DecodeError, match="corrupt DonationConfirmed"):
        codec.decode(data[:-5])
    with pytest.raises(DecodeError, match="trailing bytes"):
        codec.decode(data + b"\x00")


def test_every_event_type_has_a_schema_with_the_common_fields() -> None:
    catalog = SchemaCatalog.load()
    assert set(catalog.names()) == set(ALL_EVENT_TYPES)
    for name in catalog.names():
        fields = [fld["name"] for fld in catalog.latest(name).raw["fields"]]
        assert fields[:4] == ["event_id", "occurred_at", "actor", "project_id"], name
        assert "float" not in json.dumps(catalog.latest(name).raw) and "double" not in json.dumps(
            catalog.latest(name).raw
        ), f"{name} has a floating-point field"
