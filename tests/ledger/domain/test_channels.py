"""The one classification of where a project's money came from."""

from __future__ import annotations

import pytest

from services.ledger.domain.book import body_of
from services.ledger.domain.channels import Channel, channel_of, channel_of_body
from tests.fixtures import factories as f


def test_online_gifts_by_their_channel_and_qr_codes_by_venue() -> None:
    assert channel_of("DonationConfirmed", "web") == Channel("web")
    assert channel_of("DonationConfirmed", "qr", venue_id="hall-1") == Channel("qr", "hall-1")
    assert channel_of("DonationConfirmed", "qr", venue_id="hall-1").key == "qr:hall-1"
    assert channel_of("DonationConfirmed", "bank_transfer").key == "bank_transfer"


def test_money_counted_at_a_venue_is_a_cash_box_or_a_charity_sale_there() -> None:
    sale = channel_of_body("OfflineDonationRecorded", body_of(f.offline("p", kind="charity_sale")))
    box = channel_of_body("OfflineDonationRecorded", body_of(f.offline("p", venue_id="hall-2")))
    assert (sale.key, box.key) == ("charity_sale:botanic-garden", "cash_box:hall-2")
    assert (box.label_zh, box.label_en) == ("募捐箱 · hall-2", "Cash box · hall-2")


def test_a_journal_body_of_a_gift_classifies_as_its_event_said() -> None:
    gift = f.confirmed("p", channel="qr", venue_id="botanic-garden")
    assert channel_of_body("DonationConfirmed", body_of(gift)) == Channel("qr", "botanic-garden")


def test_redirections_are_one_channel_and_other_entries_none() -> None:
    assert channel_of("SuspenseResolutionApproved").label_en == "Redirected from suspense"
    with pytest.raises(ValueError, match="brings no money"):
        channel_of("DisbursementPaid")
