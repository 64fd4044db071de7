"""The WeChat Pay key files: loading them with errors that name the setting, and making local ones.

Production supplies real files (the APIv3 key and merchant key from the
merchant platform, the platform public keys downloaded from WeChat Pay).
`ensure_local_keys` makes stand-ins for `make run` and the tests, only where a
file is absent, so it never replaces a key someone put there:

- the APIv3 key: 32 random ASCII letters and digits, mode 0600;
- the merchant's RSA-2048 private key, PEM, mode 0600;
- the sandbox's platform key: its private half in `sandbox_keys_dir` (beside
  the platform keys directory, so under the var dir by default, and read only
  by the sandbox), its public half as `<serial>.pem` in
  `wechatpay_platform_keys_dir`, where the merchant side trusts it.

Files are written under a temporary name and linked into place, so a reader
never sees half a key and two processes creating the same key keep one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509 import load_pem_x509_certificate

from services.payments.wechatpay_v3 import API_V3_KEY_BYTES
from services.platform.settings import Settings

# Platform key files are looked up by a serial from a request header: only names like these.
_SERIAL_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_MAX_SERIAL = 64


class KeyFileMissing(RuntimeError):
    """A key file the payments need is not there (or unreadable); the message names its setting."""


class KeyFileInvalid(RuntimeError):
    """A key file is there but does not hold what its setting says; the message names the setting."""


def is_serial(text: str) -> bool:
    return 0 < len(text) <= _MAX_SERIAL and set(text) <= _SERIAL_CHARS


def merchant_serial_no(key: RSAPrivateKey) -> str:
    """A stable serial for a merchant key: 40 hex digits of its public key's SHA-256.

    A real merchant sends its API certificate's serial number instead; with
    the sandbox any stable name for the key will do."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:40].upper()


def sandbox_keys_dir(settings: Settings) -> Path:
    """Where the sandbox keeps its platform private keys: beside the public ones, never inside."""
    return Path(settings.wechatpay_platform_keys_dir).parent / "wechatpay-sandbox-private"


# --- loading -----------------------------------------------------------------------------------


def load_api_v3_key(settings: Settings) -> bytes:
    path = Path(settings.wechatpay_api_v3_key_path)
    key = _read(path, "wechatpay_api_v3_key_path").strip()
    if len(key) != API_V3_KEY_BYTES or not key.isascii():
        raise KeyFileInvalid(
            f"wechatpay_api_v3_key_path: {path} must hold the 32-character APIv3 key, "
            f"it holds {len(key)} bytes"
        )
    return key


def load_merchant_key(settings: Settings) -> RSAPrivateKey:
    path = Path(settings.wechatpay_merchant_key_path)
    return load_private_key(path, "wechatpay_merchant_key_path")


def load_private_key(path: Path, setting: str) -> RSAPrivateKey:
    data = _read(path, setting)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as error:
        raise KeyFileInvalid(f"{setting}: {path} is not an unencrypted PEM private key") from error
    if not isinstance(key, RSAPrivateKey):
        raise KeyFileInvalid(f"{setting}: {path} is not an RSA key")
    return key


def load_public_key(path: Path, setting: str) -> RSAPublicKey:
    """A PEM public key, or a PEM certificate (WeChat Pay's platform certificates) for its key."""
    data = _read(path, setting)
    try:
        key = (
            load_pem_x509_certificate(data).public_key()
            if b"BEGIN CERTIFICATE" in data
            else serialization.load_pem_public_key(data)
        )
    except ValueError as error:
        raise KeyFileInvalid(f"{setting}: {path} is neither a PEM public key nor a certificate") from error
    if not isinstance(key, RSAPublicKey):
        raise KeyFileInvalid(f"{setting}: {path} is not an RSA key")
    return key


class PlatformKeyDirectory:
    """The provider's platform public keys, `<serial>.pem` files in one directory.

    A serial not yet known is looked for on disk when it first shows up, so a
    key the provider rotated to is trusted as soon as its file is there,
    without a restart. Keys once loaded stay trusted for the process's life.
    """

    SETTING = "wechatpay_platform_keys_dir"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[str, RSAPublicKey] = {}
        self._lock = threading.Lock()
        for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
            if is_serial(path.stem):
                self._keys[path.stem] = load_public_key(path, self.SETTING)
        if not self._keys:
            raise KeyFileMissing(f"{self.SETTING}: no <serial>.pem platform key in {directory}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformKeyDirectory:
        return cls(Path(settings.wechatpay_platform_keys_dir))

    def serials(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def public_key(self, serial: str) -> RSAPublicKey | None:
        with self._lock:
            known = self._keys.get(serial)
        if known is not None or not is_serial(serial):
            return known
        path = self.directory / f"{serial}.pem"
        if not path.is_file():
            return None
        key = load_public_key(path, self.SETTING)
        with self._lock:
            self._keys[serial] = key
        return key


# --- making local keys -----------------------------------------------------------------------------


def ensure_local_keys(settings: Settings) -> None:
    """Create whichever of the local key files is absent; leave every existing one as it is."""
    api_v3_key = Path(settings.wechatpay_api_v3_key_path)
    if not api_v3_key.exists():
        alphabet = string.ascii_letters + string.digits
        text = "".join(secrets.choice(alphabet) for _ in range(API_V3_KEY_BYTES))
        write_new_file(api_v3_key, text.encode("ascii"), 0o600)
    merchant_key = Path(settings.wechatpay_merchant_key_path)
    if not merchant_key.exists():
        write_new_file(merchant_key, private_pem(new_rsa_key()), 0o600)
    sandbox_dir = sandbox_keys_dir(settings)
    platform_dir = Path(settings.wechatpay_platform_keys_dir)
    if not list(sandbox_dir.glob("*.pem")):
        new_platform_key(sandbox_dir, platform_dir)
    # A public half someone deleted is written again from the private one.
    for private in sandbox_dir.glob("*.pem"):
        public = platform_dir / private.name
        if not public.exists():
            key = load_private_key(private, "the sandbox's platform key")
            write_new_file(public, public_pem(key.public_key()), 0o644)


def new_platform_key(sandbox_dir: Path, platform_dir: Path) -> tuple[str, RSAPrivateKey]:
    """A sandbox platform key: private half in `sandbox_dir`, public half in `platform_dir`."""
    key = new_rsa_key()
    # Real serials are 40 hex digits with no order; these start with the time, so the newest sorts last.
    serial = f"{time.time_ns():016X}{secrets.token_hex(12).upper()}"
    write_new_file(sandbox_dir / f"{serial}.pem", private_pem(key), 0o600)
    write_new_file(platform_dir / f"{serial}.pem", public_pem(key.public_key()), 0o644)
    return serial, key


def new_rsa_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_new_file(path: Path, data: bytes, mode: int) -> bool:
    """Write `path` whole with `mode` unless it exists; False when another writer got there first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)  # the umask may have taken bits off a 0644 file
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise KeyFileMissing(f"{setting}: {path} does not exist") from error
    except OSError as error:
        raise KeyFileMissing(f"{setting}: {path} cannot be read ({error.strerror})") from error
