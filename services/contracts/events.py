"""The events every service shares, as typed, immutable dataclasses.

Field names mirror the newest Avro schema of each event in schemas/, so the
codec maps records to events by name. Events are past-tense facts; money is
always an integer count of fen plus an ISO 4217 currency code.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries: a unique id, when it happened, and who did it."""

    topic_base: ClassVar[str] = ""

    event_id: str
    occurred_at: datetime
    actor: str
    project_id: str

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names(type(self))}

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def __reduce__(self) -> tuple[Any, ...]:
        # The ledger's intake process pickles every input event to the batch
        # loop. The dataclass's own pickling (a __setstate__ that calls
        # dataclasses.fields() and object.__setattr__ per field) took 7 µs to
        # unpickle a gift; this takes about 3 (docs/benchmarks.md).
        return (_rebuilt, (type(self), tuple([getattr(self, name) for name in field_names(type(self))])))


# --- charity.projects ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectRegistered(Event):
    """The fundraising plan, as filed (Charity Law Art. 25)."""

    topic_base: ClassVar[str] = "charity.projects"

    name: str
    organisation: str
    certificate_no: str
    purpose: str
    goal_fen: int
    currency: str
    starts_on: str
    ends_on: str
    beneficiaries: str
    use_of_funds: str
    cost_cap_bp: int
    leftover_handling: str
    emergency: bool = False
    name_en: str | None = None
    area: str | None = None  # added in v3: where the money is raised and spent
    filing_no: str | None = None  # added in v3: the plan's filing number (备案编号)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectApproved(Event):
    """The federation approved the plan."""

    topic_base: ClassVar[str] = "charity.projects"

    approval_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FundraisingOpened(Event):
    """Donations are now accepted."""

    topic_base: ClassVar[str] = "charity.projects"


@dataclass(frozen=True, slots=True, kw_only=True)
class FundraisingClosed(Event):
    """No more donations are solicited."""

    topic_base: ClassVar[str] = "charity.projects"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressReported(Event):
    """A disclosure of progress."""

    topic_base: ClassVar[str] = "charity.projects"

    summary: str
    report_sha256: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrectionPublished(Event):
    """A correction note; the ledger never edits history."""

    topic_base: ClassVar[str] = "charity.projects"

    corrects_event_id: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectSuspended(Event):
    """The project is halted pending review."""

    topic_base: ClassVar[str] = "charity.projects"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectResumed(Event):
    """A suspended project goes on in the state it was suspended from."""

    topic_base: ClassVar[str] = "charity.projects"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectClosed(Event):
    """The project ends; leftover funds are disposed of."""

    topic_base: ClassVar[str] = "charity.projects"

    leftover_disposition: str
    leftover_target_project_id: str | None = None


# --- charity.donations -----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationPledged(Event):
    """A donor started a gift (not money yet)."""

    topic_base: ClassVar[str] = "charity.donations"

    donation_id: str
    amount_fen: int
    currency: str
    channel: str
    venue_id: str | None = None
    anonymity: str
    display_name: str | None = None
    message: str | None = None
    donor_ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationConfirmed(Event):
    """The payment provider confirmed the money arrived."""

    topic_base: ClassVar[str] = "charity.donations"

    donation_id: str
    provider: str
    provider_charge_id: str
    gross_fen: int
    fee_fen: int
    currency: str
    channel: str
    venue_id: str | None = None
    anonymity: str
    display_name: str | None = None
    message: str | None = None
    donor_ref: str | None = None
    # Assigned by the API when the payment is confirmed (added in v2). Kept in the
    # journal entry, so the signed tree vouches for the number on the donor's receipt.
    receipt_no: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationFailed(Event):
    """The payment did not go through."""

    topic_base: ClassVar[str] = "charity.donations"

    donation_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationRefunded(Event):
    """Money returned to the donor, in part or in full."""

    topic_base: ClassVar[str] = "charity.donations"

    donation_id: str
    refund_id: str
    amount_fen: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineDonationRecorded(Event):
    """Cash box or charity sale money counted at a venue."""

    topic_base: ClassVar[str] = "charity.donations"

    record_id: str
    kind: str
    item: str | None = None
    venue_id: str
    amount_fen: int
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspenseResolutionRequested(Event):
    """Someone asks to move money out of a project's suspense account (the project_id):
    redirected to an open project, or refunded. A second person must approve."""

    topic_base: ClassVar[str] = "charity.donations"

    resolution_id: str
    action: str  # redirect | refund
    amount_fen: int
    currency: str
    target_project_id: str | None = None  # redirect: the open project that receives it
    donation_id: str | None = None  # refund of an online gift held in suspense
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspenseResolutionApproved(Event):
    """A second person (the actor, never the requester) approves: the money moves."""

    topic_base: ClassVar[str] = "charity.donations"

    resolution_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspenseResolutionRejected(Event):
    """The request is turned down; the money stays in suspense."""

    topic_base: ClassVar[str] = "charity.donations"

    resolution_id: str
    reason: str


# --- charity.disbursements -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DisbursementRequested(Event):
    """Staff ask to pay money out of a project."""

    topic_base: ClassVar[str] = "charity.disbursements"

    disbursement_id: str
    amount_fen: int
    currency: str
    payee: str
    purpose: str
    # Added in v2, both null in records written before: the day the money is meant to
    # leave (ISO date), and the SHA-256 of each supporting document uploaded with the request.
    planned_on: str | None = None
    document_sha256s: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisbursementApproved(Event):
    """One approver's approval (the actor)."""

    topic_base: ClassVar[str] = "charity.disbursements"

    disbursement_id: str
    # The approver's note (added in v2; null in records written before).
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DisbursementRejected(Event):
    """An approver turned the request down."""

    topic_base: ClassVar[str] = "charity.disbursements"

    disbursement_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DisbursementPaid(Event):
    """The money left the bank account."""

    topic_base: ClassVar[str] = "charity.disbursements"

    disbursement_id: str
    payout_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceAttached(Event):
    """An invoice, receipt or photo proving the use of funds."""

    topic_base: ClassVar[str] = "charity.disbursements"

    disbursement_id: str
    document_sha256: str
    description: str


