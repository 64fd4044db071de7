"""WeChat Pay API v3's cryptography, as its documentation specifies it; no network, no files.

- **Signed bodies** (the provider's responses and notifications): headers
  `Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Signature` (base64) and
  `Wechatpay-Serial`; the signed message is `timestamp\\nnonce\\nbody\\n` over
  the raw body bytes, checked before anything parses the body; RSA PKCS#1 v1.5
  with SHA-256 under the platform public key that the serial names. Two platform
  keys are valid at once while the provider rotates, so keys are looked up by
  serial. A timestamp more than 300 s away from our clock, in either direction,
  is refused.
- **Replays**: a notification's nonce is remembered in a `NonceStore` for twice
  the tolerance, since a message with timestamp T is acceptable from T-300 s to
  T+300 s: a window of only 300 s from first sight would let a copy through.
  The nonce is checked, and recorded, only after the signature verified, so
  nobody can fill the store with nonces they made up. The API passes no
  store: its donor store records the nonce with the pledge it pays, in one
  transaction, where a unique index refuses the replay.
- **Requests** (the merchant's): `Authorization: WECHATPAY2-SHA256-RSA2048
  mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`, the
  signature over `METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n` (URL = path and query).
- **Encrypted resources** (a notification's `resource`): AEAD_AES_256_GCM under
  the 32-byte APIv3 key, `ciphertext` the base64 of ciphertext||tag, a 12-character nonce.

Every failure raises `NotificationRefused` with its own reason; the client
reports the same failure on a response as `UnverifiedResponse`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.payments.provider import NonceStore, NotificationRefused

TIMESTAMP_TOLERANCE = timedelta(seconds=300)
NONCE_WINDOW = 2 * TIMESTAMP_TOLERANCE
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
API_V3_KEY_BYTES = 32
AEAD_NONCE_CHARS = 12

HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_SERIAL = "Wechatpay-Serial"
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"

# WeChat Pay writes its times in Beijing time; any offset is valid RFC 3339, this one reads naturally.
CHINA_TIME = timezone(timedelta(hours=8), "CST")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NONCE_ALPHABET = string.ascii_letters + string.digits
# Bounded so that a header cannot make us hash or store something large.
_NONCE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_SERIAL = re.compile(r"[0-9A-Za-z_]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_AUTH_FIELD = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


class PlatformKeys(Protocol):
    def public_key(self, serial: str) -> RSAPublicKey | None:
        """The platform key with this serial, None if it is not one we trust."""
        ...


class StaticPlatformKeys:
    """Platform keys given in memory (tests, or keys loaded once)."""

    def __init__(self, keys: Mapping[str, RSAPublicKey]) -> None:
        self._keys = dict(keys)

    def public_key(self, serial: str) -> RSAPublicKey | None:
        return self._keys.get(serial)


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def unix_seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


def unix_millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in a payment: give it a time zone")
    return moment.astimezone(CHINA_TIME).isoformat(timespec="seconds")


def signed_message(*lines: str | bytes) -> bytes:
    """Each line followed by a line feed, bytes kept as they are (the body is never re-encoded)."""
    return b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)


def sign(key: RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def signature_matches(key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


# --- signed bodies: responses and notifications ---------------------------------------------------


@dataclass(frozen=True)
class BodySignature:
    timestamp: str
    nonce: str
    signature: str
    serial: str

    def headers(self) -> dict[str, str]:
        return {
            HEADER_TIMESTAMP: self.timestamp,
            HEADER_NONCE: self.nonce,
            HEADER_SIGNATURE: self.signature,
            HEADER_SERIAL: self.serial,
            HEADER_SIGNATURE_TYPE: SIGNATURE_TYPE,
        }


def sign_body(key: RSAPrivateKey, serial: str, body: bytes, now: datetime) -> BodySignature:
    timestamp, nonce = str(unix_seconds(now)), new_nonce()
    return BodySignature(timestamp, nonce, sign(key, signed_message(timestamp, nonce, body)), serial)


def verify_body(headers: Mapping[str, str], body: bytes, keys: PlatformKeys, now: datetime) -> BodySignature:
    """The body's signature, verified: header form, timestamp tolerance, serial, signature."""
    lowered = {name.lower(): value for name, value in headers.items()}
    found = {}
    for name in (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL):
        value = lowered.get(name.lower(), "").strip()
        if not value:
            raise NotificationRefused(f"missing header {name}")
        found[name] = value
    signature_type = lowered.get(HEADER_SIGNATURE_TYPE.lower(), SIGNATURE_TYPE)
    if signature_type != SIGNATURE_TYPE:
        raise NotificationRefused(f"unsupported {HEADER_SIGNATURE_TYPE} {signature_type!r}")
    signed = BodySignature(
        found[HEADER_TIMESTAMP], found[HEADER_NONCE], found[HEADER_SIGNATURE], found[HEADER_SERIAL]
    )
    check_timestamp(signed.timestamp, now, HEADER_TIMESTAMP)
    if not _NONCE.fullmatch(signed.nonce):
        raise NotificationRefused(f"malformed header {HEADER_NONCE}")
    key = keys.public_key(signed.serial) if _SERIAL.fullmatch(signed.serial) else None
    if key is None:
        raise NotificationRefused(f"unknown platform key serial {signed.serial[:64]!r}")
    if not signature_matches(key, signed_message(signed.timestamp, signed.nonce, body), signed.signature):
        raise NotificationRefused("bad signature")
    return signed


