"""Ed25519 signatures over tree heads, and the ledger's signing key on disk.

Kept out of ``domain/`` because it reads and writes the key file. The bytes
signed are ``TreeHead.signing_bytes()``; the public verifier
(``services/verifier/receipt.py``) rebuilds them independently.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, select

from services.contracts.events import SigningKeyPublished, TreeHeadPublished, derived_id
from services.ledger.adapters import tables as t
from services.ledger.domain.merkle import TreeHead

ALGORITHM = "Ed25519"


def sign_tree_head(private_key: Ed25519PrivateKey, head: TreeHead) -> bytes:
    """A 64-byte Ed25519 signature over the head's canonical encoding."""
    return private_key.sign(head.signing_bytes())


def verify_tree_head(public_key: Ed25519PublicKey, head: TreeHead, signature: bytes) -> bool:
    try:
        public_key.verify(signature, head.signing_bytes())
    except InvalidSignature:
        return False
    return True


class NoSigningKey(LookupError):
    """The ledger has no key to sign with and may not create one."""


def load_or_create_signing_key(path: Path, create: bool = True) -> Ed25519PrivateKey:
    """Load the PEM (PKCS#8, unencrypted) key at ``path``, creating it first if absent
    and `create` allows it (else `NoSigningKey`).

    A new key is written to a private temporary file (mode 0600 from the start,
    so it is never readable by others) and then hard-linked into place: the link
    fails if another process created the key meanwhile, and then both use that
    one instead of each signing with a key of its own.
    """
    if not path.exists():
        if not create:
            raise NoSigningKey(
                f"no tree-head signing key at {path}: create the first one with "
                "`charity-ledger keys rotate` and keep it safe (a new key is never made silently "
                "for a production database: heads would stop verifying with the published one)"
            )
        _create_key_file(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The key's id: the hex SHA-256 of its raw public bytes (what the verifier computes too)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def register_public_key(engine: Engine, key: Ed25519PrivateKey, valid_from: datetime) -> str:
    """Record the key's public half in `signing_keys` (once): the read side serves it,
    and `verify` finds each head's key there by id."""
    kid = key_id(key)
    with engine.begin() as conn:
        known = conn.scalar(select(t.signing_keys.c.key_id).where(t.signing_keys.c.key_id == kid))
        if known is None:
            conn.execute(
                t.signing_keys.insert().values(
                    key_id=kid, algorithm=ALGORITHM, public_key=public_key_pem(key), valid_from=valid_from
                )
            )
    return kid


def rotate_signing_key(path: Path, engine: Engine, now: datetime) -> tuple[str | None, str]:
    """Put a new key at `path` and register it; the old one is kept beside it, retired.

    Returns (the old key's id or None, the new key's id). A running ledger notices
    the new file at its next signing turn; heads signed before keep their key id.
    """
    old: str | None = None
    if path.exists():
        old = key_id(load_or_create_signing_key(path, create=False))
        retired = path.with_name(f"{path.name}.{old[:16]}.retired")
        os.replace(path, retired)
    _create_key_file(path)
    new = register_public_key(engine, load_or_create_signing_key(path, create=False), now)
    return old, new


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # the umask may only narrow it, but be explicit
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public half as SubjectPublicKeyInfo PEM: what the verifier is given."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def load_public_key_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def checkpoint_events(
    key: Ed25519PrivateKey, head: TreeHead, at: datetime
) -> tuple[SigningKeyPublished, TreeHeadPublished]:
    """The checkpoints topic's records of `key` and of `head` signed with it, as the
    ledger's TreeHeadSigner publishes them: what a restore checks the journal with."""
    kid = key_id(key)
    return (
        SigningKeyPublished(
            event_id=derived_id("signing-key", kid),
            occurred_at=at,
            actor="ledger",
            project_id="ledger",
            key_id=kid,
            algorithm=ALGORITHM,
            public_key=public_key_pem(key),
            valid_from=at,
        ),
        TreeHeadPublished(
            event_id=derived_id("tree-head", str(head.size)),
            occurred_at=at,
            actor="ledger",
            project_id="ledger",
            tree_size=head.size,
            root_hash=head.root.hex(),
            timestamp_ms=head.timestamp_ms,
            signature=base64.b64encode(sign_tree_head(key, head)).decode("ascii"),
            key_id=kid,
        ),
    )
