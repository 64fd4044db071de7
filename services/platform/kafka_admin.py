"""Broker readiness and topic creation through kafka-python's admin client."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.net.compat import KafkaNetClient

from services.contracts.topics import TopicSpec
from services.platform.settings import Settings

# The active segment is never compacted, so a compacted topic whose segments
# roll only at the 1 GiB / 7 day defaults would keep every old value around for
# days. Smaller, hourly segments and a lower dirty ratio let the cleaner keep the
# totals topic close to one record per key.
COMPACTED_TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(60 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}

_TOPIC_ALREADY_EXISTS = kafka_errors.TopicAlreadyExistsError.errno


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the layout the catalogue asks for."""


@contextmanager
def admin_client(bootstrap: str, timeout: float) -> Iterator[Any]:
    """An admin client that is closed afterwards, and also when it fails to bootstrap.

    KafkaAdminClient starts its IO thread before bootstrapping in __init__; when the
    bootstrap times out the half-built client is never returned, so its thread and
    sockets would leak on every retry. The documented ``kafka_client`` factory lets us
    keep a handle on the network client and close it ourselves.
    """
    net_clients: list[Any] = []

    def make_net_client(**configs: Any) -> Any:
        client = KafkaNetClient(**configs)
        net_clients.append(client)
        return client

    timeout_ms = max(1, int(timeout * 1000))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="charity-ledger-admin",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            kafka_client=make_net_client,
        )
    except Exception:
        for client in net_clients:
            client.close()
        raise
    try:
        yield admin
    finally:
        admin.close()


def _port_accepts(bootstrap: str, timeout: float) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def broker_ready(bootstrap: str, timeout: float = 2.0, node_id: int | None = None) -> bool:
    """One probe: does the broker answer a cluster description with an unfenced broker
    (node `node_id` itself, when given)?"""
    # A refused TCP connect is the common case while the JVM boots; checking it first
    # avoids building (and tearing down) an admin client on every poll.
    if not _port_accepts(bootstrap, min(timeout, 0.5)):
        return False
    try:
        with admin_client(bootstrap, timeout) as admin:
            cluster = admin.describe_cluster()
    except Exception:
        return False
    return any(
        not broker.get("is_fenced", False) and node_id in (None, broker.get("broker_id"))
        for broker in cluster.get("brokers", [])
    )


