"""Documents kept under their SHA-256, with a row per project, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.ledger.adapters.store import LedgerStore
from services.staff.adapters.documents import DocumentStore, safe_filename
from services.staff.domain.documents import DocumentRefused, DocumentRules

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def documents(store: LedgerStore, tmp_path: Path) -> DocumentStore:
    # The `store` fixture has migrated the database (migration 0010 makes the documents table).
    return DocumentStore(store.engine, tmp_path / "docs", DocumentRules(max_bytes=1000))


def test_a_document_is_kept_once_under_its_hash_and_found_per_project(
    documents: DocumentStore, tmp_path: Path
) -> None:
    sha = hashlib.sha256(PDF).hexdigest()
    kept = documents.keep(PDF, project_id="p1", filename="../../etc/报价.pdf", uploaded_by="min", now_ms=5)
    assert (kept.sha256, kept.media_type, kept.size_bytes, kept.filename) == (
        sha,
        "application/pdf",
        len(PDF),
        "报价.pdf",
    )
    again = documents.keep(PDF, project_id="p1", filename="other.pdf", uploaded_by="fin", now_ms=9)
    assert again == kept  # the first upload's facts stand
    documents.keep(PDF, project_id="p2", filename="p2.pdf", uploaded_by="max", now_ms=7)
    assert [p.name for p in (tmp_path / "docs").rglob("*") if p.is_file()] == [sha]
    assert documents.read(kept) == PDF
    assert documents.document(sha, "p3") is None
    assert [d.filename for d in documents.documents_of("p2", [sha, "f" * 64])] == ["p2.pdf"]


def test_a_refused_document_leaves_nothing(documents: DocumentStore, tmp_path: Path) -> None:
    with pytest.raises(DocumentRefused):
        documents.keep(b"MZ program", project_id="p1", filename="x.pdf", uploaded_by="min", now_ms=1)
    assert not (tmp_path / "docs").exists()
    assert documents.documents_of("p1", [hashlib.sha256(b"MZ program").hexdigest()]) == []


def test_file_names_are_labels_only() -> None:
    assert safe_filename("C:\\\\Users\\\\a\\\\发票.pdf") == "发票.pdf"
    assert safe_filename('a"<b>\x00.pdf') == "ab.pdf"
    assert safe_filename("") == "document"
