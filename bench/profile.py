"""Where the ledger's time goes, from a py-spy raw (collapsed-stack) profile.

py-spy's ``--format raw --threads`` writes one line per distinct stack:
``thread (TID): NAME;frame;frame;... COUNT``, root first, where a frame reads
``function (file:line)``. Each stack is charged to the deepest frame that
names a stage of the batch pipeline, so "canonical JSON + hashes" inside the
database commit counts there and not as SQL.

    .venv/bin/python -m bench.profile var/bench/<run>/profile-sqlite.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# (function as py-spy names it, stage); the deepest match in a stack wins.
STAGES: tuple[tuple[str, str], ...] = (
    ("BatchLoop.run", "consumer loop (other)"),
    # Fetching, decoding and validating happen in the intake process; the
    # batch loop waits for its batches and unpickles them.
    ("IntakeProcess.poll", "intake: wait for a batch, unpickle it"),
    ("BatchProcessor.apply", "batch bookkeeping (other)"),
    ("LedgerStore.known_entry_ids", "SQL: duplicate check + prefetch"),
    ("LedgerStore.prefetch", "SQL: duplicate check + prefetch"),
    ("decide", "decide + project (domain)"),
    ("apply_entry", "decide + project (domain)"),
    ("LedgerStore.commit_batch", "SQL: the batch transaction"),
    ("entry_record", "canonical JSON + hashes"),
    ("entry_hashes", "canonical JSON + hashes"),
    ("hashes_of", "canonical JSON + hashes"),
    ("canonical_entry_bytes", "canonical JSON + hashes"),
    ("BatchProcessor._publish", "outputs: build events"),
    ("PublisherProcess.publish", "outputs: hand over to the publisher process"),
    ("EventCodec.encode", "outputs: Avro encode"),
    ("RdKafkaOutput.send", "outputs: producer.send"),
    ("RdKafkaOutput.flush", "outputs: wait for broker acks (flush)"),
)
MAIN_THREAD = "MainThread"


@dataclass(frozen=True)
class Stack:
    thread: str
    frames: tuple[str, ...]  # function names, root first
    count: int


def function_name(frame: str) -> str:
    """``LedgerStore._append (services/ledger/adapters/store.py:120)`` -> ``LedgerStore._append``."""
    head, sep, _ = frame.rpartition(" (")
    return head if sep else frame


def parse_raw(lines: Iterable[str]) -> list[Stack]:
    """Stacks from py-spy's raw output; a thread sampled without its name gets the name
    it carries elsewhere in the file (py-spy sometimes cannot read it)."""
    parsed: list[tuple[str, str, tuple[str, ...], int]] = []
    names: dict[str, str] = {}
    for line in lines:
        stack_text, _, count = line.rstrip("\n").rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        thread, *frames = stack_text.split(";")
        tid, sep, name = thread.partition(": ")
        if sep:
            names[tid] = name
        parsed.append((tid, name, tuple(function_name(f) for f in frames), int(count)))
    return [Stack(name or names.get(tid, tid), frames, count) for tid, name, frames, count in parsed]


def stage_of(frames: tuple[str, ...]) -> str:
    stage = "outside the batch loop"
    for name in frames:
        for marker, label in STAGES:
            if name == marker:
                stage = label
    return stage


def main_thread_stages(stacks: Iterable[Stack]) -> Counter[str]:
    """Samples of the main thread (the serial batch pipeline) per stage."""
    out: Counter[str] = Counter()
    for s in stacks:
        if s.thread == MAIN_THREAD:
            out[stage_of(s.frames)] += s.count
    return out


def thread_samples(stacks: Iterable[Stack]) -> Counter[str]:
    out: Counter[str] = Counter()
    for s in stacks:
        out[s.thread] += s.count
    return out


def leaf_functions(stacks: Iterable[Stack], thread: str = MAIN_THREAD) -> Counter[str]:
    """Self samples per innermost function of one thread."""
    out: Counter[str] = Counter()
    for s in stacks:
        if s.thread == thread and s.frames:
            out[s.frames[-1]] += s.count
    return out


def table(counts: Counter[str], limit: int | None = None) -> list[str]:
    total = sum(counts.values()) or 1
    return [f"{100 * n / total:5.1f}%  {n:6d}  {name}" for name, n in counts.most_common(limit)]


def report(stacks: list[Stack]) -> str:
    lines = ["main thread (the batch pipeline), by stage:"]
    lines += table(main_thread_stages(stacks))
    lines += ["", "main thread, innermost functions (top 25):"]
    lines += table(leaf_functions(stacks), 25)
    lines += ["", "samples per thread:"]
    lines += table(thread_samples(stacks))
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(report(parse_raw(handle)))
