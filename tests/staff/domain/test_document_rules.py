"""What a supporting document may be: a PDF, PNG or JPEG by its first bytes, within the size limit."""

from __future__ import annotations

import pytest

from services.staff.domain.documents import DocumentRefused, DocumentRules

RULES = DocumentRules(max_bytes=100)


@pytest.mark.parametrize(
    ("content", "media_type"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0..JFIF", "image/jpeg"),
    ],
)
def test_the_type_is_read_from_the_content(content: bytes, media_type: str) -> None:
    assert RULES.media_type(content) == media_type


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (b"MZ\x90\x00 a program", 415, "only PDF, PNG, JPEG"),
        (b"<svg onload=alert(1)>", 415, "checked by their content"),
        (b"  %PDF-1.7", 415, "only PDF, PNG, JPEG"),  # the magic must come first
        (b"", 422, "the file is empty"),
        (b"%PDF-" + b"x" * 96, 413, "larger than 100 bytes"),
    ],
    ids=["program", "svg", "pdf-not-first", "empty", "too-large"],
)
def test_anything_else_is_refused_with_the_status_that_fits(content: bytes, status: int, says: str) -> None:
    with pytest.raises(DocumentRefused) as refused:
        RULES.media_type(content)
    assert refused.value.status == status and says in refused.value.reason


def test_exactly_the_limit_is_taken() -> None:
    assert RULES.media_type(b"%PDF-" + b"x" * 95) == "application/pdf"
