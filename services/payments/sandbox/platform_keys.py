"""The sandbox's platform keys: it signs with the newest and holds at most two, as WeChat Pay
does while it rotates its platform certificate.

Rotating writes the new public half into the merchant's platform keys
directory (where `PlatformKeyDirectory` finds it by serial) and retires the
oldest key beyond two, both halves, as an expired certificate would be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.payments.wechatpay_keys import (
    KeyFileMissing,
    is_serial,
    load_private_key,
    new_platform_key,
    sandbox_keys_dir,
)
from services.payments.wechatpay_v3 import sign_body
from services.platform.settings import Settings

MAX_KEYS = 2


class SandboxKeyRing:
    def __init__(self, private_dir: Path, public_dir: Path, clock: Callable[[], datetime]) -> None:
        self._private_dir = private_dir
        self._public_dir = public_dir
        self._clock = clock
        # Serials start with their creation time, so sorted means oldest first.
        self._keys: dict[str, RSAPrivateKey] = {
            path.stem: load_private_key(path, "the sandbox's platform key")
            for path in sorted(private_dir.glob("*.pem"))
            if is_serial(path.stem)
        }
        if not self._keys:
            raise KeyFileMissing(
                f"no sandbox platform key in {private_dir}: ensure_local_keys(settings) makes one"
            )
        # Rotation (an admin request) and signing (every response) may run on different threads.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], datetime]) -> SandboxKeyRing:
        return cls(sandbox_keys_dir(settings), Path(settings.wechatpay_platform_keys_dir), clock)

    @property
    def current_serial(self) -> str:
        with self._lock:
            return max(self._keys)

    def serials(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def sign_headers(self, body: bytes) -> dict[str, str]:
        with self._lock:
            serial = max(self._keys)
            key = self._keys[serial]
        return sign_body(key, serial, body, self._clock()).headers()

    def rotate(self) -> str:
        """A new platform key to sign with from now on; its serial."""
        serial, key = new_platform_key(self._private_dir, self._public_dir)
        with self._lock:
            self._keys[serial] = key
            retired = sorted(self._keys)[:-MAX_KEYS]
            for old in retired:
                del self._keys[old]
        for old in retired:
            (self._private_dir / f"{old}.pem").unlink(missing_ok=True)
            (self._public_dir / f"{old}.pem").unlink(missing_ok=True)
        return serial
