"""Giving over JSON: start a donation, the provider's payment notifications, receipts by number.

A donation starts as a pledge and becomes money only when the provider's signed
notification says so; nobody but the provider can confirm a gift.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from services.api.deps import DonorStoreDep, GivingDep, QueriesDep, WebSecretDep
from services.api.errors import INVALID, INVALID_BODY, PUBLISHES, RETRY_AFTER_S, errors
from services.api.giving import GiftRequest, GivingRefused
from services.api.models import DonationCreated, DonationIn
from services.api.producer import BrokerUnavailable
from services.api.receipts import ReceiptView, receipt_view
from services.api.web import keyed_hash
from services.donors.adapters.store import IdempotencyConflict
from services.donors.domain.amounts import AmountRefused
from services.donors.domain.receipts import RECEIPT_NO
from services.payments.provider import NotificationRefused, ProviderRefused, ProviderUnavailable

router = APIRouter(tags=["donations"])

IDEMPOTENCY_KEY = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="the same key and body within 24 hours give the same donation; another body: 409",
    ),
]
ReceiptNo = Annotated[str, Query(pattern=RECEIPT_NO.pattern, description="e.g. SIP-2026-0001234")]
Code = Annotated[str, Query(min_length=4, max_length=20, description="the verification code on the receipt")]


def client_hash(request: Request, secret: bytes) -> str:
    """Who is asking, for the rate limits: a keyed hash of the address, never the address."""
    host = request.client.host if request.client else "unknown"
    return keyed_hash(secret, "client:" + host)


def refused(exc: GivingRefused | AmountRefused) -> HTTPException:
    if isinstance(exc, AmountRefused):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return HTTPException(exc.status, str(exc), headers=headers)


def unavailable(what: str, exc: Exception) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{what}; retry later ({exc})",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


@router.post(
    "/api/donations",
    status_code=status.HTTP_201_CREATED,
    responses=errors(
        {
            404: "no project with this project_id",
            409: "the project does not take gifts now, or the Idempotency-Key was used with another body",
            429: "too many donations from this client or for this project just now; wait `Retry-After`",
            **INVALID_BODY,
            **PUBLISHES,
        },
        retry_after=(429, 503),
    ),
)
async def create_donation(
    body: DonationIn,
    request: Request,
    giving: GivingDep,
    secret: WebSecretDep,
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> DonationCreated:
    """Start a gift: answers the provider's pay page to send the donor to. Nothing is money yet."""
    gift = GiftRequest.of(body)
    try:
        made = await giving.pledge(gift, client_hash(request, secret), idempotency_key)
    except (GivingRefused, AmountRefused) as exc:
        raise refused(exc) from exc
    except IdempotencyConflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"Idempotency-Key {exc} was used with a different request body"
        ) from exc
    except BrokerUnavailable as exc:
        raise unavailable("the event log is unavailable, the pledge was not started", exc) from exc
    except (ProviderUnavailable, ProviderRefused) as exc:
        raise unavailable("the payment provider is unavailable", exc) from exc
    p = made.pledge
    return DonationCreated(
        donation_id=p.donation_id,
        status=str(p.status),
        amount_fen=p.amount_fen,
        currency=p.currency,
        pay_url=made.pay_url,
        expires_at_ms=p.expires_at_ms,
    )


@router.post(
    "/api/payments/wechatpay/notify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(
        {
            400: "not one of our orders, or an amount or currency other than pledged",
            401: "signature, timestamp, nonce or encryption not valid (forged, stale, replayed, tampered)",
            409: "the provider's charge id already confirmed another donation",
            503: "the event log did not acknowledge the confirmation; the provider retries",
        }
    ),
)
async def payment_notification(request: Request, giving: GivingDep) -> Response:
    """WeChat Pay API v3 payment notification: 204 only once the gift is on the event log."""
    body = await request.body()  # the signature covers the raw bytes: verified before parsing
    try:
        await giving.notified(request.headers, body)
    except NotificationRefused as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"notification refused: {exc}",
            headers={"WWW-Authenticate": "WECHATPAY2-SHA256-RSA2048"},
        ) from exc
    except GivingRefused as exc:
        raise refused(exc) from exc
    except BrokerUnavailable as exc:
        raise unavailable("the event log is unavailable, the gift is not confirmed yet", exc) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/api/donor-receipts",
    responses=errors({404: "no receipt with this number and code", **INVALID}),
)
def donor_receipt(
    receipt_no: ReceiptNo, code: Code, store: DonorStoreDep, queries: QueriesDep, request: Request
) -> dict[str, Any]:
    """A donor's receipt: the gift, its proof once a signed tree head covers it, and where it went.

    Found only with the number and the code printed on the receipt; nothing about the donor."""
    view: ReceiptView | None = receipt_view(store, queries, request.app.state.transparency, receipt_no, code)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no receipt with this number and verification code")
    return view.as_json()
