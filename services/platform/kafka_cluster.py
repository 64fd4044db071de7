"""Runs a local Kafka cluster on loopback: N combined controller+broker nodes, each a
`LocalKafka` in a directory of its own, sharing one cluster id and one static quorum.

The fault tests and the cluster benchmark run on it; `charity-ledger kafka cluster`
starts, stops and describes it (docs/operations.md, "A local three-node cluster").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.platform.kafka_admin import Replication, admin_client
from services.platform.kafka_launcher import (
    KafkaStartError,
    LocalKafka,
    ProxiedListener,
    Quorum,
    new_cluster_id,
)

LAYOUT_FILE = "cluster.json"
DEFAULT_BASE_PORT = 19092  # node n: client port base + 2(n-1), controller port one above


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None  # None: not running
    port: int
    controller_port: int

    @property
    def up(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1: no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class LocalKafkaCluster:
    """N nodes under ``data_dir``: node-1/, node-2/, … and cluster.json, which fixes the
    cluster id and every node's ports at the first start so later commands find them.

    Every node is a voter of the controller quorum (`controller.quorum.voters` names all
    of them) and a broker; a majority of nodes must be up for the cluster to serve.
    """

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 3,
        base_port: int = DEFAULT_BASE_PORT,
        ports: list[tuple[int, int]] | None = None,
        heap: str = "384m",
        libs_dir: Path | None = None,
        proxied: list[tuple[int, int]] | None = None,
    ) -> None:
        """`proxied`, one (port, advertised port) per node: each node also listens on a
        PROXIED listener advertised at the port of a proxy in front of it (off by default)."""
        self.data_dir = Path(data_dir).resolve()
        saved = self._saved_layout()
        if saved is not None:
            cluster_id, ports = saved["cluster_id"], [tuple(pair) for pair in saved["ports"]]
            proxied = [tuple(pair) for pair in saved.get("proxied") or []] or None
        else:
            if nodes < 1:
                raise ValueError(f"a cluster needs at least one node, not {nodes}")
            cluster_id = new_cluster_id()
            ports = ports or [(base_port + 2 * n, base_port + 2 * n + 1) for n in range(nodes)]
        self.quorum = Quorum(cluster_id, tuple(controller for _, controller in ports))
        if proxied is not None and len(proxied) != len(ports):
            raise ValueError(f"{len(proxied)} proxied listeners for {len(ports)} nodes")
        listeners = [ProxiedListener(*pair) for pair in proxied] if proxied else [None] * len(ports)
        self.nodes = [
            LocalKafka(
                self.data_dir / f"node-{n}",
                port=port,
                controller_port=controller,
                heap=heap,
                libs_dir=libs_dir,
                node_id=n,
                quorum=self.quorum,
                proxied=listener,
            )
            for n, ((port, controller), listener) in enumerate(zip(ports, listeners, strict=True), start=1)
        ]

    def _saved_layout(self) -> dict[str, Any] | None:
        path = self.data_dir / LAYOUT_FILE
        if not path.exists():
            return None
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _save_layout(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout = {
            "cluster_id": self.quorum.cluster_id,
            "ports": [[node.port, node.controller_port] for node in self.nodes],
        }
        if any(node.proxied for node in self.nodes):
            layout["proxied"] = [
                [node.proxied.port, node.proxied.advertised_port] for node in self.nodes if node.proxied
            ]
        (self.data_dir / LAYOUT_FILE).write_text(json.dumps(layout, indent=2) + "\n", encoding="utf-8")

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def proxied_bootstrap(self) -> str:
        """Every node through its proxy (the PROXIED listeners); "" without them."""
        return ",".join(node.proxied_bootstrap for node in self.nodes if node.proxied_bootstrap)

    @property
    def replication(self) -> Replication:
        """What the catalogue's topics get here: three copies (or one per node, if fewer),
        all but one of them in sync before a write is acknowledged."""
        copies = min(3, len(self.nodes))
        return Replication(copies, max(1, copies - 1))

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def start(self, timeout: float = 120.0) -> None:
        """Launch every node that is not running, then wait until each is an unfenced broker.

        None can be ready before a majority of the controllers is up, so all are
        launched before any is waited for. A cluster that does not come up is stopped."""
        deadline = time.monotonic() + timeout
        self._save_layout()
        for node in self.nodes:
            node.launch()
        try:
            for node in self.nodes:
                node.wait_ready(max(1.0, deadline - time.monotonic()))
        except KafkaStartError:
            self.stop(timeout=10.0)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once: one by one, the last ones would wait for a quorum that
        the first ones took away."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for done in [pool.submit(node.stop, timeout) for node in self.nodes]:
                done.result()

    def kill(self, node_id: int) -> int:
        """kill -9 one node (a fault to test against); returns the pid it had."""
        node = self.node(node_id)
        pid = node.pid
        if pid is None:
            raise KafkaStartError(f"node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)  # our child when this process started it: reap it
        return pid

    def status(self) -> list[NodeStatus]:
        return [NodeStatus(node.node_id, node.pid, node.port, node.controller_port) for node in self.nodes]

    def partitions(self, topics: list[str], timeout: float = 10.0) -> list[PartitionState]:
        """Leader, replicas and in-sync replicas of every partition of these topics, as the
        running nodes tell it (topics that do not exist are left out)."""
        running = [node.bootstrap for node in self.nodes if node.pid is not None]
        if not running:
            return []
        with admin_client(",".join(running), timeout) as admin:
            existing = set(admin.list_topics())
            wanted = [name for name in topics if name in existing]
            described = admin.describe_topics(wanted) if wanted else []
        return sorted(
            (
                PartitionState(
                    topic["name"],
                    p["partition_index"],
                    p["leader_id"],
                    tuple(p["replica_nodes"]),
                    tuple(p["isr_nodes"]),
                )
                for topic in described
                for p in topic["partitions"]
            ),
            key=lambda state: (state.topic, state.partition),
        )
