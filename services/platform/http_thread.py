"""Serve a small ASGI app (health, metrics) from a background thread."""

from __future__ import annotations

import threading

import uvicorn
from fastapi import FastAPI


def serve_in_thread(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    # Not the main thread, so uvicorn installs no signal handlers of its own.
    threading.Thread(target=server.run, name=f"http-{port}", daemon=True).start()
    return server
