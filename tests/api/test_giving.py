"""Giving end to end: pledge → sandbox pay → signed notification → Kafka → ledger → receipt.

Real broker, both databases, the sandbox and the API over loopback HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.contracts import events as ev
from services.contracts.sealed import is_sealed
from services.contracts.topics import Topics
from services.donors.adapters import tables as donor_tables
from services.donors.commands import erase_command
from services.ledger.adapters import tables as t
from services.ledger.ops.commands import registered_keys
from services.ledger.ops.verify import verify
from services.verifier import receipt as standalone_verifier
from tests.api.test_end_to_end import project_body
from tests.fixtures import factories as f
from tests.fixtures.giving import GivingSystem
from tests.fixtures.ledger import eventually
from tests.ledger.test_ledger_integration import produce, read_topic

pytestmark = pytest.mark.integration
STAFF = {"Authorization": "Bearer test-staff-token"}


def open_project(api: httpx.Client, project_id: str) -> None:
    body = project_body(project_id)
    assert api.post("/api/projects", json=body, headers=STAFF).status_code == 202
    totals = f"/api/projects/{project_id}/totals"
    eventually(lambda: api.get(totals).status_code == 200, what="registered")
    for step, state in (("approve", "approved"), ("open-fundraising", "fundraising")):
        assert api.post(f"/api/projects/{project_id}/{step}", headers=STAFF).status_code == 202
        eventually(lambda s=state: api.get(totals).json()["status"] == s, what=state)


def pledge(
    api: httpx.Client, project_id: str = "meals", amount_fen: int = 5000, **extra: Any
) -> dict[str, Any]:
    answer = api.post("/api/donations", json={"project_id": project_id, "amount_fen": amount_fen, **extra})
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def trade_no(made: dict[str, Any]) -> str:
    return str(made["donation_id"]).replace("-", "")


def pledge_row(giving: GivingSystem, donation_id: str) -> Any:
    with giving.ledger.app.store.engine.connect() as conn:
        return conn.execute(
            select(donor_tables.pledges).where(donor_tables.pledges.c.donation_id == donation_id)
        ).one()


def confirmed_entries(giving: GivingSystem) -> int:
    with giving.ledger.app.store.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).select_from(t.journal).where(t.journal.c.kind == "DonationConfirmed")
            )
            or 0
        )


def receipt(giving: GivingSystem, number: str, code: str) -> httpx.Response:
    return giving.api.get("/api/donor-receipts", params={"receipt_no": number, "code": code})


def test_a_gift_from_pledge_to_verified_receipt(giving: GivingSystem, tmp_path: Path) -> None:
    open_project(giving.api, "meals")
    made = pledge(
        giving.api, anonymity="masked", display_name="王小明", consent_to_show_name=True, message="加油"
    )
    assert made["status"] == "pending" and made["pay_url"].startswith(giving.settings.payment_base_url)
    page = giving.sandbox.get(made["pay_url"].removeprefix(giving.settings.payment_base_url))
    assert page.status_code == 200 and "50.00" in page.text

    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200
    eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="confirmed")
    row = pledge_row(giving, made["donation_id"])
    assert row.receipt_no == "SIP-2026-0000001" or row.receipt_no.startswith("SIP-")
    totals = "/api/projects/meals/totals"
    eventually(lambda: giving.api.get(totals).json()["gross_fen"] == 5000, what="the gift in the totals")

    assert receipt(giving, row.receipt_no, "WRONGCOD").status_code == 404
    giving.ledger.app.signer.publish_if_grown()
    eventually(lambda: receipt(giving, row.receipt_no, row.verification_code).json()["proof"], what="a proof")
    body = receipt(giving, row.receipt_no, row.verification_code.lower()).json()
    assert (body["amount_fen"], body["currency"], body["project_id"]) == (5000, "CNY", "meals")
    assert body["payment_reference"] == row.provider_charge_id and body["in_ledger"]
    assert body["proof"]["entry"]["body"]["receipt_no"] == row.receipt_no  # bound into the signed journal
    assert "王" not in str(body) and "加油" not in str(body)  # nothing about the donor

    # The name went no further than its masked form; the message went to the ledger's feed.
    page = giving.api.get(f"/receipts/{row.receipt_no}", params={"code": row.verification_code})
    assert page.status_code == 200 and row.receipt_no in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

    # The downloaded receipt file checks with the standalone verifier alone.
    download = giving.api.get(f"/receipts/{row.receipt_no}/download", params={"code": row.verification_code})
    assert download.headers["content-disposition"].startswith("attachment")
    saved = tmp_path / f"receipt-{row.receipt_no}.json"
    saved.write_bytes(download.content)
    assert standalone_verifier.main([str(saved)]) == 0

    # On the input topic the message is sealed with the donor's key, the name only masked;
    # the feed the screens read carries the opened message.
    topics = Topics(giving.settings.topic_prefix)
    [sent] = [
        e
        for e in read_topic(giving.settings.kafka_bootstrap, topics.donations)
        if isinstance(e, ev.DonationConfirmed)
    ]
    assert is_sealed(sent.message) and "加油" not in str(sent) and sent.display_name == "王**"
    eventually(
        lambda: (
            [
                (i.shown_name, i.message)
                for i in read_topic(giving.settings.kafka_bootstrap, topics.feed)
                if isinstance(i, ev.DonationFeedItem)
            ]
            == [("王**", "加油")]
        ),
        what="the gift on the feed with its message",
    )

    # Erasing the donor's personal data leaves the receipt, its amounts and its proof intact.
    assert erase_command(giving.settings.database_url, row.receipt_no) == 0
    after = receipt(giving, row.receipt_no, row.verification_code).json()
    assert after["proof"] == body["proof"] and after["amount_fen"] == 5000
    with giving.ledger.app.store.engine.connect() as conn:
        erased = conn.execute(
            select(donor_tables.donor_data).where(donor_tables.donor_data.c.donor_ref == row.donor_ref)
        ).one()
    assert (erased.display_name, erased.message, erased.data_key) == (None, None, None)
    report = verify(giving.ledger.app.store.engine, registered_keys(giving.ledger.app.store.engine))
    assert report.ok, report.problems


def test_repeated_and_out_of_order_notifications_count_each_gift_once(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    first, second = pledge(giving.api, amount_fen=1000), pledge(giving.api, amount_fen=2000)
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(second)}/pay").status_code == 200
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(first)}/pay").status_code == 200
    for made in (first, second, first):
        assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/notify").status_code == 202
    eventually(lambda: giving.api.get("/api/projects/meals/totals").json()["gross_fen"] == 3000, what="both")

    def delivered() -> bool:
        deliveries = giving.sandbox.get("/sandbox/deliveries").json()
        return len(deliveries) == 5 and all(d["state"] == "delivered" for d in deliveries)

    eventually(delivered, what="every notification answered 2xx")
    assert confirmed_entries(giving) == 2
    numbers = sorted(pledge_row(giving, m["donation_id"]).receipt_no for m in (first, second))
    assert numbers == ["SIP-2026-0000001", "SIP-2026-0000002"]  # second paid first: it got number 1
    assert giving.api.get("/api/projects/meals/totals").json()["donations_count"] == 2


def test_an_idempotency_key_makes_one_donation(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    body = {"project_id": "meals", "amount_fen": 5000}
    key = {"Idempotency-Key": "order-7f3a"}
    first = giving.api.post("/api/donations", json=body, headers=key)
    again = giving.api.post("/api/donations", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["donation_id"] == again.json()["donation_id"]
    other = giving.api.post("/api/donations", json={**body, "amount_fen": 6000}, headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


def test_donations_are_rate_limited_per_client(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    for _ in range(giving.settings.donations_per_client_per_minute):
        pledge(giving.api)
    limited = giving.api.post("/api/donations", json={"project_id": "meals", "amount_fen": 5000})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    metrics = giving.api.get("/metrics").text
    assert 'api_donation_limits_total{limit="per_client"} ' in metrics


BAD_GIFTS: list[tuple[dict[str, Any], int, str]] = [
    ({"project_id": "nowhere"}, 404, "unknown project"),
    ({"amount_fen": 0}, 422, "amount_fen"),
    ({"amount_fen": -5}, 422, "amount_fen"),
    ({"amount_fen": 50.5}, 422, "amount_fen"),
    ({"amount_fen": "5000"}, 422, "amount_fen"),
    ({"amount_fen": 5_000_001}, 422, "at most"),
    ({"anonymity": "masked", "display_name": "王小明"}, 422, "consent"),
    ({"display_name": "\u202eevil", "anonymity": "masked", "consent_to_show_name": True}, 422, "U+202E"),
    ({"message": "hi\x00"}, 422, "U+0000"),
    ({"message": "长" * 201}, 422, "message"),
    ({"currency": "USD"}, 409, "currency"),
]


def test_bad_gifts_are_refused_and_nothing_is_written(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    for change, status, says in BAD_GIFTS:
        answer = giving.api.post("/api/donations", json={"project_id": "meals", "amount_fen": 5000, **change})
        assert (answer.status_code, says in answer.json()["detail"]) == (status, True), (change, answer.text)
    with giving.ledger.app.store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(donor_tables.pledges)) == 0
    assert 'api_donation_limits_total{limit="amount_ceiling"}' in giving.api.get("/metrics").text


def test_where_my_money_went_follows_the_disbursements_it_funded(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    made = pledge(giving.api, amount_fen=5000)
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200
    eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="confirmed")
    row = pledge_row(giving, made["donation_id"])
    eventually(
        lambda: receipt(giving, row.receipt_no, row.verification_code).json()["in_ledger"], what="booked"
    )
    assert receipt(giving, row.receipt_no, row.verification_code).json()["uses"] == []

    # Staff pay 30 yuan of it out (until the staff console exists, as records on the topic).
    paid_out = [
        f.disbursement(ev.DisbursementRequested, "meals", "x1", "staff-1", amount_fen=3000),
        f.disbursement(ev.DisbursementApproved, "meals", "x1", "staff-2"),
        f.disbursement(ev.DisbursementPaid, "meals", "x1", "staff-2"),
        f.disbursement(ev.EvidenceAttached, "meals", "x1", "staff-1", document_sha256="b" * 64),
    ]
    produce(giving.settings.kafka_bootstrap, Topics(giving.settings.topic_prefix), paid_out)

    def uses() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = receipt(giving, row.receipt_no, row.verification_code).json()["uses"]
        return found

    eventually(lambda: uses() and uses()[0]["evidence_sha256"], what="the disbursement and its evidence")
    [use] = uses()
    assert (use["disbursement_id"], use["amount_fen"], use["purpose"], use["payee"]) == (
        "x1",
        3000,
        "餐费",
        "助餐点",
    )
    assert use["evidence_sha256"] == ["b" * 64] and use["paid_at"] is not None
    page = giving.api.get(f"/receipts/{row.receipt_no}/uses", params={"code": row.verification_code})
    assert page.status_code == 200 and "餐费" in page.text and "b" * 64 in page.text
