"""`charity-ledger kafka start|stop|status|format|topics`: the local broker from a shell."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kafka.errors import KafkaError

from services.contracts.topics import INPUT_PARTITIONS, Topics
from services.platform.kafka_admin import ensure_topics
from services.platform.kafka_launcher import REPO_ROOT, KafkaStartError, LocalKafka

DEFAULT_DATA_DIR = REPO_ROOT / "var" / "kafka"
PORT_ENV = "CHARITY_KAFKA_PORT"


def _parser() -> argparse.ArgumentParser:
    # The default port is read when the parser is built, not at import, so a
    # CHARITY_KAFKA_PORT exported after import still counts.
    default_port = int(os.environ.get(PORT_ENV, "9092"))
    parser = argparse.ArgumentParser(prog="charity-ledger kafka", description="The local Kafka broker.")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"client port (env {PORT_ENV}, default %(default)s)"
    )
    parser.add_argument(
        "--controller-port", type=int, default=None, help="KRaft controller port (default: port + 1)"
    )
    parser.add_argument("--heap", default="512m", help="JVM heap, e.g. 512m (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start", help="start the broker (no-op if ours is running) and wait until ready")
    commands.add_parser("stop", help="stop the broker this data directory's pid file names")
    commands.add_parser("status", help="exit 0 if the broker is running, 1 if not")
    commands.add_parser("format", help="write the configuration and format the storage (once)")
    topics = commands.add_parser("topics", help="create the topic catalogue on the running broker")
    topics.add_argument("--prefix", default="", help="topic name prefix, e.g. 'bench.'")
    topics.add_argument("--input-partitions", type=int, default=INPUT_PARTITIONS)
    return parser


def kafka_command(args: list[str]) -> int:
    options = _parser().parse_args(args)
    controller_port = options.controller_port or options.port + 1
    broker = LocalKafka(options.data_dir, options.port, controller_port, heap=options.heap)
    try:
        if options.command == "start":
            broker.start(timeout=options.timeout)
            print(f"kafka running at {broker.bootstrap} (data in {broker.data_dir})")
        elif options.command == "stop":
            broker.stop(timeout=options.timeout)
            print("kafka stopped")
        elif options.command == "status":
            running = broker.is_running()
            print(f"kafka {'running' if running else 'stopped'} at {broker.bootstrap} ({broker.data_dir})")
            return 0 if running else 1
        elif options.command == "format":
            broker.ensure_jars()
            broker.configure()
            print(f"cluster id {broker.format()} in {broker.data_dir / 'data'}")
        elif options.command == "topics":
            specs = Topics(options.prefix).specs(options.input_partitions)
            ensure_topics(broker.bootstrap, specs, timeout=options.timeout)
            for spec in specs:
                layout = "compacted" if spec.compacted else ""
                print(f"{spec.name}\t{spec.partitions}\t{layout}".rstrip())
    except (KafkaStartError, KafkaError, TimeoutError, RuntimeError) as error:
        print(f"kafka {options.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(kafka_command(sys.argv[1:]))
