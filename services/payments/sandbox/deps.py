"""The sandbox routes' dependencies: the simulator `build` put on the app, and a verified body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.payments.sandbox.simulator import WechatPaySimulator


def simulator(request: Request) -> WechatPaySimulator:
    sim: WechatPaySimulator = request.app.state.simulator
    return sim


SimulatorDep = Annotated[WechatPaySimulator, Depends(simulator)]


async def merchant_signed_body(request: Request, sim: SimulatorDep) -> bytes:
    """The request body, once its Authorization proved it comes from the merchant (401 otherwise)."""
    body = await request.body()
    # Verified against the path and query exactly as they came over the wire, as WeChat Pay does.
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    url = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
    sim.authenticate(request.method, url, body, request.headers.get("Authorization"))
    return body


MerchantBody = Annotated[bytes, Depends(merchant_signed_body)]
