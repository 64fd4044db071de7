"""Kafka's own command-line tools (org.apache.kafka:kafka-tools, the broker's release) on the
jars deploy/kafka/pom.xml fetches: `charity-ledger kafka tool consumer-groups --describe …`.

The aliases are the names of Kafka's bin/kafka-<alias>.sh scripts, which this checkout does
not have; any other tool runs by its class name. Tools that talk to the brokers get
`--bootstrap-server` from CHARITY_KAFKA_BOOTSTRAP unless the command line names one.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOLS_PACKAGE = "org.apache.kafka.tools"
# Warnings and errors to stderr, as Kafka's own config/tools-log4j2.yaml does; without a
# configuration log4j2 complains about the missing file before every run.
LOG4J2_TOOLS = """\
status = error
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDERR
"""


@dataclass(frozen=True)
class Tool:
    main_class: str
    bootstrap: bool = True  # takes --bootstrap-server


TOOLS: dict[str, Tool] = {
    "consumer-groups": Tool(f"{TOOLS_PACKAGE}.consumer.group.ConsumerGroupCommand"),
    "topics": Tool(f"{TOOLS_PACKAGE}.TopicCommand"),
    "configs": Tool("kafka.admin.ConfigCommand"),
    "get-offsets": Tool(f"{TOOLS_PACKAGE}.GetOffsetShell"),
    "console-consumer": Tool(f"{TOOLS_PACKAGE}.consumer.ConsoleConsumer"),
    "console-producer": Tool(f"{TOOLS_PACKAGE}.ConsoleProducer"),
    "groups": Tool(f"{TOOLS_PACKAGE}.GroupsCommand"),
    "metadata-quorum": Tool(f"{TOOLS_PACKAGE}.MetadataQuorumCommand"),
    "reassign-partitions": Tool(f"{TOOLS_PACKAGE}.reassign.ReassignPartitionsCommand"),
    "leader-election": Tool(f"{TOOLS_PACKAGE}.LeaderElectionCommand"),
    "log-dirs": Tool(f"{TOOLS_PACKAGE}.LogDirsCommand"),
    "delete-records": Tool(f"{TOOLS_PACKAGE}.DeleteRecordsCommand"),
    "transactions": Tool(f"{TOOLS_PACKAGE}.TransactionsCommand"),
    "broker-api-versions": Tool(f"{TOOLS_PACKAGE}.BrokerApiVersionsCommand"),
    "features": Tool(f"{TOOLS_PACKAGE}.FeatureCommand"),
    "acls": Tool(f"{TOOLS_PACKAGE}.AclCommand"),
    "cluster": Tool(f"{TOOLS_PACKAGE}.ClusterTool", bootstrap=False),  # takes it after a subcommand
}


class UnknownTool(ValueError):
    pass


def resolve(name: str) -> Tool:
    """An alias, or a main class given by its full name (no --bootstrap-server added)."""
    if name in TOOLS:
        return TOOLS[name]
    if "." in name:
        return Tool(name, bootstrap=False)
    raise UnknownTool(f"no Kafka tool {name!r}: use one of {', '.join(TOOLS)} or a main class name")


def tool_command(
    java: str, libs_dir: Path, log4j_config: Path, name: str, args: list[str], bootstrap: str
) -> list[str]:
    """The `java -cp '<libs>/*' <main class> …` line that runs one tool."""
    tool = resolve(name)
    given = any(arg == "--bootstrap-server" or arg.startswith("--bootstrap-server=") for arg in args)
    extra = ["--bootstrap-server", bootstrap] if tool.bootstrap and not given and "--help" not in args else []
    return [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        str(libs_dir / "*"),  # the JVM expands a trailing '*' to every jar in the directory
        tool.main_class,
        *extra,
        *args,
    ]


def run_tool(java: str, libs_dir: Path, name: str, args: list[str], bootstrap: str) -> int:
    """Run a tool with this terminal's stdin, stdout and stderr; its exit status."""
    log4j_config = libs_dir / "tools-log4j2.properties"
    if not log4j_config.exists():
        log4j_config.write_text(LOG4J2_TOOLS, encoding="utf-8")
    return subprocess.run(
        tool_command(java, libs_dir, log4j_config, name, args, bootstrap), check=False
    ).returncode
