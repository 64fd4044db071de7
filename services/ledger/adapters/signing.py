"""Ed25519 signatures over tree heads, and the ledger's signing key on disk.

Kept out of ``domain/`` because it reads and writes the key file. The bytes
signed are ``TreeHead.signing_bytes()``; the public verifier
(``services/verifier/receipt.py``) rebuilds them independently.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.ledger.domain.merkle import TreeHead


def sign_tree_head(private_key: Ed25519PrivateKey, head: TreeHead) -> bytes:
    """A 64-byte Ed25519 signature over the head's canonical encoding."""
    return private_key.sign(head.signing_bytes())


def verify_tree_head(public_key: Ed25519PublicKey, head: TreeHead, signature: bytes) -> bool:
    try:
        public_key.verify(signature, head.signing_bytes())
    except InvalidSignature:
        return False
    return True


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the PEM (PKCS#8, unencrypted) key at ``path``, creating it first if absent.

    A new key is written to a private temporary file (mode 0600 from the start,
    so it is never readable by others) and then hard-linked into place: the link
    fails if another process created the key meanwhile, and then both use that
    one instead of each signing with a key of its own.
    """
    if not path.exists():
        _create_key_file(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    _write_public_key(key, public_key_file(path))
    return key


def public_key_file(private_key_path: Path) -> Path:
    """Where the public half is kept beside the private key: what the read side serves,
    so that nothing but the ledger ever opens the private key."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def _write_public_key(key: Ed25519PrivateKey, path: Path) -> None:
    pem = public_key_pem(key)
    if path.exists() and path.read_text(encoding="ascii") == pem:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(pem, encoding="ascii")
    os.replace(tmp, path)


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
