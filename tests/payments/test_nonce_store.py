from __future__ import annotations

from services.payments.provider import InMemoryNonceStore

WINDOW_MS = 600_000


def test_a_nonce_is_taken_once_within_the_window() -> None:
    store = InMemoryNonceStore()
    assert store.fresh("n1", 1_000, WINDOW_MS)
    assert not store.fresh("n1", 1_000 + WINDOW_MS - 1, WINDOW_MS)
    assert store.fresh("n2", 1_000 + WINDOW_MS - 1, WINDOW_MS)


def test_a_nonce_is_taken_again_once_the_window_has_passed() -> None:
    store = InMemoryNonceStore()
    assert store.fresh("n1", 1_000, WINDOW_MS)
    assert store.fresh("n1", 1_000 + WINDOW_MS, WINDOW_MS)


def test_entries_older_than_the_window_are_forgotten() -> None:
    store = InMemoryNonceStore()
    for i in range(100):
        store.fresh(f"old-{i}", 1_000 + i, WINDOW_MS)
    store.fresh("new", 1_000 + 50 + WINDOW_MS, WINDOW_MS)
    assert len(store) == 50  # old-51 … old-99 and the new one


def test_the_store_is_bounded() -> None:
    store = InMemoryNonceStore(max_entries=3)
    for nonce in ("a", "b", "c", "d"):
        assert store.fresh(nonce, 1_000, WINDOW_MS)
    assert len(store) == 3
    assert store.fresh("a", 1_000, WINDOW_MS)  # the oldest went first
    assert not store.fresh("d", 1_000, WINDOW_MS)