def verify_notification(
    headers: Mapping[str, str], body: bytes, keys: PlatformKeys, nonces: NonceStore | None, now: datetime
) -> BodySignature:
    """verify_body, then refuse a nonce seen before within the window in which it could be valid
    (nonces None: the caller records and checks it; see WechatPayV3Provider.from_settings)."""
    signed = verify_body(headers, body, keys, now)
    if nonces is not None and not nonces.fresh(
        signed.nonce, unix_millis(now), NONCE_WINDOW // timedelta(milliseconds=1)
    ):
        raise NotificationRefused("replayed nonce")
    return signed


def check_timestamp(timestamp: str, now: datetime, what: str) -> None:
    if not _TIMESTAMP.fullmatch(timestamp):
        raise NotificationRefused(f"malformed {what} {timestamp[:20]!r}")
    skew = abs(int(timestamp) - unix_seconds(now))
    if skew > TIMESTAMP_TOLERANCE.total_seconds():
        raise NotificationRefused(f"stale {what}: {skew} s from our clock")


# --- the merchant's requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str

    def header(self) -> str:
        fields = ",".join(f'{name}="{getattr(self, name)}"' for name in _AUTH_FIELDS)
        return f"{SIGNATURE_TYPE} {fields}"

    @classmethod
    def parse(cls, header: str) -> Authorization:
        """ValueError with the reason when the header is not a WECHATPAY2-SHA256-RSA2048 one."""
        scheme, _, rest = header.strip().partition(" ")
        if scheme != SIGNATURE_TYPE:
            raise ValueError(f"authorization scheme is not {SIGNATURE_TYPE}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            match = _AUTH_FIELD.fullmatch(part)
            if match is None or match[1] in fields:
                raise ValueError("malformed authorization field")
            fields[match[1]] = match[2]
        if set(fields) != set(_AUTH_FIELDS):
            raise ValueError(f"authorization needs exactly {', '.join(_AUTH_FIELDS)}")
        return cls(**fields)

    def message(self, method: str, url: str, body: bytes) -> bytes:
        return signed_message(method.upper(), url, self.timestamp, self.nonce_str, body)


def sign_request(
    key: RSAPrivateKey, mchid: str, serial_no: str, method: str, url: str, body: bytes, now: datetime
) -> Authorization:
    """`url` is the path with its query, exactly as sent."""
    unsigned = Authorization(mchid, new_nonce(), "", str(unix_seconds(now)), serial_no)
    signature = sign(key, unsigned.message(method, url, body))
    return Authorization(mchid, unsigned.nonce_str, signature, unsigned.timestamp, serial_no)


def request_signature_matches(
    auth: Authorization, key: RSAPublicKey, method: str, url: str, body: bytes
) -> bool:
    return signature_matches(key, auth.message(method, url, body), auth.signature)


# --- encrypted resources ----------------------------------------------------------------------------


def encrypt_resource(
    api_v3_key: bytes, plaintext: bytes, associated_data: str, original_type: str, nonce: str | None = None
) -> dict[str, str]:
    nonce = nonce or new_nonce(AEAD_NONCE_CHARS)
    sealed = AESGCM(api_v3_key).encrypt(nonce.encode("ascii"), plaintext, associated_data.encode())
    return {
        "algorithm": AEAD_ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
        "original_type": original_type,
    }


def decrypt_resource(api_v3_key: bytes, resource: object) -> bytes:
    if not isinstance(resource, Mapping):
        raise NotificationRefused("undecryptable resource: not an object")
    algorithm, ciphertext = resource.get("algorithm"), resource.get("ciphertext")
    nonce, associated_data = resource.get("nonce"), resource.get("associated_data", "")
    if algorithm != AEAD_ALGORITHM:
        raise NotificationRefused(f"undecryptable resource: algorithm {str(algorithm)[:40]!r}")
    if not (isinstance(nonce, str) and nonce.isascii() and len(nonce) == AEAD_NONCE_CHARS):
        raise NotificationRefused("undecryptable resource: the nonce is not 12 ASCII characters")
    if not isinstance(ciphertext, str) or not isinstance(associated_data, str):
        raise NotificationRefused("undecryptable resource: ciphertext and associated_data must be text")
    if len(api_v3_key) != API_V3_KEY_BYTES:
        raise ValueError("the APIv3 key must be 32 bytes")
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        return AESGCM(api_v3_key).decrypt(nonce.encode("ascii"), sealed, associated_data.encode())
    except binascii.Error as error:
        raise NotificationRefused("undecryptable resource: ciphertext is not base64") from error
    except InvalidTag as error:
        # A wrong key, tampered ciphertext or other associated data all end here: GCM cannot tell them apart.
        raise NotificationRefused("undecryptable resource: authentication tag mismatch") from error


def parse_json_object(data: bytes, what: str) -> dict[str, object]:
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise NotificationRefused(f"malformed JSON in {what}") from error
    if not isinstance(parsed, dict):
        raise NotificationRefused(f"malformed JSON in {what}: not an object")
    return parsed
