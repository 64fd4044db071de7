"""Consumer lag measured from the brokers' end offsets, whatever the batch loop is doing.

Lag read off the batch loop's own progress stands still exactly when it matters:
a ledger stalled on its database reads no more records, so its intake stops
fetching and learns no new end offsets. This thread asks the brokers for the end
offset of every partition the ledger reads, once a second, with a client of its
own, and compares it with where the ledger is; a stalled ledger shows a rising lag,
next to the seconds since its last commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from services.ledger import metrics
from services.ledger.service.records import Partition

log = logging.getLogger(__name__)
EVERY_S = 1.0


class LagMonitor:
    def __init__(
        self,
        bootstrap: str,
        positions: Callable[[], dict[Partition, int]],
        seconds_since_commit: Callable[[], float],
        every_s: float = EVERY_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.positions = positions  # where the ledger is, per partition whose position is known
        self.seconds_since_commit = seconds_since_commit
        self.every_s = every_s

    def run(self, stop: threading.Event) -> None:
        consumer: KafkaConsumer | None = None
        try:
            while not stop.wait(self.every_s):
                metrics.SECONDS_SINCE_COMMIT.set(self.seconds_since_commit())
                try:
                    if consumer is None:
                        consumer = KafkaConsumer(
                            bootstrap_servers=self.bootstrap, enable_auto_commit=False, client_id="ledger-lag"
                        )
                    self.measure(consumer)
                except Exception as exc:  # the broker away: the gauges keep their last values
                    log.debug("could not measure the consumer lag: %s", exc)
        finally:
            if consumer is not None:
                consumer.close()

    def measure(self, consumer: KafkaConsumer) -> dict[Partition, int]:
        positions = self.positions()
        if not positions:
            return {}
        ends = consumer.end_offsets([TopicPartition(topic, part) for topic, part in positions])
        lag = {
            (tp.topic, tp.partition): max(0, end - positions[(tp.topic, tp.partition)])
            for tp, end in ends.items()
        }
        for (topic, part), records in lag.items():
            metrics.CONSUMER_LAG.labels(topic, str(part)).set(records)
        return lag
