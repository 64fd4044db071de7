"""A screen at the ASGI level: records what a Client writes, and can stall like a full socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from services.display.sse import Client

Frame = tuple[str | None, str, Any]  # (id, event, data)


def parse_frames(chunk: bytes) -> list[Frame]:
    out: list[Frame] = []
    for block in chunk.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


class FakeScreen:
    def __init__(self, client: Client, stalled: bool = False) -> None:
        self.client = client
        self.chunks: list[bytes] = []
        self.sent_at: list[float] = []
        self.socket_free = asyncio.Event()
        if not stalled:
            self.socket_free.set()
        self.finished = client.attach(self.send)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.socket_free.is_set():  # as uvicorn does when the transport is paused
            await self.socket_free.wait()
        self.chunks.append(message["body"])
        self.sent_at.append(asyncio.get_running_loop().time())

    def frames(self) -> list[Frame]:
        return [f for chunk in self.chunks for f in parse_frames(chunk)]

    def take(self) -> list[Frame]:
        frames = self.frames()
        self.chunks.clear()
        return frames
