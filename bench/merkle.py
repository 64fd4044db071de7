"""How fast MerkleTree answers inclusion proofs at ledger scale (target: <= 5 ms per proof).

.venv/bin/python -m bench.merkle [n_leaves] [samples]
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from services.ledger.domain.merkle import MerkleTree, leaf_hash, verify_inclusion


def bench_inclusion_proofs(n_leaves: int = 1_000_000, samples: int = 1000) -> dict[str, float]:
    """Build a tree of ``n_leaves`` and time proofs for random leaves against the full tree.

    Generation and verification are timed separately: the ledger generates, a
    donor's verifier checks. Random indices with a fixed seed, so runs compare.
    """
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(n_leaves)]
    started = time.perf_counter()
    tree = MerkleTree.from_leaf_hashes(leaves)
    build_s = time.perf_counter() - started
    root = tree.root()

    rng = random.Random(20240905)
    indices = [rng.randrange(n_leaves) for _ in range(samples)]
    generate_ms: list[float] = []
    verify_ms: list[float] = []
    for index in indices:
        t0 = time.perf_counter()
        proof = tree.inclusion_proof(index)
        t1 = time.perf_counter()
        ok = verify_inclusion(leaves[index], index, n_leaves, proof, root)
        t2 = time.perf_counter()
        if not ok:
            raise AssertionError(f"proof for leaf {index} did not verify")
        generate_ms.append((t1 - t0) * 1000)
        verify_ms.append((t2 - t1) * 1000)

    return {
        "n_leaves": float(n_leaves),
        "build_s": build_s,
        "generate_mean_ms": statistics.fmean(generate_ms),
        "generate_p99_ms": _p99(generate_ms),
        "verify_mean_ms": statistics.fmean(verify_ms),
        "verify_p99_ms": _p99(verify_ms),
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    for name, value in bench_inclusion_proofs(*(int(a) for a in sys.argv[1:3])).items():
        print(f"{name:>18}: {value:.4f}")
