"""Avro single-object encoding of events (bytes C3 01, fingerprint, body).

Encoding always uses the newest schema of an event. Decoding looks the writer
schema up by fingerprint and resolves it to the newest schema, so the rest of
the code only ever sees the current shape of each event.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from services.contracts.events import ALL_EVENT_TYPES, Event
from services.contracts.schema_catalog import SchemaCatalog, default_catalog

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


class DecodeError(ValueError):
    """A record that cannot be turned into an event; the reason is for the DLQ."""


class EventCodec:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self._catalog = catalog or default_catalog()
        missing = set(ALL_EVENT_TYPES) - set(self._catalog.names())
        if missing:
            raise ValueError(f"no schema for events {sorted(missing)}")

    def encode(self, event: Event) -> bytes:
        return self.encode_record(event.type_name, event.to_record())

    def encode_record(self, type_name: str, record: dict[str, Any]) -> bytes:
        """An event given as its record (the fields of `type_name`, as `Event.to_record` gives
        them): for the ledger's publisher, which builds three records per gift and skips
        building the frozen dataclass only to take it apart again."""
        schema = self._catalog.latest(type_name)
        buf = BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        schemaless_writer(buf, schema.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes | None) -> Event:
        if data is None or len(data) < HEADER_LEN:
            raise DecodeError("record is shorter than the single-object header")
        if data[:2] != MAGIC:
            raise DecodeError(f"bad magic {data[:2].hex()}: not Avro single-object encoding")
        writer = self._catalog.by_fingerprint(data[2:HEADER_LEN])
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
        reader = self._catalog.latest(writer.name)
        buf = BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = schemaless_reader(buf, writer.parsed, None if reader is writer else reader.parsed)
        except Exception as exc:  # fastavro raises several types on corrupt bodies
            raise DecodeError(f"corrupt {writer.name} body: {exc.__class__.__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after the {writer.name} body")
        if not isinstance(record, dict):
            raise DecodeError("body is not a record")
        return ALL_EVENT_TYPES[writer.name](**record)
