"""The Merkle tree against RFC 6962 known answers and against its own recursive reference."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain import merkle
from services.ledger.domain.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    MerkleTree,
    TreeHead,
    canonical_entry_bytes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Known answers from Certificate Transparency's reference test data
# (transparency-dev/merkle testonly/constants.go and proof/verify_test.go).
KAT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
KAT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]  # indexed by tree size, 0..8
KAT_LEAF_HASHES = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]
]
# (leaf index, tree size, proof); the upstream table counts leaves from 1.
KAT_INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
    (2, 3, ["fac54203"]),
    (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
]
# (old size, new size, proof)
KAT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
    (2, 5, ["5f083f0a", "bc1a0643"]),
    (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
]
# Full hashes behind the 8-hex-digit prefixes above.
_KAT_NODES = {
    h[:8]: bytes.fromhex(h)
    for h in [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    ]
}


def _full(prefixes: list[str]) -> list[bytes]:
    return [_KAT_NODES[p] for p in prefixes]


KAT_HASHES = [leaf_hash(d) for d in KAT_LEAVES]
KAT_TREE = MerkleTree.from_leaf_hashes(KAT_HASHES)


def test_leaf_hashes_match_known_answers() -> None:
    assert KAT_HASHES == KAT_LEAF_HASHES


@pytest.mark.parametrize("size", range(9))
def test_roots_match_known_answers(size: int) -> None:
    assert root_hash(KAT_HASHES[:size]) == KAT_ROOTS[size]
    assert KAT_TREE.root(size) == KAT_ROOTS[size]
    assert MerkleTree.from_leaf_hashes(KAT_HASHES[:size]).root() == KAT_ROOTS[size]


def test_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert MerkleTree().root() == EMPTY_ROOT == KAT_ROOTS[0]


@pytest.mark.parametrize(("index", "size", "expected"), KAT_INCLUSION)
def test_inclusion_proofs_match_known_answers(index: int, size: int, expected: list[str]) -> None:
    assert inclusion_proof(index, size, KAT_HASHES) == _full(expected)
    assert KAT_TREE.inclusion_proof(index, size) == _full(expected)
    assert verify_inclusion(KAT_HASHES[index], index, size, _full(expected), KAT_ROOTS[size])


@pytest.mark.parametrize(("old", "new", "expected"), KAT_CONSISTENCY)
def test_consistency_proofs_match_known_answers(old: int, new: int, expected: list[str]) -> None:
    assert consistency_proof(old, new, KAT_HASHES) == _full(expected)
    assert KAT_TREE.consistency_proof(old, new) == _full(expected)
    assert verify_consistency(old, new, KAT_ROOTS[old], KAT_ROOTS[new], _full(expected))


def test_every_proof_of_the_known_tree_verifies() -> None:
    for size in range(1, 9):
        for index in range(size):
            proof = KAT_TREE.inclusion_proof(index, size)
            assert verify_inclusion(KAT_HASHES[index], index, size, proof, KAT_ROOTS[size])
        for old in range(size + 1):
            proof = KAT_TREE.consistency_proof(old, size)
            assert verify_consistency(old, size, KAT_ROOTS[old], KAT_ROOTS[size], proof)


# --- Properties over larger trees. ---

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
TREE = MerkleTree.from_leaf_hashes(LEAVES)
ROOTS = [root_hash(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, new)), new


def _flip(proof: list[bytes], element: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[element])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:element], bytes(changed), *proof[element + 1 :]]


def test_tree_roots_match_reference_for_every_size() -> None:
    assert [TREE.root(n) for n in range(MAX_SIZE + 1)] == ROOTS


def test_growing_one_leaf_at_a_time_matches_building_at_once() -> None:
    grown = MerkleTree()
    for n, leaf in enumerate(LEAVES, start=1):
        assert grown.append(leaf) == n - 1
        assert grown.root() == ROOTS[n]


def test_the_frontier_gives_the_reference_root_at_every_size_in_log_n_hashes() -> None:
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, start=1):
        frontier.append(leaf)
        assert (frontier.size, frontier.root()) == (n, ROOTS[n])
        assert len(frontier._peaks) == n.bit_count()  # what it holds: one hash per bit of its size


@given(size_and_index())
def test_inclusion_proof_matches_reference_and_verifies(case: tuple[int, int]) -> None:
    size, index = case
    proof = TREE.inclusion_proof(index, size)
    assert proof == inclusion_proof(index, size, LEAVES)
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@given(two_sizes())
def test_consistency_proof_matches_reference_and_verifies(case: tuple[int, int]) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    assert proof == consistency_proof(old, new, LEAVES)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@given(size_and_index(), st.data())
def test_inclusion_proof_with_a_flipped_bit_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    proof = TREE.inclusion_proof(index, size)
    if not proof:
        return  # a one-leaf tree: nothing to flip
    element = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    assert not verify_inclusion(LEAVES[index], index, size, _flip(proof, element, bit), ROOTS[size])


@given(size_and_index(), st.data())
def test_inclusion_proof_for_another_index_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    proof = TREE.inclusion_proof(index, size)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index)) if size > 1 else index + 1
    assert not verify_inclusion(LEAVES[index], other, size, proof, ROOTS[size])


@given(size_and_index(), st.data())
def test_inclusion_proof_for_another_size_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    if index == MAX_SIZE - 1:
        return  # no other size can hold this leaf
    proof = TREE.inclusion_proof(index, size)
    # Any size that holds the leaf except `size`, drawn without a filter.
    drawn = data.draw(st.integers(index + 1, MAX_SIZE - 1))
    other = drawn if drawn < size else drawn + 1
    assert not verify_inclusion(LEAVES[index], index, other, proof, ROOTS[other])


@given(size_and_index())
def test_a_leaf_not_in_the_tree_fails(case: tuple[int, int]) -> None:
    size, index = case
    proof = TREE.inclusion_proof(index, size)
    stranger = leaf_hash(b"never appended")
    assert not verify_inclusion(stranger, index, size, proof, ROOTS[size])


@given(two_sizes())
def test_a_leaf_beyond_the_tree_size_fails(case: tuple[int, int]) -> None:
    size, bigger = case[0], max(case[1], case[0] + 1)
    if bigger > MAX_SIZE:
        return
    # Leaf `size` is in the bigger tree but not in the tree of `size` leaves.
    proof = TREE.inclusion_proof(size, bigger)
    assert not verify_inclusion(LEAVES[size], size, size, proof, ROOTS[size])
    assert not verify_inclusion(LEAVES[size], size, bigger, proof, ROOTS[size])


@given(two_sizes(), st.data())
def test_consistency_proof_with_a_flipped_bit_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    if not proof:
        return  # equal sizes: nothing to flip
    element = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    assert not verify_consistency(old, new, ROOTS[old], ROOTS[new], _flip(proof, element, bit))


@given(two_sizes(), st.data())
def test_consistency_proof_for_other_sizes_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof = TREE.consistency_proof(old, new)
    if not proof:
        return
    wrong_old = data.draw(st.integers(1, new).filter(lambda n: n != old))
    wrong_new = data.draw(st.integers(old, MAX_SIZE).filter(lambda n: n != new))
    assert not verify_consistency(wrong_old, new, ROOTS[wrong_old], ROOTS[new], proof)
    assert not verify_consistency(old, wrong_new, ROOTS[old], ROOTS[wrong_new], proof)
    assert not verify_consistency(old, new, ROOTS[new], ROOTS[old], proof)  # swapped roots


@settings(max_examples=50)
@given(two_sizes())
def test_a_rewritten_history_is_not_consistent(case: tuple[int, int]) -> None:
    old, new = case
    if old == new:
        return
    # The new tree replaces one of the old leaves: the proof from the honest
    # tree, or one built from the forged tree, must not link the two roots.
    forged = [*LEAVES[:new]]
    forged[old - 1] = leaf_hash(b"rewritten")
    forged_root = root_hash(forged)
    assert not verify_consistency(old, new, ROOTS[old], forged_root, TREE.consistency_proof(old, new))
    assert not verify_consistency(old, new, ROOTS[old], forged_root, consistency_proof(old, new, forged))


# --- Edge cases and contracts. ---


def test_trivial_consistency_cases() -> None:
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[6], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    assert not verify_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert not verify_consistency(5, 4, ROOTS[5], ROOTS[4], TREE.consistency_proof(4, 5))
    assert not verify_consistency(4, 5, ROOTS[4], ROOTS[5], [])


def test_verification_rejects_malformed_hashes() -> None:
    proof = TREE.inclusion_proof(3, 10)
    assert not verify_inclusion(LEAVES[3], 3, 10, [*proof, b""], ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 3, 10, [b"", *proof], ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 3, 10, [*proof, ROOTS[10]], ROOTS[10])
    assert not verify_inclusion(LEAVES[3][:31], 3, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3], -1, 10, proof, ROOTS[10])


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError):
        TREE.inclusion_proof(MAX_SIZE, MAX_SIZE)
    with pytest.raises(ValueError):
        TREE.inclusion_proof(0, MAX_SIZE + 1)
    with pytest.raises(ValueError):
        TREE.consistency_proof(5, 4)
    with pytest.raises(ValueError):
        TREE.root(MAX_SIZE + 1)
    with pytest.raises(ValueError):
        MerkleTree().append(b"short")


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = LEAVES[0], LEAVES[1]
    assert node_hash(left, right) != leaf_hash(left + right)
    assert TREE.leaf_hash(7) == LEAVES[7]


def test_canonical_entry_bytes() -> None:
    entry = {"b": 1, "a": {"z": [1, 2], "y": "捐款"}, "c": None}
    assert canonical_entry_bytes(entry) == '{"a":{"y":"捐款","z":[1,2]},"b":1,"c":null}'.encode()
    with pytest.raises(TypeError):
        canonical_entry_bytes({"amount": 12.5})
    with pytest.raises(TypeError):
        canonical_entry_bytes({"postings": [{"amount": 1.0}]})
    # Values json cannot write either: the verifier could not reproduce their bytes.
    with pytest.raises(TypeError, match="datetime"):
        canonical_entry_bytes({"at": datetime(2026, 1, 1, tzinfo=UTC)})
    with pytest.raises(TypeError, match="UUID"):
        canonical_entry_bytes({"postings": [{"id": uuid.UUID(int=1)}]})


def test_tree_head_encoding() -> None:
    head = TreeHead(size=0x0102, root=KAT_ROOTS[8], timestamp_ms=0x0A0B)
    assert head.signing_bytes() == (
        b"charity-ledger-sth-v1"
        + bytes.fromhex("0000000000000102")
        + bytes.fromhex("0000000000000a0b")
        + KAT_ROOTS[8]
    )
    with pytest.raises(ValueError):
        TreeHead(size=-1, root=KAT_ROOTS[8], timestamp_ms=0)
    with pytest.raises(ValueError):
        TreeHead(size=1, root=b"short", timestamp_ms=0)


def test_merkle_module_is_pure() -> None:
    tree = ast.parse(Path(merkle.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    # orjson only turns dicts into bytes; nothing here touches a database, a broker or a file.
    assert imported <= {"__future__", "hashlib", "json", "orjson", "collections", "dataclasses"}
