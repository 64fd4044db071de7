"""A WeChat Pay API v3 sandbox: a FastAPI app that behaves like WeChat Pay towards one merchant,
for `make run` and the tests. State is in memory and gone when it stops.

What it imitates:
- the merchant endpoints the project uses, at WeChat Pay's paths: H5 create
  (`POST /v3/pay/transactions/h5` → `h5_url`), query by out_trade_no, close,
  and domestic refunds, with WeChat's JSON shapes and error bodies
  (`{"code", "message"}`: SIGN_ERROR, PARAM_ERROR, ORDER_NOT_EXIST, ORDERPAID,
  ORDERCLOSED, INVALID_REQUEST, …);
- the merchant's request signatures (WECHATPAY2-SHA256-RSA2048 Authorization,
  checked against the merchant key, 401 on failure) and the provider's own:
  every answer and notification signed with the platform key, `Wechatpay-*` headers;
- a hosted pay page (`/pay/{prepay_id}`, the H5 cashier) with pay, fail and
  cancel, returning the payer to the `redirect_url` the merchant appended,
  which must be on the merchant's H5 domain (`public_base_url`);
- TRANSACTION.SUCCESS notifications, the transaction encrypted with
  AEAD_AES_256_GCM under the APIv3 key, retried with capped back-off until the
  merchant answers 2xx (services/payments/sandbox/notifier.py);
- platform key rotation: two keys at once, signing with the newest.

What it does not: other payment kinds (JSAPI, Native, app), the certificate
download API (`/v3/certificates`; the merchant reads public keys from
`wechatpay_platform_keys_dir`), refund notifications and refunds that take
time (a refund succeeds at once), bills, payer identity and IP checks,
partial payment, coupons (payer_total always equals total), rate limits,
and persistence. Orders past `time_expire` cannot be paid but are not
closed by the sandbox. The `/sandbox/…` endpoints (services/payments/sandbox/admin.py)
exist only here.

Modules: `orders` (states), `simulator` (what the routes share), `merchant_api`,
`pay_page` (+ templates/), `notifier`, `platform_keys`, `admin`, `main`.
"""
