"""`charity-ledger kafka start|stop|status|format|topics`: the local broker from a shell.

The broker's modules are imported by the commands, not here, so `charity-ledger --help`
does not load the Kafka client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.contracts.topics import INPUT_PARTITIONS
from services.platform.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from services.platform.kafka_cluster import LocalKafkaCluster
    from services.platform.kafka_launcher import LocalKafka

DEFAULT_DATA_DIR = REPO_ROOT / "var" / "kafka"

app = typer.Typer(
    name="kafka",
    help="The local Kafka broker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass(frozen=True)
class BrokerOptions:
    data_dir: Path
    port: int | None
    controller_port: int | None
    heap: str
    timeout: float

    def broker(self) -> LocalKafka:
        from services.platform.kafka_launcher import LocalKafka

        # The default port is read when a command runs, so a CHARITY_KAFKA_PORT
        # exported after import still counts.
        settings = Settings()
        port = self.port or settings.kafka_port
        controller = self.controller_port or (settings.kafka_controller_port if not self.port else None)
        return LocalKafka(self.data_dir, port, controller or port + 1, heap=self.heap)


@app.callback()
def broker_options(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="The broker's configuration, data and pid file.")] = (
        DEFAULT_DATA_DIR
    ),
    port: Annotated[
        int | None, typer.Option(help="Client port (default: CHARITY_KAFKA_PORT, else 9092).")
    ] = None,
    controller_port: Annotated[
        int | None, typer.Option(help="KRaft controller port (default: port + 1).")
    ] = None,
    heap: Annotated[str, typer.Option(help="JVM heap, e.g. 512m.")] = "512m",
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0,
) -> None:
    """The local Kafka broker; the options come before the command."""
    ctx.obj = BrokerOptions(data_dir, port, controller_port, heap, timeout)


@contextmanager
def _reported(command: str) -> Iterator[None]:
    """A broker failure as one line on stderr and exit status 1, not a traceback."""
    from kafka.errors import KafkaError

    from services.platform.kafka_launcher import KafkaStartError

    try:
        yield
    except (KafkaStartError, KafkaError, TimeoutError, RuntimeError) as error:
        typer.echo(f"kafka {command}: {error}", err=True)
        raise typer.Exit(1) from error


@app.command()
def start(ctx: typer.Context) -> None:
    """Start the broker (no-op if ours is running) and wait until it is ready."""
    options: BrokerOptions = ctx.obj
    broker = options.broker()
    with _reported("start"):
        broker.start(timeout=options.timeout)
    typer.echo(f"kafka running at {broker.bootstrap} (data in {broker.data_dir})")


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the broker this data directory's pid file names."""
    options: BrokerOptions = ctx.obj
    with _reported("stop"):
        options.broker().stop(timeout=options.timeout)
    typer.echo("kafka stopped")


@app.command()
def status(ctx: typer.Context) -> None:
    """Exit 0 if the broker is running, 1 if not."""
    options: BrokerOptions = ctx.obj
    broker = options.broker()
    with _reported("status"):
        running = broker.is_running()
    typer.echo(f"kafka {'running' if running else 'stopped'} at {broker.bootstrap} ({broker.data_dir})")
    if not running:
        raise typer.Exit(1)


@app.command("format")
def format_storage(ctx: typer.Context) -> None:
    """Write the configuration and format the storage (once)."""
    options: BrokerOptions = ctx.obj
    broker = options.broker()
    with _reported("format"):
        broker.ensure_jars()
        broker.configure()
        cluster_id = broker.format()
    typer.echo(f"cluster id {cluster_id} in {broker.data_dir / 'data'}")


@app.command()
def topics(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Option(help="Topic name prefix, e.g. 'bench.'.")] = "",
    input_partitions: Annotated[int, typer.Option(help="Partitions of the input topics.")] = INPUT_PARTITIONS,
    bootstrap: Annotated[
        str | None,
        typer.Option(help="An existing cluster's brokers (default: the local broker of these options)."),
    ] = None,
) -> None:
    """Create the topic catalogue on the running broker, or on an existing cluster (--bootstrap),
    replicated as CHARITY_TOPIC_REPLICATION_FACTOR and CHARITY_TOPIC_MIN_INSYNC_REPLICAS say."""
    from services.contracts.topics import Topics
    from services.platform.kafka_admin import ensure_topics, replication_of

    options: BrokerOptions = ctx.obj
    specs = Topics(prefix).specs(input_partitions)
    with _reported("topics"):
        ensure_topics(
            bootstrap or options.broker().bootstrap,
            specs,
            timeout=options.timeout,
            replication=replication_of(Settings()),
        )
    for spec in specs:
        layout = "compacted" if spec.compacted else ""
        typer.echo(f"{spec.name}\t{spec.partitions}\t{layout}".rstrip())


