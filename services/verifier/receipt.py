"""Check a charity-ledger donation receipt with nothing but this file.

    python -m services.verifier.receipt receipt.json head.json pubkey.pem
    python receipt.py receipt.json head.json pubkey.pem      # copied on its own

Needs Python >= 3.11 and the ``cryptography`` package. Exit status: 0 valid,
1 invalid, 2 an input could not be read. The reason is printed either way.

The ledger puts every journal entry in a Merkle tree in the manner of
Certificate Transparency (RFC 6962 / RFC 9162) and publishes signed tree heads.
A receipt is valid when

1. the tree head is signed by the ledger's Ed25519 key,
2. the entry hashes to the receipt's leaf hash, SHA-256(0x00 || canonical JSON),
3. the inclusion proof leads from that leaf to the signed root (RFC 9162 §2.1.3.2).

``verify_consistency_between`` checks that a later head extends an earlier one
(RFC 9162 §2.1.4.2): the log was only appended to, never rewritten.

Formats::

    receipt:   {"entry": {...}, "leaf_hash": hex, "leaf_index": int,
                "tree_size": int, "inclusion_proof": [hex, ...],
                "canonical": str (optional: the entry's canonical JSON, which
                             must then be exactly the canonical form of "entry")}
    tree head: {"tree_size": int, "root_hash": hex, "timestamp_ms": int,
                "signature": base64 or hex}

The signed bytes of a head are b"charity-ledger-sth-v1" || tree_size (8 bytes,
big-endian) || timestamp_ms (8 bytes, big-endian) || root_hash (32 bytes).

This module duplicates the hashing, the proof verification and the head
encoding of ``services/ledger/domain/merkle.py`` on purpose and imports nothing
from the project: a verifier that ran the ledger's own code would trust the very
party it checks, and one short file is easy to audit and copy. The project's
tests hold the two to the same answers.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
TREE_HEAD_TAG = b"charity-ledger-sth-v1"
_U64_MAX = (1 << 64) - 1
_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


class _Invalid(Exception):
    """Carries the reason a check failed up to the public functions."""


# --- Hashing and proofs (RFC 9162 §2.1). ---


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def canonical_entry_bytes(entry: Mapping[str, object]) -> bytes:
    """Sorted keys, no whitespace, UTF-8. Floats are refused: languages print them differently."""
    _reject_floats(entry)
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_floats(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("a journal entry must not contain floats")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # right edge: levels without a sibling
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, plus the trivial cases it leaves out (equal sizes, empty old tree)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def tree_head_bytes(tree_size: int, timestamp_ms: int, root: bytes) -> bytes:
    return TREE_HEAD_TAG + tree_size.to_bytes(8, "big") + timestamp_ms.to_bytes(8, "big") + root


# --- Parsing untrusted JSON. ---


@dataclass(frozen=True)
class _Head:
    size: int
    root: bytes
    timestamp_ms: int
    signature: bytes
    key_id: str | None  # which key signed it; None on heads from before keys rotated


def _field(obj: Mapping[str, object], name: str, what: str) -> object:
    if name not in obj:
        raise _Invalid(f"the {what} has no {name!r} field")
    return obj[name]


def _u64(obj: Mapping[str, object], name: str, what: str) -> int:
    value = _field(obj, name, what)
    # bool is an int in Python; JSON true must not pass for 1.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64_MAX:
        raise _Invalid(f"the {what}'s {name!r} must be a whole number from 0 to 2^64-1")
    return value


def _hash_hex(value: object, label: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise _Invalid(f"{label} must be 64 hexadecimal digits")
    return bytes.fromhex(value)


def _signature(value: object) -> bytes:
    if not isinstance(value, str):
        raise _Invalid("the tree head's signature must be a base64 or hex string")
    try:
        raw = (
            bytes.fromhex(value)
            if re.fullmatch(r"[0-9a-fA-F]{128}", value)
            else base64.b64decode(value, validate=True)
        )
    except (binascii.Error, ValueError):
        raise _Invalid("the tree head's signature is neither base64 nor hex") from None
    if len(raw) != 64:
        raise _Invalid(f"an Ed25519 signature has 64 bytes, the tree head's has {len(raw)}")
    return raw


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"the {what} must be a JSON object")
    return value


def _parse_head(value: object, what: str) -> _Head:
    obj = _mapping(value, what)
    return _Head(
        size=_u64(obj, "tree_size", what),
        root=_hash_hex(_field(obj, "root_hash", what), f"the {what}'s root_hash"),
        timestamp_ms=_u64(obj, "timestamp_ms", what),
        signature=_signature(_field(obj, "signature", what)),
        key_id=_key_id(obj.get("key_id"), what),
    )


def _key_id(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise _Invalid(f"the {what}'s key_id must be 64 lowercase hex digits")
    return value


def _same_text(value: object, data: bytes) -> bool:
    try:
        return isinstance(value, str) and value.encode("utf-8") == data
    except UnicodeEncodeError:  # a lone surrogate, which no canonical entry holds
        return False


def _proof(value: object, label: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _Invalid(f"{label} must be a list of hex hashes")
    return [_hash_hex(item, f"{label} element {i}") for i, item in enumerate(value)]


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise _Invalid("the public key is not a PEM-encoded public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _Invalid("the public key is not an Ed25519 key")
    return key


def _public_keys(pem: str) -> dict[str, Ed25519PublicKey]:
    """Every key in the PEM text (the ledger's keys, one or several), by key id: the
    hex SHA-256 of the raw key, as tree heads name it."""
    blocks = re.findall(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", pem, flags=re.S)
    keys = [_public_key(block + "\n") for block in blocks] or [_public_key(pem)]
    return {hashlib.sha256(k.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest(): k for k in keys}


def _check_signature(keys: dict[str, Ed25519PublicKey], head: _Head, what: str) -> None:
    if head.key_id is not None:
        if head.key_id not in keys:
            raise _Invalid(f"the {what} was signed by key {head.key_id}, which is not among the keys given")
        key = keys[head.key_id]
    elif len(keys) == 1:
        key = next(iter(keys.values()))
    else:
        raise _Invalid(
            f"the {what} names no key, and several keys were given: give the one it was signed with"
        )
    try:
        key.verify(head.signature, tree_head_bytes(head.size, head.timestamp_ms, head.root))
    except InvalidSignature:
        raise _Invalid(
            f"the {what}'s signature does not verify with this public key: "
            "the head was altered or was signed by another key"
        ) from None


def _when(timestamp_ms: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):
        return f"timestamp_ms {timestamp_ms}"


# --- The public checks. ---


def verify_receipt(
    receipt: Mapping[str, object], tree_head: Mapping[str, object], public_key_pem: str
) -> VerificationResult:
    """Is the receipt's entry in the tree the signed head commits to?"""
    try:
        keys = _public_keys(public_key_pem)
        head = _parse_head(tree_head, "tree head")
        _check_signature(keys, head, "tree head")

        receipt = _mapping(receipt, "receipt")
        entry = _mapping(_field(receipt, "entry", "receipt"), "receipt's entry")
        claimed_leaf = _hash_hex(_field(receipt, "leaf_hash", "receipt"), "the receipt's leaf_hash")
        index = _u64(receipt, "leaf_index", "receipt")
        size = _u64(receipt, "tree_size", "receipt")
        proof = _proof(_field(receipt, "inclusion_proof", "receipt"), "the receipt's inclusion_proof")

        if size != head.size:
            raise _Invalid(
                f"the receipt is for tree size {size} but the tree head is for size {head.size}: "
                f"check it against the signed head of size {size}"
            )
        try:
            entry_bytes = canonical_entry_bytes(entry)
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"the entry cannot be put in canonical form: {exc}") from None
        if leaf_hash(entry_bytes) != claimed_leaf:
            raise _Invalid("the entry does not hash to the receipt's leaf_hash: the entry was altered")
        if "canonical" in receipt and not _same_text(receipt["canonical"], entry_bytes):
            # A browser hashes this copy instead of the entry: both must say the same.
            raise _Invalid("the receipt's canonical text is not its entry in canonical form: one was altered")
        if index >= size:
            raise _Invalid(f"leaf_index {index} is outside a tree of {size} entries")
        if not verify_inclusion(claimed_leaf, index, size, proof, head.root):
            raise _Invalid(
                f"the inclusion proof does not lead from entry {index} to the signed root of the "
                f"tree of {size} entries: the proof or the index was altered, or the entry is not in it"
            )
    except _Invalid as failure:
        return VerificationResult(False, str(failure))
    return VerificationResult(
        True,
        f"valid: entry {index} is in the ledger's signed tree of {size} entries ({_when(head.timestamp_ms)})",
    )