def wait_for_broker(bootstrap: str, timeout: float = 30.0, poll_interval: float = 0.2) -> None:
    """Block until the broker at ``bootstrap`` answers metadata requests, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s")
        if broker_ready(bootstrap, timeout=min(2.0, remaining)):
            return
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))


def _error_text(topic_result: dict[str, Any]) -> str:
    message = topic_result.get("error_message")
    return str(message) if message else kafka_errors.for_code(topic_result["error_code"]).__name__


@dataclass(frozen=True)
class Replication:
    """How many brokers keep each partition, and how many must have a write before the
    broker acknowledges it to an acks=all producer (every producer here is one).

    One and one for the single local broker; on a cluster 3 and 2, so one broker can be
    lost without losing an acknowledged record or refusing writes. A replica that was
    not in sync never becomes leader (unclean leader election off): it would silently
    drop what the others acknowledged."""

    factor: int = 1
    min_insync: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_insync <= self.factor:
            raise ValueError(
                f"min.insync.replicas {self.min_insync} must be between 1 and the replication "
                f"factor {self.factor}"
            )

    def configs(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync), "unclean.leader.election.enable": "false"}


def replication_of(settings: Settings) -> Replication:
    """The replication the settings ask for (ValueError naming both when they disagree)."""
    return Replication(settings.topic_replication_factor, settings.topic_min_insync_replicas)


def topic_request(spec: TopicSpec, replication: Replication | None = None) -> dict[str, Any]:
    """The create-topics entry for one spec: its layout and retention, and its replication."""
    replication = replication or Replication()
    configs = replication.configs()
    if spec.compacted:
        configs |= COMPACTED_TOPIC_CONFIG
    elif spec.forever:
        configs |= {"retention.ms": "-1", "retention.bytes": "-1"}
    elif spec.retention_ms is not None:
        configs |= {"retention.ms": str(spec.retention_ms)}
    return {"num_partitions": spec.partitions, "replication_factor": replication.factor, "configs": configs}


def ensure_topics(
    bootstrap: str, specs: list[TopicSpec], timeout: float = 30.0, replication: Replication | None = None
) -> None:
    """Create the topics that do not exist yet and wait until every partition has a leader.

    Existing topics are left alone, but one with a different partition count is an
    error: input topics must share a partition count so that one ledger instance owns
    every event of a project (docs/architecture.md), and Kafka cannot shrink a topic later.
    So is one with another replication factor than asked for.
    """
    if not specs:
        return
    deadline = time.monotonic() + timeout
    with admin_client(bootstrap, timeout) as admin:
        # The dict form: kafka-python 3 deprecates NewTopic in favour of it.
        response = admin.create_topics(
            {spec.name: topic_request(spec, replication) for spec in specs},
            timeout_ms=int(timeout * 1000),
            raise_errors=False,
        )
        failures = [
            f"{topic['name']}: {_error_text(topic)}"
            for topic in response["topics"]
            if topic["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise RuntimeError("could not create topics: " + "; ".join(failures))

        described = described_when_ready(admin, [spec.name for spec in specs], deadline)

    factor = (replication or Replication()).factor
    mismatched = [
        f"{spec.name} has {len(described[spec.name]['partitions'])} partitions, expected {spec.partitions}"
        for spec in specs
        if len(described[spec.name]["partitions"]) != spec.partitions
    ] + [
        # Fewer copies than asked for would lose acknowledged records with one broker.
        f"{spec.name} has {copies} replicas, expected {factor}"
        for spec in specs
        if (copies := min(len(p["replica_nodes"]) for p in described[spec.name]["partitions"])) != factor
    ]
    if mismatched:
        raise TopicLayoutError("; ".join(mismatched))


def unready_reason(topic: dict[str, Any] | None) -> str | None:
    """Why a described topic cannot be used yet, or None when every partition has a leader."""
    if topic is None:
        return "not described"
    if topic.get("error_code", 0) != 0:
        return str(kafka_errors.for_code(topic["error_code"]).__name__)
    partitions = topic.get("partitions") or []
    if not partitions:
        return "no partitions described"
    leaderless = [
        p["partition_index"] for p in partitions if p.get("error_code", 0) != 0 or p.get("leader_id", -1) < 0
    ]
    return f"partitions {leaderless} have no leader" if leaderless else None


def described_when_ready(admin: Any, names: list[str], deadline: float) -> dict[str, dict[str, Any]]:
    """The topics' descriptions, from one answer in which every partition has a leader.

    Each broker learns of a new topic from the controller in its own time, and the admin
    client asks whichever broker it likes: one answer can be ready and the next, from a
    broker that has not caught up, still name the topic with no partitions (CI saw
    kafka-python's ``wait_for_topics`` return and the describe after it come back
    empty on a three-node cluster). So the layout is read from the answer that was ready.
    """
    while True:
        try:
            described = {topic["name"]: topic for topic in admin.describe_topics(names)}
        except kafka_errors.KafkaError as exc:
            if not exc.retriable:
                raise
            described = {}  # a broker between connections; ask again
        waiting = {name: reason for name in names if (reason := unready_reason(described.get(name)))}
        if not waiting:
            return described
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not ready in time: {waiting}")
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: list[str], timeout: float = 30.0) -> None:
    """Delete the named topics; ones that are already gone are fine."""
    if not names:
        return
    with admin_client(bootstrap, timeout) as admin:
        response = admin.delete_topics(names, timeout_ms=int(timeout * 1000), raise_errors=False)
    unknown = kafka_errors.UnknownTopicOrPartitionError.errno
    failures = [
        f"{topic['name']}: {_error_text(topic)}"
        for topic in response["topics"]
        if topic["error_code"] not in (0, unknown)
    ]
    if failures:
        raise RuntimeError("could not delete topics: " + "; ".join(failures))
