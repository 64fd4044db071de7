from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.payments.provider import InMemoryNonceStore, NotificationRefused
from services.payments.wechatpay_keys import new_rsa_key
from services.payments.wechatpay_v3 import (
    NONCE_WINDOW,
    Authorization,
    StaticPlatformKeys,
    decrypt_resource,
    encrypt_resource,
    request_signature_matches,
    rfc3339,
    sign,
    sign_body,
    sign_request,
    signed_message,
    unix_seconds,
    verify_body,
    verify_notification,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BODY = '{"id":"EV-1","summary":"支付成功"}'.encode()
API_V3_KEY = b"0123456789abcdefghijABCDEFGHIJ01"


@pytest.fixture(scope="module")
def old_key() -> RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="module")
def new_key() -> RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="module")
def keys(old_key: RSAPrivateKey, new_key: RSAPrivateKey) -> StaticPlatformKeys:
    return StaticPlatformKeys({"OLD": old_key.public_key(), "NEW": new_key.public_key()})


def signed_headers(
    key: RSAPrivateKey, serial: str = "NEW", at: datetime = NOW, body: bytes = BODY, nonce: str = "n0nce"
) -> dict[str, str]:
    timestamp = str(unix_seconds(at))
    signature = sign(key, signed_message(timestamp, nonce, body))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial,
    }


def refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(NotificationRefused) as refused:
        call()
    return refused.value.reason


