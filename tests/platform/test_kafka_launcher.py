"""The local Kafka launcher: configuration rendering (fast) and a real broker (integration)."""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from services.contracts.topics import Topics, TopicSpec
from services.platform.kafka_admin import COMPACTED_TOPIC_CONFIG, admin_client, ensure_topics, topic_request
from services.platform.kafka_cli import kafka_command
from services.platform.kafka_launcher import (
    KafkaStartError,
    LocalKafka,
    first_error,
    log_tail,
    new_cluster_id,
    read_properties,
    server_properties,
)
from tests.fixtures.kafka import free_ports

# --- configuration, no broker --------------------------------------------------------


def test_server_properties_make_a_single_node_kraft_cluster(tmp_path: Path) -> None:
    props = server_properties(tmp_path, port=19092, controller_port=19093)

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props  # dynamic quorum, formatted --standalone
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key


def test_configure_writes_files_that_read_back(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", port=29092, controller_port=29093)
    broker.configure()

    assert read_properties(broker.config_path) == server_properties(broker.data_dir, 29092, 29093)
    log4j = broker.log4j_path.read_text()
    assert "${sys:kafka.logs.dir}/server.log" in log4j
    assert "rootLogger.level = INFO" in log4j
    assert broker.log_dir.is_dir()
    assert broker.bootstrap == "127.0.0.1:29092"
    assert broker.cluster_id is None  # configured, not formatted


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_topic_requests_use_one_replica_and_compact_only_when_asked() -> None:
    plain = topic_request(TopicSpec("a", 3))
    compacted = topic_request(TopicSpec("b", 3, compacted=True))

    single = {"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}
    assert plain == {"num_partitions": 3, "replication_factor": 1, "configs": single}
    assert compacted["configs"]["cleanup.policy"] == "compact"
    assert compacted["configs"] == single | COMPACTED_TOPIC_CONFIG


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99\n"
    assert log_tail(tmp_path / "missing.log") == ""


def test_the_first_error_is_found_however_long_the_shutdown_after_it(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    cause = "[2026-12-06 20:34:14,181] ERROR Socket server failed to bind: Address already in use\n"
    log.write_text("[t] INFO starting\n" + cause + "  at one\n  at two\n  at three\n  at four\n")
    assert first_error(log) == cause + "  at one\n  at two\n  at three\n"
    assert first_error(tmp_path / "missing.log") == ""


def test_a_pid_file_naming_another_process_is_stale_and_nothing_is_killed(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path)
    broker.pid_path.write_text(f"{os.getpid()}\n")  # alive, but not our broker

    assert not broker.is_running()
    broker.stop(timeout=1.0)

    assert not broker.pid_path.exists()  # and this test process is still here to check


def test_missing_jars_without_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    broker = LocalKafka(tmp_path / "kafka", libs_dir=tmp_path / "no-libs")

    with pytest.raises(KafkaStartError, match="no mvn on PATH"):
        broker.ensure_jars()


def test_status_of_a_broker_never_started_is_stopped(tmp_path: Path) -> None:
    assert kafka_command(["--data-dir", str(tmp_path), "--port", "29092", "status"]) == 1


# --- a real broker ---------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    port, controller_port = free_ports(2)
    local = LocalKafka(tmp_path / "kafka", port=port, controller_port=controller_port)
    try:
        yield local
    finally:
        local.stop()


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _create_topic(bootstrap: str, name: str) -> None:
    ensure_topics(bootstrap, [TopicSpec(name, 2)], timeout=20.0)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_start_produce_consume_stop(broker: LocalKafka) -> None:
    started = time.monotonic()
    broker.start(timeout=60.0)
    startup = time.monotonic() - started
    pid = int(broker.pid_path.read_text())
    assert broker.is_running()
    assert startup < 60.0

    broker.start()  # ours is running: no second broker
    assert int(broker.pid_path.read_text()) == pid

    topic = f"launcher.{uuid.uuid4().hex[:8]}"
    _create_topic(broker.bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        producer.send(topic, key=b"project-1", value=b"hello").get(timeout=20)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
    )
    try:
        # Iterating a consumer only ends at consumer_timeout_ms, so stop at the first record.
        received = [(record.key, record.value) for record in itertools.islice(consumer, 1)]
    finally:
        consumer.close()
    assert received == [(b"project-1", b"hello")]

    broker.stop()
    assert not broker.is_running()
    assert not broker.pid_path.exists()
    assert not _pid_exists(pid)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_second_start_reuses_the_formatted_directory(broker: LocalKafka) -> None:
    broker.start(timeout=60.0)
    cluster_id = broker.cluster_id
    assert cluster_id is not None
    topic = f"survivor.{uuid.uuid4().hex[:8]}"
    _create_topic(broker.bootstrap, topic)
    broker.stop()

    again = LocalKafka(broker.data_dir, port=broker.port, controller_port=broker.controller_port)
    again.start(timeout=60.0)

    assert again.cluster_id == cluster_id
    with admin_client(again.bootstrap, 10.0) as admin:
        assert topic in admin.list_topics()
        assert admin.describe_cluster()["cluster_id"] == cluster_id
    _create_topic(again.bootstrap, topic)  # ensure_topics on an existing topic is fine


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_broker_that_cannot_bind_fails_with_its_log_tail(broker: LocalKafka) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", broker.port))
        squatter.listen()

        started = time.monotonic()
        with pytest.raises(KafkaStartError) as failure:
            broker.start(timeout=45.0)
        elapsed = time.monotonic() - started

    message = str(failure.value)
    assert "exited with code" in message
    assert "Address already in use" in message
    assert "server.log" in message
    assert elapsed < 30.0
    assert not broker.pid_path.exists()
    assert not broker.is_running()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_the_session_broker_gives_each_test_its_own_catalogue(kafka_bootstrap: str, topics: Topics) -> None:
    with admin_client(kafka_bootstrap, 10.0) as admin:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in topics.specs()])}

    assert set(described) == {spec.name for spec in topics.specs()}
    assert all(name.startswith(topics.prefix) for name in described)
    assert len(described[topics.donations]["partitions"]) == len(described[topics.projects]["partitions"])
    assert len(described[topics.feed]["partitions"]) == 1
