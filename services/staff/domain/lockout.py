"""Lock-out with back-off: after a few failed log-ins, each further one waits longer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LockoutPolicy:
    # Typing mistakes are forgiven; guessing is slowed down exponentially after that.
    free_failures: int = 5
    base_delay_ms: int = 30_000
    max_delay_ms: int = 3_600_000

    def delay_ms(self, failures: int) -> int:
        """How long after the last failure the next attempt must wait."""
        if failures < self.free_failures:
            return 0
        # Capped exponent: 2**failures of a long-attacked account would be a huge integer.
        doubling = min(failures - self.free_failures, 32)
        return int(min(self.base_delay_ms * 2**doubling, self.max_delay_ms))

    def locked_until_ms(self, failures: int, last_failure_ms: int | None) -> int | None:
        """Until when the account refuses every attempt, or None when it may try now."""
        delay = self.delay_ms(failures)
        if delay == 0 or last_failure_ms is None:
            return None
        return last_failure_ms + delay

    def is_locked(self, failures: int, last_failure_ms: int | None, now_ms: int) -> bool:
        until = self.locked_until_ms(failures, last_failure_ms)
        return until is not None and now_ms < until