def test_a_signed_body_verifies(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    signed = sign_body(new_key, "NEW", BODY, NOW)
    assert verify_body(signed.headers(), BODY, keys, NOW) == signed


def test_header_names_are_case_insensitive(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    headers = {name.lower(): value for name, value in signed_headers(new_key).items()}
    verify_body(headers, BODY, keys, NOW)


@pytest.mark.parametrize("field", ["body", "Wechatpay-Timestamp", "Wechatpay-Nonce"])
def test_anything_tampered_with_is_a_bad_signature(
    field: str, new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    headers, body = signed_headers(new_key), BODY
    if field == "body":
        body = BODY.replace(b"EV-1", b"EV-2")
    elif field == "Wechatpay-Timestamp":
        headers[field] = str(int(headers[field]) + 1)
    else:
        headers[field] = "other"
    assert refusal(lambda: verify_body(headers, body, keys, NOW)) == "bad signature"


def test_a_signature_that_is_not_base64_is_a_bad_signature(
    new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    headers = {**signed_headers(new_key), "Wechatpay-Signature": "not base64!"}
    assert refusal(lambda: verify_body(headers, BODY, keys, NOW)) == "bad signature"


@pytest.mark.parametrize("offset_s", [-300, 300])
def test_timestamps_exactly_300_s_away_are_accepted(
    offset_s: int, new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    headers = signed_headers(new_key, at=NOW + timedelta(seconds=offset_s))
    verify_body(headers, BODY, keys, NOW)


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_timestamps_301_s_away_are_stale(
    offset_s: int, new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    headers = signed_headers(new_key, at=NOW + timedelta(seconds=offset_s))
    reason = refusal(lambda: verify_body(headers, BODY, keys, NOW))
    assert reason == "stale Wechatpay-Timestamp: 301 s from our clock"


def test_a_timestamp_that_is_not_a_number_is_refused(
    new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    headers = {**signed_headers(new_key), "Wechatpay-Timestamp": "12:00"}
    assert refusal(lambda: verify_body(headers, BODY, keys, NOW)).startswith("malformed Wechatpay-Timestamp")


@pytest.mark.parametrize(
    "header", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_a_missing_header_is_named(header: str, new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    headers = signed_headers(new_key)
    del headers[header]
    assert refusal(lambda: verify_body(headers, BODY, keys, NOW)) == f"missing header {header}"


def test_another_signature_type_is_refused(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    headers = {**signed_headers(new_key), "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    assert "Wechatpay-Signature-Type" in refusal(lambda: verify_body(headers, BODY, keys, NOW))


def test_an_unknown_serial_is_refused(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    headers = signed_headers(new_key, serial="RETIRED")
    assert refusal(lambda: verify_body(headers, BODY, keys, NOW)) == "unknown platform key serial 'RETIRED'"


def test_a_key_verifies_only_under_its_own_serial(old_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    headers = signed_headers(old_key, serial="NEW")
    assert refusal(lambda: verify_body(headers, BODY, keys, NOW)) == "bad signature"


def test_during_rotation_both_platform_keys_verify(
    old_key: RSAPrivateKey, new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    verify_body(signed_headers(old_key, serial="OLD"), BODY, keys, NOW)
    verify_body(signed_headers(new_key, serial="NEW"), BODY, keys, NOW)


def test_a_replayed_notification_is_refused(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    nonces = InMemoryNonceStore()
    headers = signed_headers(new_key)
    verify_notification(headers, BODY, keys, nonces, NOW)
    later = NOW + timedelta(seconds=299)
    assert refusal(lambda: verify_notification(headers, BODY, keys, nonces, later)) == "replayed nonce"


def test_a_nonce_is_refused_for_as_long_as_a_message_could_carry_it(
    new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    """Seen with a timestamp 300 s ahead, a copy is still fresh 600 s later: so is the nonce's memory."""
    nonces = InMemoryNonceStore()
    first = signed_headers(new_key, at=NOW + timedelta(seconds=300))
    verify_notification(first, BODY, keys, nonces, NOW)
    just_inside = NOW + NONCE_WINDOW - timedelta(seconds=1)
    assert refusal(lambda: verify_notification(first, BODY, keys, nonces, just_inside)) == "replayed nonce"


def test_a_nonce_is_accepted_again_after_the_window(new_key: RSAPrivateKey, keys: StaticPlatformKeys) -> None:
    nonces = InMemoryNonceStore()
    verify_notification(signed_headers(new_key), BODY, keys, nonces, NOW)
    later = NOW + NONCE_WINDOW
    verify_notification(signed_headers(new_key, at=later), BODY, keys, nonces, later)


def test_a_forged_notification_does_not_use_up_its_nonce(
    old_key: RSAPrivateKey, new_key: RSAPrivateKey, keys: StaticPlatformKeys
) -> None:
    nonces = InMemoryNonceStore()
    forged = signed_headers(old_key, serial="NEW")
    assert refusal(lambda: verify_notification(forged, BODY, keys, nonces, NOW)) == "bad signature"
    verify_notification(signed_headers(new_key), BODY, keys, nonces, NOW)


# --- AEAD_AES_256_GCM ---


def test_a_resource_decrypts_to_what_was_encrypted() -> None:
    plaintext = json.dumps({"out_trade_no": "T-100001", "amount": {"total": 1234}}).encode()
    resource = encrypt_resource(API_V3_KEY, plaintext, "transaction", "transaction")
    assert resource["algorithm"] == "AEAD_AES_256_GCM" and len(resource["nonce"]) == 12
    assert decrypt_resource(API_V3_KEY, json.loads(json.dumps(resource))) == plaintext


def test_the_documented_resource_form_decrypts() -> None:
    """Built by hand as WeChat Pay's documentation describes it: base64(ciphertext || 16-byte tag)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = AESGCM(API_V3_KEY).encrypt(b"fGKA8w3nYqZC", b"{}", b"certificate")
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": "certificate",
        "nonce": "fGKA8w3nYqZC",
    }
    assert decrypt_resource(API_V3_KEY, resource) == b"{}"


def tampered_ciphertext(resource: dict[str, str]) -> dict[str, str]:
    sealed = bytearray(base64.b64decode(resource["ciphertext"]))
    sealed[0] ^= 1
    return {**resource, "ciphertext": base64.b64encode(bytes(sealed)).decode()}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (tampered_ciphertext, API_V3_KEY),
        (lambda r: r, b"X" * 32),
        (lambda r: {**r, "associated_data": "certificate"}, API_V3_KEY),
        (lambda r: {**r, "nonce": "AAAAAAAAAAAA"}, API_V3_KEY),
    ],
    ids=["tampered ciphertext", "wrong key", "wrong associated data", "other nonce"],
)
def test_a_resource_that_does_not_authenticate_is_refused(change: object, key: bytes) -> None:
    assert callable(change)
    resource = change(encrypt_resource(API_V3_KEY, b"{}", "transaction", "transaction"))
    reason = refusal(lambda: decrypt_resource(key, resource))
    assert reason == "undecryptable resource: authentication tag mismatch"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"algorithm": "AEAD_AES_128_GCM"}, "algorithm"),
        ({"nonce": "short"}, "12 ASCII characters"),
        ({"ciphertext": "%%%"}, "not base64"),
        ({"ciphertext": None}, "must be text"),
    ],
)
def test_a_malformed_resource_is_refused(change: dict[str, object], expected: str) -> None:
    resource = {**encrypt_resource(API_V3_KEY, b"{}", "transaction", "transaction"), **change}
    reason = refusal(lambda: decrypt_resource(API_V3_KEY, resource))
    assert reason.startswith("undecryptable resource") and expected in reason


def test_a_resource_that_is_not_an_object_is_refused() -> None:
    assert refusal(lambda: decrypt_resource(API_V3_KEY, "ciphertext")).startswith("undecryptable resource")


# --- the merchant's Authorization header ---

URL = "/v3/pay/transactions/out-trade-no/T-100001?mchid=1900000109"


def test_an_authorization_header_round_trips(new_key: RSAPrivateKey) -> None:
    auth = sign_request(new_key, "1900000109", "SERIAL1", "GET", URL, b"", NOW)
    header = auth.header()
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="')
    parsed = Authorization.parse(header)
    assert parsed == auth
    assert parsed.timestamp == str(unix_seconds(NOW))
    assert request_signature_matches(parsed, new_key.public_key(), "GET", URL, b"")


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [("POST", URL, b""), ("GET", URL.replace("T-100001", "T-100002"), b""), ("GET", URL, b"{}")],
    ids=["method", "url", "body"],
)
def test_a_request_signature_covers_method_url_and_body(
    new_key: RSAPrivateKey, method: str, url: str, body: bytes
) -> None:
    auth = sign_request(new_key, "1900000109", "SERIAL1", "GET", URL, b"", NOW)
    assert not request_signature_matches(auth, new_key.public_key(), method, url, body)


@pytest.mark.parametrize(
    "header",
    [
        'Bearer mchid="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",timestamp="1",'
        'serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="n",signature="s",timestamp="1",serial_no="x"',
    ],
    ids=["scheme", "missing field", "repeated field", "unquoted"],
)
def test_a_malformed_authorization_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        Authorization.parse(header)


def test_times_are_written_in_rfc_3339_and_naive_ones_refused() -> None:
    assert rfc3339(NOW) == "2026-05-01T20:00:00+08:00"
    with pytest.raises(ValueError):
        rfc3339(datetime(2026, 5, 1, 12, 0))
