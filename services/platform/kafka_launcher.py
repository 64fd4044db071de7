"""Runs one local Kafka broker (KRaft, combined broker and controller) from the official jars."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from services.platform.kafka_admin import broker_ready

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIBS_DIR = REPO_ROOT / "var" / "kafka-libs"
MAVEN_PROJECT_DIR = REPO_ROOT / "deploy" / "kafka"
LOG_TAIL_LINES = 40
# deploy/kafka/pom.xml fetches both; a var/kafka-libs from before the tools were added is topped up.
REQUIRED_JARS = ("kafka_2.13-*.jar", "kafka-tools-*.jar")

# Written with ${sys:kafka.logs.dir} rather than a literal path so that the file
# stays valid if the data directory is moved; the launcher always sets the property.
LOG4J2_PROPERTIES = """\
status = warn
name = charity-local-kafka

appender.file.type = RollingFile
appender.file.name = ServerLog
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = ServerLog

# Every component dumps its full configuration at INFO (about 2000 lines per
# start); server.properties on disk already says what was configured, and the
# dump would push the real cause of a failed start out of the log tail.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN

# Kafka's own default: one line per request is far too much for a dev broker.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaStartError(RuntimeError):
    """The local broker could not be provisioned, formatted or started."""


@dataclass(frozen=True)
class Quorum:
    """The controller voters of a cluster of combined nodes, fixed when it is formatted
    (a static quorum: every node's `controller.quorum.voters` names all of them)."""

    cluster_id: str
    controller_ports: tuple[int, ...]  # node n (from 1) listens on controller_ports[n - 1]

    @property
    def voters(self) -> str:
        return ",".join(f"{n}@127.0.0.1:{port}" for n, port in enumerate(self.controller_ports, start=1))

    @property
    def size(self) -> int:
        return len(self.controller_ports)


@dataclass(frozen=True)
class ProxiedListener:
    """An extra client listener, PROXIED, on `port`, advertised at `advertised_port`: the
    port of a proxy in front of it (a fault test cuts the proxy). Clients bootstrapped on
    it are sent to the proxies of every node; the inter-broker and controller listeners,
    and clients of the PLAINTEXT one, stay direct."""

    port: int
    advertised_port: int


def server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    node_id: int = 1,
    quorum: Quorum | None = None,
    proxied: ProxiedListener | None = None,
) -> dict[str, str]:
    """The broker configuration for one combined node: its own controller quorum, or one
    of the `quorum`'s voters; with `proxied`, a second client listener behind a proxy."""
    extra = f",PROXIED://127.0.0.1:{proxied.port}" if proxied else ""
    extra_advertised = f",PROXIED://127.0.0.1:{proxied.advertised_port}" if proxied else ""
    # Kafka's internal topics (group offsets, transactions) get as many copies as the
    # production topics would, at most three, so that losing one node loses no commit.
    copies = str(min(3, quorum.size)) if quorum else "1"
    min_isr = str(max(1, min(3, quorum.size) - 1)) if quorum else "1"
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{extra}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}{extra_advertised}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        + (",PROXIED:PLAINTEXT" if proxied else ""),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        **(
            {"controller.quorum.voters": quorum.voters}
            if quorum
            # Dynamic quorum (KIP-853): the node was formatted with --standalone, so it
            # finds the voter set in its own metadata log rather than in static config.
            else {"controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}"}
        ),
        "log.dirs": str(data_dir / "data"),
        # Topics come only from the catalogue; a typo in a topic name must fail
        # rather than silently create a one-partition topic.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # The internal topics default to three replicas, which one broker can't host.
        "offsets.topic.replication.factor": copies,
        "transaction.state.log.replication.factor": copies,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": copies,
        "share.coordinator.state.topic.min.isr": min_isr,
        # There is only ever one member joining at startup; waiting 3 s for more
        # would only slow down every consumer group in the tests.
        "group.initial.rebalance.delay.ms": "0",
    }


