"""Real HTTP servers for the payments tests: uvicorn in a thread on a loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.fixtures.ledger import eventually


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """The app served at the yielded URL until the block ends; its lifespan runs at both ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"test-http-{port}", daemon=True)
    thread.start()
    eventually(lambda: server.started or not thread.is_alive(), timeout=10, what=f"a server on port {port}")
    if not server.started:
        raise RuntimeError(f"the server on port {port} did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
