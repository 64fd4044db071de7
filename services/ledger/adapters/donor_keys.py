"""Donors' data keys, read from the donor store's table in the same database.

The one thing of the donor store the ledger reads, and only to open the sealed
message of a gift for the screen's feed item; it never writes there.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from sqlalchemy import Engine, column, select, table

# The donor store owns the table (services/donors/adapters/tables.py); the ledger
# names just the two columns it reads, so it need not import the donors package.
_donor_data = table("donor_data", column("donor_ref"), column("data_key"))


class StoredDonorKeys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keys_for(self, donor_refs: Iterable[str]) -> dict[str, bytes]:
        refs = list(donor_refs)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_donor_data.c.donor_ref, _donor_data.c.data_key).where(
                    _donor_data.c.donor_ref.in_(refs), _donor_data.c.data_key.is_not(None)
                )
            ).all()
        return {row.donor_ref: base64.b64decode(row.data_key) for row in rows}
