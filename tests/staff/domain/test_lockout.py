"""Lock-out: a few mistakes are free; after that every failure doubles the wait, up to a cap."""

from __future__ import annotations

from services.staff.domain.lockout import LockoutPolicy

POLICY = LockoutPolicy(free_failures=3, base_delay_ms=1_000, max_delay_ms=60_000)


def test_the_first_failures_lock_nothing() -> None:
    for failures in range(3):
        assert not POLICY.is_locked(failures, last_failure_ms=10_000, now_ms=10_000)


def test_then_the_wait_doubles_with_each_failure() -> None:
    assert [POLICY.delay_ms(n) for n in range(3, 8)] == [1_000, 2_000, 4_000, 8_000, 16_000]
    assert POLICY.is_locked(4, last_failure_ms=10_000, now_ms=11_999)
    assert not POLICY.is_locked(4, last_failure_ms=10_000, now_ms=12_000)


def test_the_wait_is_capped_even_after_very_many_failures() -> None:
    assert POLICY.delay_ms(10_000) == 60_000
    assert POLICY.locked_until_ms(10_000, last_failure_ms=5) == 60_005
