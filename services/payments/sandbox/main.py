"""The sandbox process: `build(settings)` wires the simulated WeChat Pay; `run(settings)` serves it
on `sandbox_host`:`sandbox_port` (127.0.0.1 unless phones must reach its pay page)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import uvicorn
from fastapi import FastAPI, Request, Response

from services.payments.provider import ProviderRefused
from services.payments.sandbox import admin, merchant_api, pay_page
from services.payments.sandbox.notifier import Notifier, RetrySchedule
from services.payments.sandbox.platform_keys import SandboxKeyRing
from services.payments.sandbox.simulator import Merchant, WechatPaySimulator, origin_of
from services.payments.wechatpay_keys import (
    ensure_local_keys,
    load_api_v3_key,
    load_merchant_key,
    merchant_serial_no,
)
from services.payments.wechatpay_v3 import CHINA_TIME
from services.platform.settings import Settings


def build(
    settings: Settings,
    *,
    retry: RetrySchedule | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The sandbox app, from the key files `ensure_local_keys(settings)` makes (or real ones)."""
    clock = clock or (lambda: datetime.now(CHINA_TIME))
    # The real provider knows the merchant's certificate; the sandbox takes the public half of its key.
    merchant_key = load_merchant_key(settings)
    merchant = Merchant(
        mchid=settings.wechatpay_mch_id,
        appid=settings.wechatpay_appid,
        public_key=merchant_key.public_key(),
        serial_no=merchant_serial_no(merchant_key),
        api_v3_key=load_api_v3_key(settings),
        h5_origin=origin_of(settings.public_base_url),
    )
    keys = SandboxKeyRing.from_settings(settings, clock)
    notifier = Notifier(retry or RetrySchedule(), keys.sign_headers)
    pay_pages_at = settings.payment_public_url or settings.payment_base_url
    sim = WechatPaySimulator(merchant, keys, notifier, pay_pages_at, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await notifier.aclose()

    app = FastAPI(title="WeChat Pay v3 sandbox", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ProviderRefused)
    async def refused(_: Request, refusal: Exception) -> Response:
        assert isinstance(refusal, ProviderRefused)
        return sim.signed(refusal.status, {"code": refusal.code, "message": refusal.message})

    app.state.simulator = sim
    app.include_router(merchant_api.router)
    app.include_router(pay_page.router)
    app.include_router(admin.router)
    return app


def run(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
    ensure_local_keys(settings)
    uvicorn.run(build(settings), host=settings.sandbox_host, port=settings.sandbox_port, log_level="info")
