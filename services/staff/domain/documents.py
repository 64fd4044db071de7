"""What a supporting document may be: a PDF, PNG or JPEG by its first bytes, within a size limit.

The type is read from the content, never from the file's name or the browser's
claim, so a renamed program is refused whatever it is called.
"""

from __future__ import annotations

from dataclasses import dataclass

# First bytes of each accepted type, and the media type it is served back as.
MAGIC_BYTES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
ACCEPTED = "PDF, PNG, JPEG"


class DocumentRefused(ValueError):
    """A document that is not taken; `status` is the HTTP answer that fits (413, 415, 422)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class DocumentRules:
    max_bytes: int

    def media_type(self, content: bytes) -> str:
        """The content's media type, or DocumentRefused naming what is wrong."""
        if not content:
            raise DocumentRefused(422, "文件为空 · the file is empty")
        if len(content) > self.max_bytes:
            raise DocumentRefused(
                413,
                f"文件超过 {self.max_bytes} 字节 · the file is larger than {self.max_bytes} bytes",
            )
        for magic, media_type in MAGIC_BYTES:
            if content.startswith(magic):
                return media_type
        raise DocumentRefused(
            415, f"只接受 {ACCEPTED} 文件 · only {ACCEPTED} files are taken (checked by their content)"
        )
