"""Raw keep-alive HTTP/1.1 over asyncio for the benchmarks' clients: as little of the
machine's CPU as a client can take, so that it stays with what is measured."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx


class KeepAlive:
    """One keep-alive HTTP/1.1 connection; every answer read here carries a Content-Length, or is a 204."""

    def __init__(self, url: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port or 80
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """The answer's status and body. A connection the server closed while it sat idle is
        opened again once (every request sent here may be repeated harmlessly)."""
        try:
            return await self._exchange(method, target, body, headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            return await self._exchange(method, target, body, headers)

    async def _exchange(self, method: str, target: str, body: bytes, headers: str) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
        fields = dict(line.partition(":")[::2] for line in head[1:] if line)
        status = int(head[0].split(" ", 2)[1])
        if status == 204:  # no body, and no Content-Length (RFC 9110, 8.6)
            fields.setdefault("content-length", "0")
        if "content-length" not in fields:
            raise RuntimeError(f"{method} {target}: an answer without Content-Length: {head}")
        content = await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").strip() == "close":
            self.close()
        return status, content

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None


class Pool:
    """A few keep-alive connections, closed together; given several servers, the
    connections go to them in turn, as a load balancer would spread them."""

    def __init__(self, urls: str | Sequence[str], size: int) -> None:
        servers = [urls] if isinstance(urls, str) else list(urls)
        self.connections = [KeepAlive(servers[n % len(servers)]) for n in range(size)]

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
