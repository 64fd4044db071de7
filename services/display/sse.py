"""Server-Sent Events: the wire format, one bounded stream per screen, and the streaming response.

A message is encoded once per venue and the same bytes go to every screen. A screen
that cannot keep up is dropped (its stream ends and the browser reconnects with
Last-Event-ID) instead of making the venue wait for it or letting its backlog grow
without bound.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.display import metrics
from services.display.eager import run_eagerly

# Browsers wait this long before reconnecting by themselves after a stream ends.
RETRY_MS = 3000
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    # Proxies (nginx in particular) would otherwise buffer the stream.
    "X-Accel-Buffering": "no",
}


def encode_json(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    """One SSE message. ``data`` must be one line (compact JSON is)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


RETRY_FRAME = f"retry: {RETRY_MS}\n\n".encode()


class Delivery:
    """One message on its way to a venue's screens, timed once: when the last screen has it.

    Cheaper than timing every write, and it is the figure that matters (a histogram
    observation per screen per message costs more than the write itself).
    """

    __slots__ = ("queued_at", "remaining")

    def __init__(self, screens: int) -> None:
        self.queued_at = time.perf_counter()
        self.remaining = screens

    def done_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            metrics.FANOUT_SECONDS.observe(time.perf_counter() - self.queued_at)


class Client:
    """One screen's stream.

    A frame offered to an idle screen is written at once, by whoever offers it (the
    venue's fan-out loop): ``send`` only has to wait when the socket's buffer is full.
    Such a send is finished by a task, and frames offered meanwhile queue behind it, up
    to ``max_queue``; one more and the screen is dropped as slow. A dropped screen's
    stream is ended properly once its pending write is out, so the browser reconnects
    with Last-Event-ID; a screen that has gone (disconnected) is ended at once.
    """

    __slots__ = (
        "_finished",
        "_gone",
        "_queue",
        "_send",
        "_writer",
        "close_reason",
        "closed",
        "max_queue",
        "venue_id",
    )

    def __init__(self, venue_id: str, max_queue: int) -> None:
        self.venue_id = venue_id
        self.max_queue = max_queue
        self._queue: deque[tuple[bytes, Delivery | None]] = deque()
        self._send: Send | None = None
        self._writer: asyncio.Task[None] | None = None
        self._finished: asyncio.Future[bool] | None = None
        self._gone = False
        self.closed = False  # takes no more frames
        self.close_reason = ""

    def attach(self, send: Send) -> asyncio.Future[bool]:
        """Start writing to ``send``. The future says how the stream ended: True when it
        may be completed normally, False when the screen has gone."""
        self._send = send
        self._finished = asyncio.get_running_loop().create_future()
        self._write_queued()
        self._maybe_finish()
        return self._finished

    def offer(self, chunk: bytes, delivery: Delivery | None = None) -> bool:
        """Write or queue a frame; False when the client is closed or has just been dropped as slow."""
        if self.closed:
            return False
        if self._send is None or self._writer is not None:
            if len(self._queue) >= self.max_queue:
                self.close("slow")
                return False
            self._queue.append((chunk, delivery))
            return True
        self._write(chunk, (delivery,))
        return True

    def close(self, reason: str) -> None:
        """Take no more frames and drop what is queued; ``gone`` also abandons a pending write."""
        if reason == "gone":
            self._gone = True
            if self._writer is not None:
                self._writer.cancel()
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            for _, delivery in self._queue:
                if delivery is not None:
                    delivery.done_one()
            self._queue.clear()  # a dropped screen must not pin its backlog in memory
        self._maybe_finish()

    def end(self, reason: str, last: bytes | None = None) -> None:
        """Take no more frames; end the stream once what is queued (and ``last``) is written."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if last is not None:
            self._queue.append((last, None))
        if self._writer is None:
            self._write_queued()
        self._maybe_finish()

    def _write(self, chunk: bytes, deliveries: tuple[Delivery | None, ...]) -> None:
        assert self._send is not None
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        try:
            pending = run_eagerly(self._send(message))
        except Exception:  # the connection is unusable (an ASGI 2.4 server raises OSError)
            _done(deliveries)
            self.close("gone")
            return
        if pending is None:
            _done(deliveries)
        else:
            self._writer = asyncio.ensure_future(self._write_slowly(pending, deliveries))

    def _write_queued(self) -> None:
        if self._queue and self._send is not None:
            batch = tuple(self._queue)
            self._queue.clear()
            self._write(b"".join(c for c, _ in batch), tuple(d for _, d in batch))

    async def _write_slowly(self, pending: Awaitable[None], deliveries: tuple[Delivery | None, ...]) -> None:
        try:
            await pending
            _done(deliveries)
            deliveries = ()
            while self._queue and not self._gone:
                assert self._send is not None
                batch = tuple(self._queue)
                self._queue.clear()
                deliveries = tuple(d for _, d in batch)
                body = b"".join(c for c, _ in batch)
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
                _done(deliveries)
                deliveries = ()
        except asyncio.CancelledError:
            pass  # the screen has gone: close("gone") cancelled the write
        except Exception:
            self._gone = True
            self.closed = True
        finally:
            _done(deliveries)
            self._writer = None
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        finished = self._finished
        if finished is None or finished.done():
            return
        if self._gone:
            finished.set_result(False)
        elif self.closed and self._writer is None and not self._queue:
            finished.set_result(True)


def _done(deliveries: tuple[Delivery | None, ...]) -> None:
    for delivery in deliveries:
        if delivery is not None:
            delivery.done_one()


class EventStreamResponse(Response):
    """Streams one Client. The request's own task only starts the stream and waits for its
    end: frames are written by the fan-out (see Client), not by a task per screen."""

    media_type = "text/event-stream"

    def __init__(self, client: Client, first: bytes, on_close: Callable[[Client], None]) -> None:
        # Not Response.__init__: it would declare a Content-Length for the empty body.
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)
        self.client = client
        self.first = first
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.client
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        watcher.add_done_callback(lambda _: client.close("gone"))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": RETRY_FRAME + self.first, "more_body": True})
            if await client.attach(send):
                # Ending the response (rather than the connection) makes the browser reconnect
                # on its own after RETRY_MS, with Last-Event-ID: how a dropped screen recovers.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # ASGI 2.4 servers raise when the client has gone; nothing to tell it
        finally:
            watcher.cancel()
            client.close("gone")
            self.on_close(client)


async def _until_disconnect(receive: Receive) -> None:
    # The request has no body, so the next message is the disconnect, whenever it comes.
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        return  # any failure to receive means the connection is unusable: end the stream
