"""Taking payments: the provider port the API uses and WeChat Pay API v3 behind it.

- `provider`: `PaymentProvider` (the one interface the API uses), its value
  types and errors, `NonceStore` and `InMemoryNonceStore`;
- `wechatpay_v3`: WeChat Pay v3's signatures, Authorization header and
  AEAD_AES_256_GCM resources (pure cryptography, no I/O);
- `wechatpay_keys`: loading the key files (errors name the setting) and
  `ensure_local_keys` for `make run` and tests;
- `wechatpay_client`: `WechatPayV3Provider`, the PaymentProvider over httpx;
- `sandbox/`: a local imitation of WeChat Pay v3 to run against.

Imports only services.platform (settings); the API imports this package, never the reverse.
"""

from services.payments.provider import (
    InMemoryNonceStore,
    NonceStore,
    NotificationRefused,
    PaymentProvider,
    PaymentRequest,
    PaymentResult,
    PaymentSession,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
    RefundStatus,
    TradeState,
    UnverifiedResponse,
)

__all__ = [
    "InMemoryNonceStore",
    "NonceStore",
    "NotificationRefused",
    "PaymentProvider",
    "PaymentRequest",
    "PaymentResult",
    "PaymentSession",
    "ProviderRefused",
    "ProviderUnavailable",
    "RefundResult",
    "RefundStatus",
    "TradeState",
    "UnverifiedResponse",
]
