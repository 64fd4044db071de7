"""The `charity-ledger` command: one subcommand per part of the system."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="charity-ledger", description="慈善捐赠账本 · charity donation ledger"
    )
    parser.add_argument(
        "command",
        choices=["run", "kafka", "ledger", "api", "display", "migrate", "verify", "rebuild"],
        help="run: everything on embedded defaults; kafka: manage the local broker; "
        "ledger/api/display: one service; migrate: create/upgrade the database; "
        "verify: re-check chain, tree heads, balances, projections; rebuild: recompute projections",
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    parser.parse_args([command])
    if command == "kafka":
        from services.platform.kafka_cli import kafka_command

        return kafka_command(rest)
    if command == "run":
        from services.platform.supervisor import run

        return run(demo_data="--no-demo" not in rest)
    if command == "ledger":
        from services.ledger.main import run as run_ledger

        run_ledger()
        return 0
    if command == "api":
        from services.api.main import run as run_api

        run_api()
        return 0
    if command == "display":
        from services.display.main import run as run_display

        run_display()
        return 0
    if command == "verify":
        from services.ledger.ops.commands import verify_command

        return verify_command(rest)
    if command == "rebuild":
        from services.ledger.ops.commands import rebuild_command

        return rebuild_command(rest)
    if command == "migrate":
        from services.ledger.adapters.db import make_engine
        from services.ledger.adapters.store import LedgerStore
        from services.platform.settings import Settings

        LedgerStore(make_engine(Settings().database_url)).migrate()
        return 0
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
