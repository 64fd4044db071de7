"""Runs the Alembic migrations that create and evolve the ledger database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

# Alembic's "package:resource" form: it finds the scripts with importlib.resources,
# so they are read from wherever the package is installed.
MIGRATIONS = "services.ledger.adapters:migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
