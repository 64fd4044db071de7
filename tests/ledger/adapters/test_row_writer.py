"""The store's tuple rows are refused unless they match the table's columns and bindings."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from services.ledger.adapters import tables as t
from services.ledger.adapters.store import JOURNAL_COLUMNS, _RowWriter

NO_CONNECTION: Any = None  # both refusals come before anything is executed


def test_rows_in_another_column_order_are_refused() -> None:
    writer = _RowWriter.for_table(t.postings, sqlite.dialect())
    with pytest.raises(ValueError, match="the table's columns are"):
        writer.write_tuples(NO_CONNECTION, ("leg", "seq", "account", "currency", "amount"), [])


def test_sqlite_timestamps_must_be_bound_the_way_sqlalchemy_stores_them() -> None:
    writer = _RowWriter.for_table(t.journal, sqlite.dialect())
    with pytest.raises(ValueError, match=r"\['effective_at', 'recorded_at'\] need their bind processor"):
        writer.write_tuples(NO_CONNECTION, JOURNAL_COLUMNS, [])
    with pytest.raises(ValueError, match=r"\['recorded_at'\]"):
        writer.write_tuples(NO_CONNECTION, JOURNAL_COLUMNS, [], bound=("effective_at",))
