"""Failures after which a ledger must exit to be restarted, seen by the batch loop
and raised by the helpers and Kafka adapters: kept here so that neither side
imports the other (nor confluent-kafka) to name them."""


class OutputBroken(RuntimeError):
    """The output producer reported a fatal error: it sends nothing more.

    Only a new producer, i.e. a restarted process, can send again; retrying the
    batch in place would fail the same way for ever.
    """


class IntakeBroken(RuntimeError):
    """The intake process died or failed; the ledger must restart to read again."""


class LeaseLost(RuntimeError):
    """Another ledger took the writer lease: this one may write nothing more, and exits
    (to come back as the standby)."""
