"""The local three-node cluster: its configuration (fast), and one real cluster for the module
that loses a node under acks=all writes and takes it back (integration)."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource

from services.contracts.topics import INPUT_PARTITIONS, Topics
from services.platform.kafka_admin import admin_client, ensure_topics
from services.platform.kafka_cli import kafka_command
from services.platform.kafka_cluster import LocalKafkaCluster, PartitionState
from services.platform.kafka_launcher import read_properties, server_properties
from tests.fixtures.ledger import eventually

# --- configuration, no broker --------------------------------------------------------


def test_every_node_names_all_three_voters_and_one_cluster_id(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster(tmp_path / "cluster", base_port=29092)
    for node in cluster.nodes:
        node.configure()
    props = [read_properties(node.config_path) for node in cluster.nodes]

    voters = "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert all("controller.quorum.bootstrap.servers" not in p for p in props)
    assert [p["listeners"] for p in props][1] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert {p["offsets.topic.replication.factor"] for p in props} == {"3"}
    assert {p["transaction.state.log.min.isr"] for p in props} == {"2"}
    assert cluster.bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert (cluster.replication.factor, cluster.replication.min_insync) == (3, 2)


def test_a_single_node_keeps_its_standalone_quorum(tmp_path: Path) -> None:
    props = server_properties(tmp_path, 19092, 19093)
    assert "controller.quorum.voters" not in props
    assert props["offsets.topic.replication.factor"] == "1"


def test_the_layout_is_kept_so_later_commands_find_the_same_ports(tmp_path: Path) -> None:
    first = LocalKafkaCluster(tmp_path, base_port=29192)
    first._save_layout()
    again = LocalKafkaCluster(tmp_path, nodes=5, base_port=1)

    assert again.quorum == first.quorum
    assert [n.port for n in again.nodes] == [29192, 29194, 29196]


def test_a_proxied_listener_is_advertised_at_its_proxy_and_kept_in_the_layout(tmp_path: Path) -> None:
    proxied = [(29392, 29492), (29394, 29494), (29396, 29496)]
    cluster = LocalKafkaCluster(tmp_path, base_port=29292, proxied=proxied)
    cluster.node(2).configure()
    props = read_properties(cluster.node(2).config_path)

    assert props["listeners"].endswith(",PROXIED://127.0.0.1:29394")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29294,PROXIED://127.0.0.1:29494"
    assert props["listener.security.protocol.map"].endswith(",PROXIED:PLAINTEXT")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # brokers and controllers: direct
    assert cluster.proxied_bootstrap == "127.0.0.1:29492,127.0.0.1:29494,127.0.0.1:29496"
    cluster._save_layout()
    assert LocalKafkaCluster(tmp_path).proxied_bootstrap == cluster.proxied_bootstrap
    assert "PROXIED" not in server_properties(tmp_path, 19092, 19093)["listeners"]  # off by default


def test_status_of_a_cluster_never_started_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kafka_command(["cluster", "--data-dir", str(tmp_path), "--base-port", "29292", "status"]) == 1
    out = capsys.readouterr().out
    assert out.count("down") == 3


# --- one real cluster ------------------------------------------------------------------


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # the cluster reaps the nodes it started and stops


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_node_killed_under_acks_all_loses_nothing_and_rejoins(
    kafka_cluster: LocalKafkaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = kafka_cluster
    topics = Topics(prefix=f"c{uuid.uuid4().hex[:6]}.")
    ensure_topics(cluster.bootstrap, topics.specs(), timeout=60.0, replication=cluster.replication)
    with admin_client(cluster.bootstrap, 10.0) as admin:
        configs = admin.describe_configs([ConfigResource("topic", topics.donations)])["topic"][
            topics.donations
        ]
    # Asked of any node: one that has not caught up yet describes none of the partitions, so the
    # check is of the first answer that describes them all (an empty one would pass it).
    donations: list[PartitionState] = []

    def every_partition_described() -> bool:
        donations[:] = cluster.partitions([topics.donations])
        return len(donations) == INPUT_PARTITIONS

    eventually(every_partition_described, timeout=30.0, what="every donations partition described")
    assert all(len(p.replicas) == 3 and len(p.isr) == 3 for p in donations), donations
    assert configs["min.insync.replicas"]["value"] == "2"
    assert configs["unclean.leader.election.enable"]["value"] == "false"

    producer = KafkaProducer(
        bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True, retries=2**31 - 1
    )
    try:
        sent = [f"gift-{n}".encode() for n in range(60)]
        for value in sent[:20]:
            producer.send(topics.donations, key=b"p1", value=value).get(timeout=30)

        # kill -9 the leader of the partition the records went to
        partition = producer.send(topics.donations, key=b"p1", value=sent[20]).get(timeout=30).partition
        leader = next(p.leader for p in cluster.partitions([topics.donations]) if p.partition == partition)
        pid = cluster.kill(leader)
        assert not _alive(pid)

        # still acknowledged with acks=all: two of three copies are in sync
        for value in sent[21:]:
            producer.send(topics.donations, key=b"p1", value=value).get(timeout=60)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topics.donations,
        bootstrap_servers=cluster.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        received = [record.value for record in itertools.islice(consumer, len(sent))]
    finally:
        consumer.close()
    assert received == sent  # every acknowledged record, once, in order

    assert kafka_command(["cluster", "--data-dir", str(cluster.data_dir), "status"]) == 1
    assert "down" in capsys.readouterr().out

    cluster.node(leader).start(timeout=120.0)

    def back_in_sync() -> bool:
        return all(leader in p.isr for p in cluster.partitions([topics.donations]))

    eventually(back_in_sync, timeout=90.0, what=f"node {leader} back in every ISR")
    status = ["cluster", "--data-dir", str(cluster.data_dir), "status", "--prefix", topics.prefix]
    assert kafka_command(status) == 0
    out = capsys.readouterr().out
    assert f"{topics.donations}\t{partition}\tleader" in out

    pids = [node.pid for node in cluster.status()]
    assert all(pids)
    cluster.stop()
    assert all(not node.up for node in cluster.status())
    assert not any(_alive(pid) for pid in pids if pid)
