"""Personal text sealed on the input topics with the donor's own data key.

Kafka keeps records for days or for ever; a donor's message must not outlive
the donor's wish. The API seals it with AES-256-GCM under a key that exists
only in the donor store; the ledger opens it to build the screen's feed item.
Erasing the key (`charity-ledger donors erase`) leaves every copy on the
topics unreadable, while the gift itself, which never depended on the text,
still verifies.

Sealing is deterministic per (key, donor, field): the nonce is derived from
them. A republished event (a retried notification) then carries the same
bytes, so the ledger sees an identical redelivery, not a conflicting one; the
same nonce only ever seals the same text, which GCM allows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v1:"


class CannotUnseal(ValueError):
    """Not sealed with this key for this donor and field (or tampered with)."""


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def _aad(donor_ref: str, field: str) -> bytes:
    return f"{donor_ref}\n{field}".encode()


def seal(key: bytes, donor_ref: str, field: str, text: str) -> str:
    aad = _aad(donor_ref, field)
    nonce = hmac.new(key, aad + b"\n" + text.encode(), hashlib.sha256).digest()[:12]
    sealed = AESGCM(key).encrypt(nonce, text.encode(), aad)
    return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(key: bytes, donor_ref: str, field: str, value: str) -> str:
    if not is_sealed(value):
        raise CannotUnseal("not a sealed value")
    try:
        raw = base64.b64decode(value[len(PREFIX) :], validate=True)
        return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(donor_ref, field)).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError) as exc:
        raise CannotUnseal(f"cannot unseal {field} of donor {donor_ref}") from exc
