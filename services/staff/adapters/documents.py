"""Supporting documents and evidence: the bytes in a directory under their SHA-256, the facts
about each upload in the `documents` table (migration 0010).

A file is named by its content's hash, so the same bytes uploaded twice are kept
once, and the hash an event carries finds them again. Each upload is a row per
project: a document is read through the project it was uploaded for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError

from services.staff.domain.documents import DocumentRules

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("project_id", String(64), primary_key=True),
    Column("media_type", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("filename", String(200), nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at_ms", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Document:
    sha256: str
    project_id: str
    media_type: str
    size_bytes: int
    filename: str
    uploaded_by: str
    uploaded_at_ms: int


def safe_filename(name: str) -> str:
    """The uploader's file name as a label: no path, no control characters, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if c.isprintable() and c not in '"<>') or "document"
    return kept[-200:]


class DocumentStore:
    """Checks and keeps uploaded documents; nothing is written for a refused one."""

    def __init__(self, engine: Engine, directory: Path, rules: DocumentRules) -> None:
        self.engine = engine
        self.directory = directory
        self.rules = rules

    def path_of(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256

    def keep(
        self, content: bytes, *, project_id: str, filename: str, uploaded_by: str, now_ms: int
    ) -> Document:
        """Store `content` for the project, or raise DocumentRefused (size, type) with nothing kept."""
        media_type = self.rules.media_type(content)
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.path_of(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a reader never sees half a file under the hash.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        document = Document(
            sha256, project_id, media_type, len(content), safe_filename(filename), uploaded_by, now_ms
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(documents.insert().values(**document.__dict__))
        except IntegrityError:
            # Uploaded for this project before: the first upload's facts stand.
            found = self.document(sha256, project_id)
            assert found is not None
            return found
        return document

    def document(self, sha256: str, project_id: str) -> Document | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(documents).where(
                        documents.c.sha256 == sha256, documents.c.project_id == project_id
                    )
                )
                .mappings()
                .first()
            )
        return Document(**row) if row else None

    def documents_of(self, project_id: str, hashes: list[str]) -> list[Document]:
        """The project's documents among `hashes`, in that order; unknown ones left out."""
        if not hashes:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(documents).where(documents.c.project_id == project_id, documents.c.sha256.in_(hashes))
            ).mappings()
            found = {r["sha256"]: Document(**r) for r in rows}
        return [found[h] for h in hashes if h in found]

    def read(self, document: Document) -> bytes:
        return self.path_of(document.sha256).read_bytes()
