"""Fault (b) of issue 15: cut the network between the ledger and the brokers for 30 s under a
steady load of gifts through the API, on the local three-node cluster and PostgreSQL.

Kafka clients talk to the addresses the brokers advertise, not only to the bootstrap, so a
proxy in front of the bootstrap alone would cut nothing. Each node here has a second client
listener, PROXIED, advertised at the port of a proxy in front of it (the inter-broker and
controller listeners stay direct); the ledger is bootstrapped on the proxies, the API and the
test on the nodes themselves. All three proxies are cut at once, then restored: two cases,
a reset (open connections killed, new ones refused) and a silent partition (nothing passes
either way, connections hang, what waited goes through after the restore).

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the restore to the ledger's first entry after it); during the cut the journal must
not grow while the API still acknowledges gifts (so the cut really cut), and afterwards the
compacted totals topic must equal the database, a screen connected throughout (its gateway
on the direct listeners) must have listed each gift once, and `verify` pass. Run by
`make test-faults`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.platform.free_ports import free_ports
from services.platform.kafka_cluster import LocalKafkaCluster
from tests.fixtures.faults import RATE, assert_nothing_lost, fault_report, gifts_flowing
from tests.fixtures.ledger import eventually
from tests.fixtures.tcp_proxy import CuttableProxy
from tests.ledger.test_standby import journal_size

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CUT_S = 30
GRACE_S = 5  # for what the ledger had fetched before the cut to be applied


@pytest.fixture(scope="module")
def proxied_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalKafkaCluster, list[CuttableProxy]]]:
    """A three-node cluster whose nodes each have a PROXIED listener behind a proxy of ours."""
    ports = free_ports(9)
    proxies = [CuttableProxy(port) for port in ports[6:]]
    cluster = LocalKafkaCluster(
        tmp_path_factory.mktemp("kafka-proxied"),
        ports=list(zip(ports[0:6:2], ports[1:6:2], strict=True)),
        proxied=[(proxy.target[1], proxy.port) for proxy in proxies],
    )
    try:
        cluster.start(timeout=150.0)
        yield cluster, proxies
    finally:
        cluster.stop()
        for proxy in proxies:
            proxy.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["reset", "silent"])
def test_the_ledger_catches_up_after_its_network_to_the_brokers_is_cut_for_30_s(
    proxied_cluster: tuple[LocalKafkaCluster, list[CuttableProxy]],
    postgres_db: str,
    tmp_path: Path,
    how: str,
) -> None:
    cluster, proxies = proxied_cluster
    with gifts_flowing(cluster, postgres_db, tmp_path, ledger_bootstrap=cluster.proxied_bootstrap) as rig:
        load, engine = rig.load, rig.engine
        for proxy in proxies:
            if how == "reset":
                proxy.cut()
            else:
                proxy.cut_silently()
        cut_at = time.monotonic()
        eventually(lambda: time.monotonic() - cut_at > GRACE_S, timeout=30)
        size_in_cut, acknowledged_in_cut = journal_size(engine), len(load.acknowledged)
        eventually(lambda: time.monotonic() - cut_at > CUT_S, timeout=60)
        # The cut cut: the API went on acknowledging gifts, the ledger applied none of them.
        assert len(load.acknowledged) - acknowledged_in_cut >= (CUT_S - GRACE_S) * RATE // 2
        assert journal_size(engine) == size_in_cut
        assert rig.ledger.thread.is_alive()  # waiting, not dead
        for proxy in proxies:
            proxy.restore()
        restored_at = time.monotonic()
        eventually(lambda: journal_size(engine) > size_in_cut, timeout=120, what="entries again")
        recovery_s = time.monotonic() - restored_at
        eventually(lambda: time.monotonic() - restored_at > 5, timeout=30)
        applied = rig.settle()
        screen = rig.tally_screen()

    report = fault_report(
        f"the network between the ledger and the brokers cut ({how}) for {CUT_S} s, then restored",
        load,
        applied,
        recovery_s,
        tmp_path / f"network-cut-{how}.json",
        screen,
    )
    assert_nothing_lost(report, screen, postgres_db)
