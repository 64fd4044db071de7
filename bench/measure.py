"""Pure arithmetic of the benchmark: rates from progress samples, peak RSS, the summary line."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

Sample = tuple[float, int]  # (monotonic seconds, events applied so far)


@dataclass(frozen=True)
class Drain:
    """A measured drain: ``events`` applied in ``seconds``, first applied entry to last."""

    events: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan


def sustained_drain(samples: Sequence[Sample], baseline: int, done: Sample) -> Drain:
    """The drain rate from the first observed progress past ``baseline`` to ``done``.

    The first batch is committed before it can be observed, so its events are
    not counted: the rate is (events after the first observation) / (time
    after it). ``done`` is when the last event was observed applied (and its
    outputs published).
    """
    first = next((s for s in samples if s[1] > baseline), None)
    if first is None:
        raise ValueError("no progress was observed")
    done_at, done_count = done
    if done_count <= first[1] or done_at <= first[0]:
        raise ValueError("everything was applied in the first observed batch: too few events to measure")
    return Drain(events=done_count - first[1], seconds=done_at - first[0])


def peak_rss_mb(proc_status: str) -> float:
    """VmHWM (the peak resident set) from the text of /proc/<pid>/status, in MiB."""
    for line in proc_status.splitlines():
        if line.startswith("VmHWM:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmHWM unit {unit!r}")
            return int(value) / 1024
    raise ValueError("no VmHWM line in /proc/<pid>/status")


def summary_line(figures: dict[str, float | int | str | bool | None]) -> str:
    """The last line the benchmark prints: one JSON object, rates rounded to whole events."""
    out: dict[str, float | int | str | bool | None] = {}
    for key, value in figures.items():
        if isinstance(value, float):
            value = None if math.isnan(value) else round(value, 2)
        out[key] = value
    return json.dumps(out, ensure_ascii=False, separators=(", ", ": "))


def process_cpu_seconds(proc_stat: str, ticks_per_s: int) -> float:
    """utime + stime from the text of /proc/<pid>/stat, in seconds (all threads)."""
    # The command name is in parentheses and may contain spaces: count fields after it.
    after_name = proc_stat.rpartition(")")[2].split()
    utime, stime = int(after_name[11]), int(after_name[12])
    return (utime + stime) / ticks_per_s


def machine_busy_seconds(proc_stat: str, ticks_per_s: int) -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all cores, from the first line of /proc/stat."""
    fields = [int(v) for v in proc_stat.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / ticks_per_s, total / ticks_per_s


def rates_by_part(samples: Sequence[Sample], parts: int = 4) -> list[float]:
    """Events/s in ``parts`` consecutive, equal stretches of time between the first and
    last sample (each from the last sample at or before its edges): does the rate hold?"""
    if len(samples) < 2 or parts < 1:
        return []
    start, end = samples[0][0], samples[-1][0]
    step = (end - start) / parts

    def count_at(moment: float) -> int:
        return max((c for t, c in samples if t <= moment + 1e-9), default=samples[0][1])

    edges = [start + i * step for i in range(parts + 1)]
    return [
        (count_at(b) - count_at(a)) / step if step > 0 else math.nan for a, b in itertools.pairwise(edges)
    ]
