"""Signed tree heads: a forged head must not verify, and the key file stays private."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.adapters.signing import (
    NoSigningKey,
    load_or_create_signing_key,
    load_public_key_pem,
    public_key_pem,
    sign_tree_head,
    verify_tree_head,
)
from services.ledger.domain.merkle import MerkleTree, TreeHead, leaf_hash

TREE = MerkleTree.from_leaf_hashes(leaf_hash(bytes([i])) for i in range(10))
HEAD = TreeHead(size=10, root=TREE.root(10), timestamp_ms=1_725_494_400_000)
KEY = Ed25519PrivateKey.generate()


def test_a_signed_head_verifies() -> None:
    signature = sign_tree_head(KEY, HEAD)
    assert len(signature) == 64
    assert verify_tree_head(KEY.public_key(), HEAD, signature)


@pytest.mark.parametrize(
    "forged",
    [
        dataclasses.replace(HEAD, root=TREE.root(9)),
        dataclasses.replace(HEAD, size=9),
        dataclasses.replace(HEAD, size=11),
        dataclasses.replace(HEAD, timestamp_ms=HEAD.timestamp_ms + 1),
    ],
    ids=["changed root", "smaller size", "larger size", "changed timestamp"],
)
def test_a_forged_head_fails(forged: TreeHead) -> None:
    assert not verify_tree_head(KEY.public_key(), forged, sign_tree_head(KEY, HEAD))


def test_a_head_signed_by_another_key_fails() -> None:
    other = Ed25519PrivateKey.generate()
    assert not verify_tree_head(KEY.public_key(), HEAD, sign_tree_head(other, HEAD))


def test_a_corrupted_signature_fails() -> None:
    signature = bytearray(sign_tree_head(KEY, HEAD))
    signature[0] ^= 1
    assert not verify_tree_head(KEY.public_key(), HEAD, bytes(signature))


def test_key_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "tree-head.pem"
    created = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signing_key(path)
    assert public_key_pem(again) == public_key_pem(created)
    assert [p.name for p in path.parent.iterdir()] == ["tree-head.pem"]  # no temporary left behind


def test_a_key_that_may_not_be_created_is_refused_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "never-created.pem"
    with pytest.raises(NoSigningKey, match=f"no tree-head signing key at {path}: .*keys rotate"):
        load_or_create_signing_key(path, create=False)
    assert not path.exists()


def test_a_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(TypeError):
        load_or_create_signing_key(path)


def test_public_key_pem_round_trips() -> None:
    pem = public_key_pem(KEY)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_pem(KEY.public_key()) == pem
    assert verify_tree_head(load_public_key_pem(pem), HEAD, sign_tree_head(KEY, HEAD))
