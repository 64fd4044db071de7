"""Load clients for the display benchmarks: thousands of SSE streams on raw asyncio sockets.

Run as its own process (``python -m bench.loadgen``) so that the gateway
being measured has its own interpreter and its own CPU. It prints ``READY <n>`` once
every stream has its snapshot, records when each update arrives, and on end of
stdin (or after ``--max-seconds``) writes what it saw as JSON to ``--out``.

What is recorded per stream, with wall-clock arrival times:
* ``totals``: (time, project, as_of_seq) each time a project's as_of_seq moves on;
* ``feed``: (time, seq) for each gift in the feed, once (gifts of different projects
  may come in another order than their seq: they travel on different partitions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

_PROJECT = re.compile(rb'"id":"([A-Za-z0-9_.:-]+)","name"[^}]*?"as_of_seq":(\d+)[,}]')
_GIFT = re.compile(rb'"seq":(\d+),"project_id"')
TAIL = 400  # bytes kept across reads so a message split between reads is still found


@dataclass
class Stream:
    totals: list[tuple[float, str, int]] = field(default_factory=list)
    feed: list[tuple[float, int]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    gifts: set[int] = field(default_factory=set)
    status: int = 0
    ended: bool = False


class Probe(asyncio.Protocol):
    def __init__(self, request: bytes, stream: Stream, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.stream = stream
        self.ready = ready
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.ready.done():
            self.buffer += data
            if not self.stream.status and b"\r\n" in self.buffer:
                self.stream.status = int(self.buffer.split(b" ", 2)[1])
            if self.stream.status not in (0, 200):
                self.ready.set_exception(RuntimeError(f"HTTP {self.stream.status}"))
                if self.transport is not None:
                    self.transport.close()
                return
            marker = self.buffer.find(b"event: snapshot")
            end = self.buffer.find(b"\n\n", marker) if marker >= 0 else -1
            if end < 0:
                return
            self._scan(self.buffer[: end + 2], now, record=False)  # the starting point, not a receipt
            self.ready.set_result(None)
            data, self.buffer = self.buffer[end + 2 :], b""
        window = self.buffer + data
        self._scan(window, now, record=True)
        self.buffer = window[-TAIL:]

    def _scan(self, window: bytes, now: float, record: bool) -> None:
        stream = self.stream
        for match in _PROJECT.finditer(window):
            project, seq = match.group(1).decode(), int(match.group(2))
            if seq > stream.seen.get(project, -1):
                stream.seen[project] = seq
                if record:
                    stream.totals.append((now, project, seq))
        for match in _GIFT.finditer(window):
            seq = int(match.group(1))
            if seq not in stream.gifts:
                stream.gifts.add(seq)
                if record:
                    stream.feed.append((now, seq))

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream.ended = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the snapshot"))


async def open_streams(host: str, port: int, path: str, count: int, concurrency: int) -> list[Stream]:
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    gate = asyncio.Semaphore(concurrency)
    streams = [Stream() for _ in range(count)]

    async def one(stream: Stream) -> None:
        async with gate:
            for attempt in range(20):
                ready: asyncio.Future[None] = loop.create_future()
                try:
                    await loop.create_connection(partial(Probe, request, stream, ready), host, port)
                    await asyncio.wait_for(ready, 30)
                    return
                except (OSError, RuntimeError, ConnectionError, TimeoutError):
                    stream.status = 0
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise RuntimeError("could not open a stream after 20 attempts")

    await asyncio.gather(*(one(s) for s in streams))
    return streams


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    streams = await open_streams(args.host, args.port, args.path, args.clients, args.concurrency)
    print(f"READY {len(streams)} {time.time() - started:.1f}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stdin_closed, args.max_seconds)
    return {
        "clients": len(streams),
        "ended": sum(1 for s in streams if s.ended),
        "totals": [s.totals for s in streams],
        "feed": [s.feed for s in streams],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