cluster_app = typer.Typer(
    help="A local cluster of combined controller+broker nodes on loopback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cluster_app, name="cluster")
DEFAULT_CLUSTER_DIR = REPO_ROOT / "var" / "kafka-cluster"


@dataclass(frozen=True)
class ClusterOptions:
    data_dir: Path
    nodes: int
    base_port: int
    heap: str
    timeout: float

    def cluster(self) -> LocalKafkaCluster:
        from services.platform.kafka_cluster import LocalKafkaCluster

        return LocalKafkaCluster(self.data_dir, self.nodes, self.base_port, heap=self.heap)


@cluster_app.callback()
def cluster_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path, typer.Option(help="The nodes' directories and cluster.json (ports, cluster id).")
    ] = DEFAULT_CLUSTER_DIR,
    nodes: Annotated[int, typer.Option(help="Nodes at the first start (then as cluster.json says).")] = 3,
    base_port: Annotated[
        int, typer.Option(help="Node n's client port is base + 2(n-1), its controller port one above.")
    ] = 19092,
    heap: Annotated[str, typer.Option(help="JVM heap of each node.")] = "384m",
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 120.0,
) -> None:
    """The local cluster; the options come before the command."""
    ctx.obj = ClusterOptions(data_dir, nodes, base_port, heap, timeout)


@cluster_app.command("start")
def cluster_start(
    ctx: typer.Context,
    create_topics: Annotated[
        bool, typer.Option("--topics/--no-topics", help="Create the topic catalogue, replicated.")
    ] = True,
    prefix: Annotated[str, typer.Option(help="Topic name prefix, e.g. 'bench.'.")] = "",
) -> None:
    """Start every node (no-op for those running), wait until all are brokers, create the topics
    (three copies, two in sync, unclean leader election off)."""
    from services.contracts.topics import Topics
    from services.platform.kafka_admin import ensure_topics

    options: ClusterOptions = ctx.obj
    cluster = options.cluster()
    with _reported("cluster start"):
        cluster.start(timeout=options.timeout)
        if create_topics:
            ensure_topics(
                cluster.bootstrap, Topics(prefix).specs(), options.timeout, replication=cluster.replication
            )
    typer.echo(f"kafka cluster running at {cluster.bootstrap} (data in {cluster.data_dir})")


@cluster_app.command("stop")
def cluster_stop(ctx: typer.Context) -> None:
    """Stop every node of the cluster."""
    options: ClusterOptions = ctx.obj
    with _reported("cluster stop"):
        options.cluster().stop()
    typer.echo("kafka cluster stopped")


@cluster_app.command("status")
def cluster_status(
    ctx: typer.Context, prefix: Annotated[str, typer.Option(help="Topic name prefix.")] = ""
) -> None:
    """Each node (pid, ports, up or down) and the leader and in-sync replicas of every partition
    of the catalogue's topics. Exit 0 if every node is up, 1 if not."""
    from services.contracts.topics import Topics

    options: ClusterOptions = ctx.obj
    cluster = options.cluster()
    nodes = cluster.status()
    for node in nodes:
        state = f"up, pid {node.pid}" if node.up else "down"
        ports = f"127.0.0.1:{node.port}\tcontroller :{node.controller_port}"
        typer.echo(f"node {node.node_id}\t{ports}\t{state}")
    with _reported("cluster status"):
        partitions = cluster.partitions([spec.name for spec in Topics(prefix).specs()])
    for p in partitions:
        isr = ",".join(map(str, p.isr))
        typer.echo(f"{p.topic}\t{p.partition}\tleader {p.leader}\tisr {isr}")
    if not all(node.up for node in nodes):
        raise typer.Exit(1)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
)
def tool(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="consumer-groups, topics, configs, … or a main class.")],
) -> None:
    """Run one of Kafka's command-line tools (kafka-tools, the broker's release) with the
    broker jars' classpath; the arguments after NAME are the tool's own, and
    --bootstrap-server defaults to CHARITY_KAFKA_BOOTSTRAP."""
    from services.platform.kafka_launcher import KafkaStartError, LocalKafka, _java_executable
    from services.platform.kafka_tools import UnknownTool, run_tool

    broker = LocalKafka(ctx.obj.data_dir)
    try:
        broker.ensure_jars()
        status = run_tool(_java_executable(), broker.libs_dir, name, ctx.args, Settings().kafka_bootstrap)
    except (UnknownTool, KafkaStartError) as error:
        typer.echo(f"kafka tool: {error}", err=True)
        raise typer.Exit(2 if isinstance(error, UnknownTool) else 1) from error
    raise typer.Exit(status)


def kafka_command(args: list[str]) -> int:
    """Run `charity-ledger kafka <args>` in this process and return its exit status."""
    try:
        app(args=args, prog_name="charity-ledger kafka")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0


if __name__ == "__main__":
    app(prog_name="charity-ledger kafka")
