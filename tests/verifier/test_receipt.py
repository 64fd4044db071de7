"""The standalone verifier: accepts genuine receipts, names what is wrong with forged ones."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.adapters.signing import key_id, public_key_pem, sign_tree_head
from services.ledger.domain import merkle
from services.ledger.domain.merkle import MerkleTree, TreeHead, canonical_entry_bytes
from services.verifier import receipt as verifier
from services.verifier.receipt import VerificationResult, verify_consistency_between, verify_receipt

REPO = Path(__file__).resolve().parents[2]
KEY = Ed25519PrivateKey.generate()
PEM = public_key_pem(KEY)

ENTRIES: list[dict[str, Any]] = [
    {
        "seq": i,
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "type": "DonationConfirmed",
        "project_id": "p-7",
        "amount": {"minor_units": 1000 + i, "currency": "CNY"},
        "note": "感谢",
    }
    for i in range(13)
]
TREE = MerkleTree.from_leaf_hashes(merkle.leaf_hash(canonical_entry_bytes(e)) for e in ENTRIES)


def make_head(size: int, key: Ed25519PrivateKey = KEY, *, hex_signature: bool = False) -> dict[str, Any]:
    head = TreeHead(size=size, root=TREE.root(size), timestamp_ms=1_725_494_400_000 + size)
    signature = sign_tree_head(key, head)
    return {
        "tree_size": size,
        "root_hash": head.root.hex(),
        "timestamp_ms": head.timestamp_ms,
        "signature": signature.hex() if hex_signature else base64.b64encode(signature).decode(),
    }


def make_receipt(index: int, size: int) -> dict[str, Any]:
    return {
        "entry": json.loads(json.dumps(ENTRIES[index])),
        "leaf_hash": TREE.leaf_hash(index).hex(),
        "leaf_index": index,
        "tree_size": size,
        "inclusion_proof": [h.hex() for h in TREE.inclusion_proof(index, size)],
    }


def assert_invalid(result: VerificationResult, *words: str) -> None:
    assert not result.ok
    for word in words:
        assert word in result.reason, result.reason


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 13), (6, 13), (12, 13), (4, 8)])
def test_a_genuine_receipt_is_valid(index: int, size: int) -> None:
    result = verify_receipt(make_receipt(index, size), make_head(size), PEM)
    assert result.ok, result.reason
    assert f"entry {index}" in result.reason


def test_a_hex_signature_is_accepted_too() -> None:
    assert verify_receipt(make_receipt(3, 13), make_head(13, hex_signature=True), PEM).ok


def test_a_tampered_entry_is_rejected() -> None:
    receipt = make_receipt(6, 13)
    receipt["entry"]["amount"]["minor_units"] = 1
    assert_invalid(verify_receipt(receipt, make_head(13), PEM), "entry was altered")


def test_a_canonical_copy_must_be_the_entry_it_travels_with() -> None:
    # Receipts the API serves carry the hashed text too, for browsers (receipt-verify.js).
    receipt = make_receipt(2, 13)
    receipt["canonical"] = canonical_entry_bytes(receipt["entry"]).decode()
    assert verify_receipt(receipt, make_head(13), PEM).ok
    altered = receipt["canonical"].replace('"minor_units":1002', '"minor_units":9002')
    for canonical in (altered, None, receipt["canonical"].replace("}", "} ", 1), "\ud800"):
        assert_invalid(
            verify_receipt({**receipt, "canonical": canonical}, make_head(13), PEM),
            "canonical text is not its entry",
        )


def test_an_entry_swapped_with_its_leaf_hash_is_caught_by_the_proof() -> None:
    # A forger who also recomputes leaf_hash still has to match the signed root.
    receipt = make_receipt(6, 13)
    receipt["entry"]["amount"]["minor_units"] = 1
    receipt["leaf_hash"] = merkle.leaf_hash(canonical_entry_bytes(receipt["entry"])).hex()
    assert_invalid(verify_receipt(receipt, make_head(13), PEM), "inclusion proof")


def test_a_tampered_proof_is_rejected() -> None:
    receipt = make_receipt(6, 13)
    first = bytearray.fromhex(receipt["inclusion_proof"][0])
    first[5] ^= 0x40
    receipt["inclusion_proof"][0] = first.hex()
    assert_invalid(verify_receipt(receipt, make_head(13), PEM), "inclusion proof")


def test_a_wrong_index_is_rejected() -> None:
    receipt = make_receipt(6, 13)
    receipt["leaf_index"] = 7
    assert_invalid(verify_receipt(receipt, make_head(13), PEM), "inclusion proof")


def test_a_head_signed_by_another_key_is_rejected() -> None:
    impostor = Ed25519PrivateKey.generate()
    assert_invalid(verify_receipt(make_receipt(6, 13), make_head(13, impostor), PEM), "signature")


@pytest.mark.parametrize(
    ("field", "value"),
    [("root_hash", TREE.root(12).hex()), ("tree_size", 12), ("timestamp_ms", 1)],
)
def test_a_forged_head_is_rejected(field: str, value: object) -> None:
    head = make_head(13)
    head[field] = value
    assert_invalid(verify_receipt(make_receipt(6, 13), head, PEM), "signature")


def test_a_receipt_for_another_tree_size_names_the_size_it_needs() -> None:
    assert_invalid(verify_receipt(make_receipt(6, 8), make_head(13), PEM), "size 8")


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("inclusion_proof"),
        lambda r: r.update(leaf_index=True),
        lambda r: r.update(leaf_hash="zz"),
        lambda r: r.update(inclusion_proof="abc"),
        lambda r: r.update(entry=[1, 2]),
        lambda r: r["entry"].update(amount=10.5),
    ],
)
def test_malformed_receipts_get_a_reason_not_an_exception(damage: Any) -> None:
    receipt = make_receipt(6, 13)
    damage(receipt)
    result = verify_receipt(receipt, make_head(13), PEM)
    assert not result.ok and result.reason


def test_a_malformed_key_or_head_gets_a_reason() -> None:
    assert_invalid(verify_receipt(make_receipt(1, 13), make_head(13), "not a key"), "public key")
    head = make_head(13)
    head["signature"] = "!!"
    assert_invalid(verify_receipt(make_receipt(1, 13), head, PEM), "signature")


def test_consistency_between_genuine_heads() -> None:
    for old, new in [(1, 13), (8, 13), (5, 13), (13, 13), (0, 4)]:
        proof = [h.hex() for h in TREE.consistency_proof(old, new)]
        result = verify_consistency_between(make_head(old), make_head(new), proof, PEM)
        assert result.ok, result.reason


def test_consistency_rejects_a_rewritten_log() -> None:
    forged = MerkleTree.from_leaf_hashes([TREE.leaf_hash(i) for i in range(13)])
    forged_root = MerkleTree.from_leaf_hashes(
        [
            *(TREE.leaf_hash(i) for i in range(4)),
            merkle.leaf_hash(b"rewritten"),
            *(TREE.leaf_hash(i) for i in range(5, 13)),
        ]
    ).root()
    head = TreeHead(size=13, root=forged_root, timestamp_ms=2)
    forged_head = {
        "tree_size": 13,
        "root_hash": forged_root.hex(),
        "timestamp_ms": 2,
        "signature": sign_tree_head(KEY, head).hex(),
    }
    proof = [h.hex() for h in forged.consistency_proof(8, 13)]
    assert_invalid(verify_consistency_between(make_head(8), forged_head, proof, PEM), "rewritten")


def test_consistency_rejects_bad_signatures_and_order() -> None:
    proof = [h.hex() for h in TREE.consistency_proof(5, 13)]
    impostor = Ed25519PrivateKey.generate()
    assert_invalid(verify_consistency_between(make_head(5), make_head(13, impostor), proof, PEM), "newer")
    assert_invalid(verify_consistency_between(make_head(13), make_head(5), proof, PEM), "more than")


# --- The verifier agrees with the ledger's own code. ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_canonical_bytes_agree_with_the_ledger(entry: dict[str, Any]) -> None:
    assert verifier.canonical_entry_bytes(entry) == merkle.canonical_entry_bytes(entry)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_tree_head_bytes_agree_with_the_ledger(size: int, timestamp_ms: int, root: bytes) -> None:
    assert (
        verifier.tree_head_bytes(size, timestamp_ms, root)
        == TreeHead(size, root, timestamp_ms).signing_bytes()
    )


def test_the_verifier_imports_nothing_from_the_project() -> None:
    tree = ast.parse(Path(verifier.__file__).read_text(encoding="utf-8"))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not relative
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


# --- Command line. ---


def write_inputs(tmp_path: Path, receipt: dict[str, Any], head: dict[str, Any]) -> list[str]:
    paths = {"receipt.json": json.dumps(receipt), "head.json": json.dumps(head), "pubkey.pem": PEM}
    for name, text in paths.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return [str(tmp_path / name) for name in paths]


def test_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verifier.main(write_inputs(tmp_path, make_receipt(2, 13), make_head(13))) == 0
    assert capsys.readouterr().out.startswith("valid")

    tampered = make_receipt(2, 13)
    tampered["entry"]["project_id"] = "p-8"
    assert verifier.main(write_inputs(tmp_path, tampered, make_head(13))) == 1
    assert "entry was altered" in capsys.readouterr().out

    assert verifier.main([str(tmp_path / "missing.json"), *write_inputs(tmp_path, {}, {})[1:]]) == 2


def test_main_reads_the_downloaded_receipt_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = {"receipt_no": "SIP-2026-0000001", "key_id": "k1", "public_key": PEM}
    path = tmp_path / "receipt-SIP-2026-0000001.json"
    path.write_text(json.dumps({**bundle, "receipt": make_receipt(2, 13), "tree_head": make_head(13)}))
    assert verifier.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "key id k1" in out and "\nvalid" in out

    tampered = make_receipt(2, 13)
    tampered["entry"]["project_id"] = "p-8"
    path.write_text(json.dumps({**bundle, "receipt": tampered, "tree_head": make_head(13)}))
    assert verifier.main([str(path)]) == 1
    path.write_text(json.dumps({"receipt": make_receipt(2, 13)}))
    assert verifier.main([str(path)]) == 2
    with pytest.raises(SystemExit):  # a head without a key is neither form
        verifier.main([str(path), str(path)])


def test_main_refuses_duplicate_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = write_inputs(tmp_path, make_receipt(2, 13), make_head(13))
    text = Path(args[0]).read_text(encoding="utf-8")
    Path(args[0]).write_text(text.replace('"entry": {', '"entry": {"seq": 99, ', 1), encoding="utf-8")
    assert verifier.main(args) == 2
    assert "duplicate key" in capsys.readouterr().out


def test_runs_as_a_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.verifier.receipt",
            *write_inputs(tmp_path, make_receipt(12, 13), make_head(13)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("valid") and not done.stderr


def test_the_head_picks_its_key_by_id_among_several() -> None:
    rotated = Ed25519PrivateKey.generate()
    both = PEM + public_key_pem(rotated)
    old_head = dict(make_head(8), key_id=key_id(KEY))
    new_head = dict(make_head(13, rotated), key_id=key_id(rotated))
    assert verify_receipt(make_receipt(3, 8), old_head, both).ok
    assert verify_receipt(make_receipt(3, 13), new_head, both).ok
    assert verify_consistency_between(
        old_head, new_head, [h.hex() for h in TREE.consistency_proof(8, 13)], both
    ).ok
    assert_invalid(
        verify_receipt(make_receipt(3, 13), new_head, PEM), f"signed by key {key_id(rotated)}", "not among"
    )
    # A head from before key ids, with several keys given, cannot say which to use.
    assert_invalid(verify_receipt(make_receipt(3, 13), make_head(13, rotated), both), "names no key")
    # Naming the wrong key is as bad as a forged signature.
    mislabelled = dict(make_head(13, rotated), key_id=key_id(KEY))
    assert_invalid(verify_receipt(make_receipt(3, 13), mislabelled, both), "does not verify")
