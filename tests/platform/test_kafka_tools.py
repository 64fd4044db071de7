"""Kafka's command-line tools through `charity-ledger kafka tool`, on the fetched jars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.contracts.topics import Topics
from services.platform.kafka_tools import TOOLS, UnknownTool, tool_command
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually, inputs_consumed, ledger_settings, start_ledger, stop_ledger
from tests.ledger.adapters.test_kafka_group_offsets import database_offsets, kafka_offsets
from tests.ledger.test_ledger_integration import produce

CLI = [sys.executable, "-m", "services.cli"]
LIBS = Path("/libs")
LOG4J = Path("/libs/tools-log4j2.properties")


def test_an_alias_runs_its_main_class_on_every_jar_with_the_configured_brokers() -> None:
    line = tool_command("java", LIBS, LOG4J, "consumer-groups", ["--describe", "--group", "g"], "h:9")
    assert line[line.index("-cp") + 1] == "/libs/*"
    assert line[line.index("-cp") + 2 :] == [
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server",
        "h:9",
        "--describe",
        "--group",
        "g",
    ]


def test_brokers_named_on_the_command_line_win() -> None:
    line = tool_command("java", LIBS, LOG4J, "topics", ["--bootstrap-server=b:1", "--list"], "h:9")
    assert "h:9" not in line and line[-2:] == ["--bootstrap-server=b:1", "--list"]


def test_a_class_name_runs_as_given_and_an_unknown_alias_is_refused() -> None:
    line = tool_command("java", LIBS, LOG4J, "kafka.tools.DumpLogSegments", ["--files", "x"], "h:9")
    assert line[-3:] == ["kafka.tools.DumpLogSegments", "--files", "x"]
    with pytest.raises(UnknownTool, match="consumer-groups"):
        tool_command("java", LIBS, LOG4J, "consumer-group", [], "h:9")


@pytest.mark.integration
def test_every_alias_names_a_class_in_the_fetched_jars(kafka_bootstrap: str) -> None:
    # The session broker fetched the jars; `javap` is not on a JRE, so ask the JVM itself.
    for name in ("consumer-groups", "topics", "configs", "get-offsets"):
        done = subprocess.run([*CLI, "kafka", "tool", name, "--version"], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout.strip() == "4.3.1"
    assert len(TOOLS) == len({tool.main_class for tool in TOOLS.values()})


@pytest.mark.integration
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the tool reads Kafka, not the database
def test_consumer_groups_describe_shows_the_ledgers_lag(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    settings = ledger_settings(kafka_bootstrap, topics, db_url)
    running = start_ledger(settings)
    engine = running.app.store.engine
    try:
        produce(kafka_bootstrap, topics, [*f.opened_project("p1"), f.confirmed("p1", 100, 0)])
        # Every event read first: a later batch's commit to Kafka may still be on its way
        # when the first batch's offsets already match.
        eventually(lambda: inputs_consumed(engine, kafka_bootstrap, topics), what="inputs consumed")
        stored = database_offsets(engine, settings.ledger_group)
        eventually(
            lambda: kafka_offsets(kafka_bootstrap, settings.ledger_group) == stored,
            what="Kafka's group offsets equal to the database's",
        )
    finally:
        stop_ledger(running)
    stored = database_offsets(engine, settings.ledger_group)
    produce(kafka_bootstrap, topics, [f.confirmed("p1", 100 + i, 0) for i in range(5)])  # not read: lag 5

    env = {**os.environ, "CHARITY_KAFKA_BOOTSTRAP": kafka_bootstrap}
    done = subprocess.run(
        [*CLI, "kafka", "tool", "consumer-groups", "--describe", "--group", settings.ledger_group],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    header, *rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert header[:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    described = {(row[1], int(row[2])): (int(row[3]), int(row[5])) for row in rows if row[3] != "-"}
    assert {partition: current for partition, (current, _) in described.items()} == stored
    assert sum(lag for _, lag in described.values()) == 5
