"""Staff decisions on held donor messages and names, in an append-only file the gateways share.

A message is held by every gateway that reads the feed, so a decision made on one
must reach the others, and a gateway that restarts must not hold again what staff
already approved. Like the venue file, the decisions live on the host: one JSON
line per decision (`{"id": <feed entry>, "decision": "approved" | "rejected",
"actor": <who decided>}`, never the message itself), appended and fsynced by the
gateway that took it, read from where they left off by all of them.

A decision on a donor's *name* has the id `name:<feed entry>`, and may also be
"flagged" (an operator holds a name that is on screens). A gateway that knows
nothing of names sees an id no gift has, and a decision it skips: harmless. The
actor is recorded for people to read; lines written before it existed have none.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

APPROVED = "approved"
REJECTED = "rejected"
FLAGGED = "flagged"  # names only: held by an operator after it was shown
DECISIONS = frozenset({APPROVED, REJECTED, FLAGGED})
NAME_PREFIX = "name:"


def name_key(entry_id: str) -> str:
    """The id under which decisions on the donor name of a feed entry are recorded."""
    return NAME_PREFIX + entry_id


class DecisionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0  # bytes of the file already read

    def append(self, entry_id: str, decision: str, actor: str | None = None) -> None:
        """Record one decision, and who took it, durably (blocking: call it off the event loop)."""
        if decision not in DECISIONS or (decision == FLAGGED and not entry_id.startswith(NAME_PREFIX)):
            raise ValueError(f"unknown decision {decision!r}")
        record = {"id": entry_id, "decision": decision}
        if actor:
            record["actor"] = actor
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: lines from several gateways never interleave within a line.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_new(self) -> list[tuple[str, str]]:
        """The decisions appended since the last call (all of them, the first time).

        A last line still being written is left for the next call; a line that is
        not a decision is logged and skipped.
        """
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        decisions: list[tuple[str, str]] = []
        for raw in complete.splitlines():
            try:
                record = json.loads(raw)
                entry_id, decision = record["id"], record["decision"]
            except (ValueError, KeyError, TypeError):
                log.error("%s: skipping a line that is not a decision: %r", self.path, raw[:200])
                continue
            if isinstance(entry_id, str) and decision in DECISIONS:
                decisions.append((entry_id, decision))
            else:
                log.error("%s: skipping a line that is not a decision: %r", self.path, raw[:200])
        return decisions
