"""Real HTTP servers for the payments tests: uvicorn in a thread on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """The app served at the yielded URL until the block ends; its lifespan runs at both ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"test-http-{port}", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 10, f"a server on port {port}")
    if not server.started:
        raise RuntimeError(f"the server on port {port} did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Check the condition until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
