"""What the ledger needs from the outside world, as small interfaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from an input topic, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class OutputPort(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None: ...

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every message sent so far is acknowledged; raise if any failed."""