EVENT_TYPES: dict[str, type[Event]] = {
    "ProjectRegistered": ProjectRegistered,
    "ProjectApproved": ProjectApproved,
    "FundraisingOpened": FundraisingOpened,
    "FundraisingClosed": FundraisingClosed,
    "ProgressReported": ProgressReported,
    "CorrectionPublished": CorrectionPublished,
    "ProjectSuspended": ProjectSuspended,
    "ProjectResumed": ProjectResumed,
    "ProjectClosed": ProjectClosed,
    "DonationPledged": DonationPledged,
    "DonationConfirmed": DonationConfirmed,
    "DonationFailed": DonationFailed,
    "DonationRefunded": DonationRefunded,
    "OfflineDonationRecorded": OfflineDonationRecorded,
    "SuspenseResolutionRequested": SuspenseResolutionRequested,
    "SuspenseResolutionApproved": SuspenseResolutionApproved,
    "SuspenseResolutionRejected": SuspenseResolutionRejected,
    "DisbursementRequested": DisbursementRequested,
    "DisbursementApproved": DisbursementApproved,
    "DisbursementRejected": DisbursementRejected,
    "DisbursementPaid": DisbursementPaid,
    "EvidenceAttached": EvidenceAttached,
}


# --- charity.ledger.* (written by the ledger only) -------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalsUpdated(Event):
    """The latest totals of a project (compacted topic, key project_id)."""

    topic_base: ClassVar[str] = "charity.ledger.totals"

    name: str
    name_en: str | None = None
    status: str
    currency: str
    goal_fen: int
    raised_fen: int
    gross_fen: int
    fees_fen: int
    offline_fen: int
    donations_count: int
    refunded_fen: int
    disbursed_fen: int
    available_fen: int
    as_of_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DonationFeedItem(Event):
    """A confirmed gift for venue screens; the name is already masked per consent."""

    topic_base: ClassVar[str] = "charity.ledger.feed"

    source_event_id: str
    project_name: str
    amount_fen: int
    currency: str
    kind: str
    channel: str
    venue_id: str | None = None
    shown_name: str
    item: str | None = None
    message: str | None = None
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerOutcome(Event):
    """What the ledger decided about one input event."""

    topic_base: ClassVar[str] = "charity.ledger.outcomes"

    source_event_id: str
    kind: str
    decision: str
    reason: str
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeHeadPublished(Event):
    """A signed head of the journal's Merkle tree (RFC 9162 style)."""

    topic_base: ClassVar[str] = "charity.ledger.checkpoints"

    tree_size: int
    root_hash: str
    timestamp_ms: int
    signature: str
    key_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKeyPublished(Event):
    """A public key that signs tree heads; heads name it by key_id."""

    topic_base: ClassVar[str] = "charity.ledger.checkpoints"

    key_id: str
    algorithm: str
    public_key: str
    valid_from: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntryCommitted(Event):
    """One committed journal entry, on the journal topic in the order of record."""

    topic_base: ClassVar[str] = "charity.ledger.journal"

    seq: int
    entry_id: str
    canonical: str  # the entry's canonical JSON, which its hash covers
    prev_hash: str
    entry_hash: str
    source: str | None = None  # topic/partition/offset of the input record (v2)


OUTPUT_EVENT_TYPES: dict[str, type[Event]] = {
    "JournalEntryCommitted": JournalEntryCommitted,
    "SigningKeyPublished": SigningKeyPublished,
    "TreeHeadPublished": TreeHeadPublished,
    "TotalsUpdated": TotalsUpdated,
    "DonationFeedItem": DonationFeedItem,
    "LedgerOutcome": LedgerOutcome,
}


def utc_now_ms() -> datetime:
    """Now, truncated to the millisecond precision that Avro timestamps keep."""
    return utc_ms(datetime.now(UTC))


def utc_ms(moment: datetime) -> datetime:
    """An aware moment in UTC, truncated to the millisecond precision that Avro timestamps keep."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


ALL_EVENT_TYPES: dict[str, type[Event]] = {**EVENT_TYPES, **OUTPUT_EVENT_TYPES}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order; worked out once per class, not on every event."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


_SLOT_SETTERS: dict[type, tuple[Any, ...]] = {}


def _rebuilt(cls: type[Event], values: tuple[Any, ...]) -> Event:
    """An event from its field values in order (see Event.__reduce__), without __init__.

    The values are ones a live event of the same class had; the slots' own
    descriptors set them, which a frozen dataclass's __setattr__ would refuse.
    """
    setters = _SLOT_SETTERS.get(cls)
    if setters is None:
        setters = _SLOT_SETTERS[cls] = tuple(getattr(cls, name).__set__ for name in field_names(cls))
    event = object.__new__(cls)
    for set_slot, value in zip(setters, values, strict=True):
        set_slot(event, value)
    return event


_UUID5_NAMESPACE = uuid.NAMESPACE_URL.bytes


def derived_id(purpose: str, source_id: str) -> str:
    """A stable UUID for something derived from another id, so a republished output keeps its id.

    uuid.uuid5(NAMESPACE_URL, "charity-ledger:<purpose>:<source_id>"), computed
    without building UUID objects: the ledger derives two or three per event.
    """
    digest = bytearray(
        hashlib.sha1(_UUID5_NAMESPACE + f"charity-ledger:{purpose}:{source_id}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