def verify_consistency_between(
    head_old: Mapping[str, object],
    head_new: Mapping[str, object],
    proof_hex_list: Sequence[str],
    public_key_pem: str,
) -> VerificationResult:
    """Does the newer signed head extend the older one, without rewriting any entry?"""
    try:
        keys = _public_keys(public_key_pem)
        old = _parse_head(head_old, "older tree head")
        new = _parse_head(head_new, "newer tree head")
        _check_signature(keys, old, "older tree head")
        _check_signature(keys, new, "newer tree head")
        proof = _proof(list(proof_hex_list), "the consistency proof")
        if old.size > new.size:
            raise _Invalid(f"the older head has {old.size} entries, more than the newer head's {new.size}")
        if not verify_consistency(old.size, new.size, old.root, new.root, proof):
            raise _Invalid(
                f"the consistency proof does not show that the tree of {old.size} entries is a prefix "
                f"of the tree of {new.size}: the log was rewritten, or the proof is wrong"
            )
    except _Invalid as failure:
        return VerificationResult(False, str(failure))
    return VerificationResult(
        True, f"valid: the signed tree of {new.size} entries extends the signed tree of {old.size} entries"
    )


# --- Command line. ---


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # With duplicate keys a person reading the file and this program would see
    # different values (json keeps the last): refuse such a file outright.
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _load_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.verifier.receipt",
        description="Check a donation receipt against a signed tree head of the charity ledger. "
        "With one file: the receipt file a donor downloads from the receipt page, which holds the "
        "receipt, its tree head and the public key.",
    )
    parser.add_argument("receipt", type=Path, help="receipt JSON file (or the downloaded receipt file)")
    parser.add_argument("tree_head", type=Path, nargs="?", help="signed tree head JSON file")
    parser.add_argument(
        "public_key",
        type=Path,
        nargs="?",
        help="the ledger's Ed25519 public key(s), PEM; the head names its key by id",
    )
    args = parser.parse_args(argv)
    if (args.tree_head is None) != (args.public_key is None):
        parser.error(
            "give the receipt, the tree head and the public key, or the downloaded receipt file alone"
        )
    try:
        receipt = _load_json(args.receipt)
        if args.tree_head is None:
            receipt, tree_head, pem = _unbundle(receipt)
        else:
            tree_head = _load_json(args.tree_head)
            pem = args.public_key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"could not read the input: {exc}")
        return 2
    if not isinstance(receipt, Mapping) or not isinstance(tree_head, Mapping):
        print("invalid: the receipt and the tree head must each be a JSON object")
        return 1
    result = verify_receipt(receipt, tree_head, pem)
    print(result.reason if result.ok else f"invalid: {result.reason}")
    return 0 if result.ok else 1


def _unbundle(bundle: object) -> tuple[object, object, str]:
    """The downloaded receipt file: {"receipt", "tree_head", "public_key", "key_id", ...}.

    Its key came with it, from the same server: the check then proves the receipt matches a
    head signed by that key, and the key id printed here is to be compared with the key the
    charity publishes (or pass the receipt, head and a key you hold as three files).
    """
    if not isinstance(bundle, Mapping) or not {"receipt", "tree_head", "public_key"} <= bundle.keys():
        raise ValueError("one file must be a downloaded receipt file with receipt, tree_head and public_key")
    pem = bundle["public_key"]
    if not isinstance(pem, str):
        raise ValueError("public_key must be PEM text")
    print(
        f"using the public key in the file, key id {bundle.get('key_id', '?')}: "
        "compare it with the key the charity publishes"
    )
    return bundle["receipt"], bundle["tree_head"], pem


if __name__ == "__main__":
    sys.exit(main())
