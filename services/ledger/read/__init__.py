"""The ledger's read side: everything other services may read of the ledger.

The API and the staff pages import this package and nothing else of the ledger.
It reads the ledger database through an engine that never takes SQLite's write
lock, and it never opens the private signing key.

- `open_read_engine(url)`: the read-only engine for the objects below;
- `LedgerQueries`: projects and their totals (`totals_view`), journal size and
  entries, statements, balances as of a time, fund lineage, donations;
- `Transparency`: signed tree heads, receipts with inclusion proofs,
  consistency proofs (`NotYetCovered` while no head covers an entry yet);
- `published_public_key(signing_key_path)`: the PEM of the key that signs tree
  heads, as the ledger published it beside its private key;
- the value types those return: `ProjectTotals`, `ProjectStatus`, `Money`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from services.ledger.adapters.db import make_engine
from services.ledger.adapters.signing import public_key_file
from services.ledger.domain.money import Money
from services.ledger.domain.state import ProjectStatus, ProjectTotals
from services.ledger.read.queries import LedgerQueries, totals_view
from services.ledger.read.transparency import NotYetCovered, Transparency

__all__ = [
    "LedgerQueries",
    "Money",
    "NotYetCovered",
    "ProjectStatus",
    "ProjectTotals",
    "Transparency",
    "open_read_engine",
    "published_public_key",
    "totals_view",
]


def open_read_engine(database_url: str) -> Engine:
    """An engine for reading the ledger database; it never takes SQLite's write lock."""
    return make_engine(database_url, writer=False)


def published_public_key(signing_key_path: str | Path) -> str | None:
    """The public key the ledger published beside its signing key, or None before it has."""
    path = public_key_file(Path(signing_key_path))
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
