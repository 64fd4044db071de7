"""A small SSE client for tests: reads a stream on a thread and records what arrives, and when."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None
    received_at: float


@dataclass
class SseStream:
    """One GET of an event stream over a raw socket (so a test can cut it like a network would)."""

    url: str
    last_event_id: str | None = None
    events: list[SseEvent] = field(default_factory=list)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._pending = ""
        self.ended = False

    def start(self) -> SseStream:
        parts = urlsplit(self.url)
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
        sock.settimeout(None)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
        if self.last_event_id:
            head += f"Last-Event-ID: {self.last_event_id}\r\n"
        sock.sendall((head + "\r\n").encode())
        self._sock = sock
        self._thread.start()
        return self

    def cut(self) -> None:
        """Drop the connection abruptly, as a network failure would."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        self._thread.join(5)

    def _read(self) -> None:
        assert self._sock is not None
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                chunk = self._sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            self.headers = {
                k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
            }
            body = _Dechunker()
            text = body.feed(rest)
            self._parse(text)
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    return
                self._parse(body.feed(chunk))
                if body.done:
                    return
        except OSError:
            return
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _parse(self, text: str) -> None:
        self._pending += text
        while "\n\n" in self._pending:
            block, self._pending = self._pending.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value
            if "data" not in fields:
                continue
            event = SseEvent(
                fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"), time.monotonic()
            )
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> SseEvent:
        """The first event (in arrival order) that satisfies the predicate."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while True:
                while index < len(self.events):
                    if predicate(self.events[index]):
                        return self.events[index]
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    raise TimeoutError(f"no matching event within {timeout}s; got {self.kinds()}")
                self._cond.wait(remaining)

    def wait_ended(self, timeout: float) -> bool:
        """True once the stream has ended (the gateway closed it, or the connection broke)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.ended, timeout)

    def kinds(self) -> list[str]:
        return [e.event for e in self.events]

    def data_events(self) -> list[SseEvent]:
        return [e for e in self.events if e.event in ("snapshot", "update")]

    @property
    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id]
        return ids[-1] if ids else None


class ResumingScreen:
    """A screen that stays on a venue as a browser's EventSource does: a stream that ends
    is opened again at once with the id it saw last (Last-Event-ID), for the gateway to
    resume. ``streams`` holds every connection made, in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.streams: list[SseStream] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_connected, daemon=True)

    def start(self) -> ResumingScreen:
        self.streams.append(SseStream(self.url).start())
        self._thread.start()
        return self

    def _keep_connected(self) -> None:
        while not self._stop.is_set():
            current = self.streams[-1]
            if not current.wait_ended(0.5):
                continue
            if current.status != 200:  # refused (a 503 while the gateway catches up): not in a tight loop
                self._stop.wait(1.0)
            if not self._stop.is_set():
                self.streams.append(SseStream(self.url, last_event_id=current.last_id).start())

    def data_events(self) -> list[SseEvent]:
        return [e for stream in list(self.streams) for e in stream.data_events()]

    def feed_ids(self) -> list[str]:
        """The id of every gift listed to this screen, in arrival order, repeats included."""
        return [str(gift["id"]) for e in self.data_events() for gift in e.data.get("feed", [])]

    def snapshots_after_the_first(self) -> int:
        """Reconnections answered with a fresh snapshot instead of a resume."""
        return sum(1 for stream in self.streams[1:] if stream.kinds()[:1] == ["snapshot"])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for stream in self.streams:
            stream.cut()


class _Dechunker:
    """HTTP/1.1 chunked transfer decoding, incrementally."""

    def __init__(self) -> None:
        self.buffer = b""
        self.done = False

    def feed(self, data: bytes) -> str:
        self.buffer += data
        out = b""
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.buffer[:line_end].split(b";")[0], 16)
            if size == 0:
                self.done = True
                break
            if len(self.buffer) < line_end + 2 + size + 2:
                break
            out += self.buffer[line_end + 2 : line_end + 2 + size]
            self.buffer = self.buffer[line_end + 2 + size + 2 :]
        return out.decode("utf-8")