def render_properties(properties: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID as 22 characters of unpadded base64url.

    Like Kafka's Uuid.randomUuid it never starts with '-', which the storage tool's
    argument parser would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def read_properties(path: Path) -> dict[str, str]:
    """Enough of the .properties format for files Kafka writes (no continuations)."""
    result: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "!")) and "=" in stripped:
            key, _, value = stripped.partition("=")
            result[key.strip()] = value.strip()
    return result


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return ""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def first_error(path: Path, lines: int = 3) -> str:
    """The first ERROR line of a log and the lines after it: the cause of a failed start,
    which the hundreds of lines of the broker's shutdown push out of the tail."""
    if not path.exists():
        return ""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if "] ERROR " in line:
                return line + "".join(next(handle, "") for _ in range(lines))
    return ""


def _java_executable() -> str:
    # Same precedence as Kafka's kafka-run-class.sh: JAVA_HOME first, then PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaStartError("no java executable: install a JDK (17+) or set JAVA_HOME")
    return java


def _process_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self").exists():
        try:
            # The state letter follows the command name, which is in parentheses
            # and may itself contain spaces or ')'.
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our child, so it doesn't linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class LocalKafka:
    """One broker process, owned through the pid file in its data directory.

    Everything lives under ``data_dir``: server.properties, log4j2.properties,
    data/ (the log dirs, formatted once), logs/ and kafka.pid. Alone it is its own
    controller quorum; with a `quorum` it is node `node_id` of a cluster
    (`LocalKafkaCluster`).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        libs_dir: Path | None = None,
        node_id: int = 1,
        quorum: Quorum | None = None,
        proxied: ProxiedListener | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.proxied = proxied
        self.controller_port = controller_port
        self.heap = heap
        self.libs_dir = (libs_dir or DEFAULT_LIBS_DIR).resolve()
        self.node_id = node_id
        self.quorum = quorum
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def proxied_bootstrap(self) -> str | None:
        """Where a client reaches this node through its proxy (None: no proxied listener)."""
        return f"127.0.0.1:{self.proxied.advertised_port}" if self.proxied else None

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def meta_path(self) -> Path:
        return self.data_dir / "data" / "meta.properties"

    @property
    def cluster_id(self) -> str | None:
        if not self.meta_path.exists():
            return None
        return read_properties(self.meta_path).get("cluster.id")

    def _classpath(self) -> str:
        # The JVM expands a trailing '*' to every jar in the directory itself.
        return str(self.libs_dir / "*")

    def has_jars(self) -> bool:
        """The broker's jars and Kafka's command-line tools (`charity-ledger kafka tool`)."""
        return all(any(self.libs_dir.glob(pattern)) for pattern in REQUIRED_JARS)

    def ensure_jars(self) -> Path:
        """Make sure the broker jars are in libs_dir, resolving them with Maven if not."""
        if self.has_jars():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaStartError(
                f"no Kafka jars in {self.libs_dir} and no mvn on PATH to fetch them "
                f"(see {MAVEN_PROJECT_DIR / 'pom.xml'})"
            )
        command = [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, cwd=MAVEN_PROJECT_DIR, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not self.has_jars():
            output = (result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:]
            raise KafkaStartError(
                f"fetching the Kafka jars failed (exit {result.returncode}): {' '.join(command)}\n"
                + "\n".join(output)
            )
        return self.libs_dir

    def configure(self) -> None:
        """Write server.properties and the log4j2 configuration (rewritten on every start)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        properties = server_properties(
            self.data_dir, self.port, self.controller_port, self.node_id, self.quorum, self.proxied
        )
        self.config_path.write_text(render_properties(properties), encoding="utf-8")
        self.log4j_path.write_text(LOG4J2_PROPERTIES, encoding="utf-8")

    def format(self) -> str:
        """Format the log directory once and return the cluster id; a formatted one is reused."""
        existing = self.cluster_id
        if existing is not None:
            return existing
        if not self.config_path.exists():
            self.configure()
        cluster_id = self.quorum.cluster_id if self.quorum else new_cluster_id()
        # A cluster's voters are in every node's configuration; a lone node finds itself
        # as the one voter it was formatted with.
        quorum_mode = [] if self.quorum else ["--standalone"]
        command = [
            _java_executable(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            *quorum_mode,
            "-t",
            cluster_id,
            "-c",
            str(self.config_path),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaStartError(
                f"formatting {self.data_dir / 'data'} failed (exit {result.returncode}):\n"
                + result.stdout
                + result.stderr
            )
        return cluster_id

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        """The pid is alive and is a broker running our server.properties (not a reused pid)."""
        if not _process_alive(pid):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():
            return True  # No /proc to ask (not Linux): trust the pid file.
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in args and str(self.config_path).encode() in args

    def is_running(self) -> bool:
        pid = self._read_pid()
        return pid is not None and self._is_our_broker(pid)

    def _launch_command(self) -> list[str]:
        return [
            _java_executable(),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            # The GC settings of Kafka's kafka-run-class.sh: short pauses matter more
            # than throughput for a broker that sits behind latency-sensitive tests.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_path),
        ]

    def _failure(self, reason: str) -> KafkaStartError:
        parts = [f"Kafka broker at {self.bootstrap} ({self.data_dir}) {reason}"]
        for path in (self.log_dir / "server.log", self.log_dir / "stdout.log"):
            tail = log_tail(path)
            cause = first_error(path)
            if cause and cause not in tail:
                parts.append(f"--- first error in {path} ---\n{cause.rstrip()}")
            if tail.strip():
                parts.append(f"--- last lines of {path} ---\n{tail.rstrip()}")
        return KafkaStartError("\n".join(parts))

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (unless ours is already running) and wait until it serves metadata."""
        deadline = time.monotonic() + timeout
        if self.launch():
            self._wait_ready(deadline, timeout)
        else:
            self._wait_started(deadline, timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the node launched serves metadata as an unfenced broker; stop it if not."""
        self._wait_started(time.monotonic() + timeout, timeout)

    def _wait_started(self, deadline: float, timeout: float) -> None:
        try:
            self._wait_ready(deadline, timeout)
        except KafkaStartError:
            # A broker that never became ready is not left behind half-started.
            self.stop(timeout=10.0)
            raise

    def launch(self) -> bool:
        """Start the broker process without waiting for it; True if ours was running already.

        A cluster's nodes are launched together: none is ready before a majority
        of the controllers is up."""
        if self.is_running():
            return True
        self.pid_path.unlink(missing_ok=True)  # stale: its process is gone
        self.ensure_jars()
        self.configure()
        self.format()
        with (self.log_dir / "stdout.log").open("wb") as stdout:
            # A session of its own, so that Ctrl-C in the terminal that started it
            # (or the end of a pytest run's process group) doesn't take it down.
            self._process = subprocess.Popen(
                self._launch_command(),
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._process.pid}\n")
        return False

    @property
    def pid(self) -> int | None:
        """The pid of our running broker, None when it is not running."""
        pid = self._read_pid()
        return pid if pid is not None and self._is_our_broker(pid) else None

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise self._failure(f"exited with code {self._process.returncode} during startup")
            if self._process is None and not self.is_running():
                raise self._failure("is no longer running")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure(f"did not answer metadata requests within {timeout:.0f}s")
            # Short probes, so a broker that dies while we wait is noticed within seconds.
            if broker_ready(self.bootstrap, timeout=min(2.0, remaining), node_id=self.node_id):
                return
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker named in our pid file: SIGTERM, then SIGKILL after ``timeout``."""
        pid = self._read_pid()
        if pid is not None and self._is_our_broker(pid):
            # It may exit on its own between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                if not self._wait_exit(pid, timeout):
                    os.kill(pid, signal.SIGKILL)
                    self._wait_exit(pid, 10.0)
        self.pid_path.unlink(missing_ok=True)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1.0)
            self._process = None

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _process_alive(pid):
                return True
            time.sleep(0.1)
        return False
