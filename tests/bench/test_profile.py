"""Reading py-spy's raw profiles and charging samples to pipeline stages."""

from __future__ import annotations

from bench.profile import (
    function_name,
    leaf_functions,
    main_thread_stages,
    parse_raw,
    stage_of,
    thread_samples,
)

RAW = """\
thread (101): MainThread;<module> (services/cli.py:70);\
BatchLoop.run (services/ledger/service/batch_loop.py:95);\
BatchProcessor.process (services/ledger/service/processor.py:89);\
BatchCommit.commit (services/ledger/service/batch_commit.py:43);\
LedgerStore.commit_batch (services/ledger/adapters/store.py:103);\
LedgerStore._append (services/ledger/adapters/store.py:120);\
entry_hashes (services/ledger/domain/chain.py:51);dumps (json/__init__.py:231) 7
thread (101);<module> (services/cli.py:70);\
BatchLoop.run (services/ledger/service/batch_loop.py:95);\
BatchProcessor.process (services/ledger/service/processor.py:89);\
BatchCommit.commit (services/ledger/service/batch_commit.py:43);\
LedgerStore.commit_batch (services/ledger/adapters/store.py:103);execute (sqlalchemy/engine/base.py:1400) 3
thread (202): kafka-io;run (kafka/net/manager.py:1);poll (kafka/net/selector.py:2) 5
not a stack line
"""


def test_frames_lose_their_location_and_nameless_threads_get_their_name() -> None:
    stacks = parse_raw(RAW.splitlines())
    assert [s.thread for s in stacks] == ["MainThread", "MainThread", "kafka-io"]
    assert stacks[0].frames[-1] == "dumps" and stacks[0].count == 7
    assert (
        function_name("LedgerStore._append (services/ledger/adapters/store.py:120)") == "LedgerStore._append"
    )
    assert function_name("<module>") == "<module>"


def test_the_deepest_named_stage_wins() -> None:
    stacks = parse_raw(RAW.splitlines())
    assert stage_of(stacks[0].frames) == "canonical JSON + hashes"
    assert stage_of(stacks[1].frames) == "SQL: the batch transaction"
    assert stage_of(("<module>", "run_ledger")) == "outside the batch loop"
    assert main_thread_stages(stacks) == {"canonical JSON + hashes": 7, "SQL: the batch transaction": 3}
    assert thread_samples(stacks) == {"MainThread": 10, "kafka-io": 5}
    assert leaf_functions(stacks) == {"dumps": 7, "execute": 3}
