"""The API process: the composition root of the HTTP edge."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts.topics import Topics
from services.donors.adapters.store import DonorStore
from services.ledger.read import LedgerQueries, open_read_engine
from services.payments.wechatpay_client import WechatPayV3Provider
from services.platform.db import make_engine
from services.platform.health import broker_check, database_check
from services.platform.settings import Settings


def build(settings: Settings) -> FastAPI:
    engine = open_read_engine(settings.database_url)
    publisher = KafkaEventPublisher(
        settings.kafka_bootstrap, Topics(settings.topic_prefix), settings.produce_timeout_s
    )
    checks = {"database": database_check(engine), "kafka": broker_check(settings.kafka_bootstrap)}
    store = DonorStore(make_engine(settings.database_url), engine)  # reads share the read engine
    provider = (
        # No nonce store: Giving records each notification's nonce in the donor store with
        # what the notification writes, and a replay is refused there.
        WechatPayV3Provider.from_settings(settings) if settings.payment_provider == "wechatpay" else None
    )
    return create_app(settings, LedgerQueries(engine), publisher, checks, provider=provider, store=store)


def run(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(message)s")
    uvicorn.run(build(settings), host=settings.api_host, port=settings.api_port, log_level="info")
