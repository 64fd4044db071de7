"""Run a coroutine at once, up to its first suspension, as Python 3.12's eager tasks do.

Fanning a message out to ten thousand screens through ten thousand task wake-ups
costs more than the socket writes themselves. An ASGI ``send`` completes without
suspending unless the socket's buffer is full, so it is run right here; only a
send that really has to wait is handed to a task, which carries on from the exact
point where the coroutine stopped.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


def run_eagerly(awaitable: Awaitable[None]) -> Awaitable[None] | None:
    """None if ``awaitable`` (a coroutine) ran to completion; otherwise an awaitable that
    finishes it. An exception raised before the first suspension propagates from here.
    """
    if not isinstance(awaitable, Coroutine):
        return awaitable  # not a coroutine: nothing to run eagerly, await it as it is
    coro = awaitable
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return _resume(coro, yielded)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """Hand each value the coroutine yields (a future it waits on) to whoever awaits
    this, and pass back what they send or throw (the result, or a cancellation)."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # forwarded to the coroutine, not swallowed
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return
