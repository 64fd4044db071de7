"""Rules every event must satisfy before anything acts on it.

The API checks them before producing (answering 4xx) and the ledger checks them
again on consumption (sending offenders to the DLQ): the log is not trusted to
contain only what our own API wrote.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from services.contracts.events import (
    DisbursementRequested,
    DonationConfirmed,
    DonationPledged,
    Event,
    OfflineDonationRecorded,
    ProjectRegistered,
    SuspenseResolutionRequested,
    field_names,
)

# ISO 4217 codes the federation accepts. CNY is the working currency; the
# others exist for gifts from Hong Kong and abroad and are never mixed with it.
CURRENCIES: Final = frozenset({"CNY", "HKD", "USD", "EUR"})
CHANNELS: Final = frozenset({"web", "qr", "venue", "bank_transfer"})
ANONYMITY_MODES: Final = frozenset({"named", "masked", "anonymous", "excluded"})
OFFLINE_KINDS: Final = frozenset({"cash_box", "charity_sale"})
MAX_TEXT: Final = 2000
MAX_SHORT_TEXT: Final = 200
# A single gift above ¥10,000,000 is almost certainly a unit error (yuan vs fen).
MAX_AMOUNT_FEN: Final = 1_000_000_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# Supporting documents one disbursement request may name.
MAX_DOCUMENTS: Final = 20
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
# A donor's receipt number, as the API assigns it: organisation code, year, and
# a counter that is gap-free per organisation and year (`SIP-2026-0001234`).
# ASCII classes only ([0-9], not \d): a full-width digit is another number.
_RECEIPT_NO = re.compile(r"[A-Z0-9]{2,12}-[0-9]{4}-[0-9]{7,}\Z")
_LONG_TEXT_FIELDS: Final = frozenset(
    {"purpose", "beneficiaries", "use_of_funds", "summary", "note", "message", "description"}
)
# Ids, and names that become part of an account name (`clearing:<provider>`):
# bounded so that every account name fits its column.
_ID_FIELDS: Final = frozenset(
    {
        "project_id",
        "donation_id",
        "disbursement_id",
        "refund_id",
        "record_id",
        "venue_id",
        "provider",
        "resolution_id",
        "target_project_id",
    }
)
# Characters no free text may hold: C0 and C1 controls (a NUL byte, a terminal
# escape), and the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
# U+2066-U+2069) with which a name like "\u202eedirrevo" shows reversed on a screen.
# Multi-line fields may hold a line feed (and a tab); nothing else of the kind.
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORBIDDEN_IN_LONG_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class InvalidEvent(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class _FieldRules:
    """What the generic checks look at in one field, worked out once per event class."""

    name: str
    is_id: bool
    text_limit: int
    forbidden: re.Pattern[str]
    is_currency: bool
    is_amount: bool
    is_sha256: bool


_RULES: dict[type, tuple[_FieldRules, ...]] = {}


def _rules_of(cls: type) -> tuple[_FieldRules, ...]:
    rules = _RULES.get(cls)
    if rules is None:
        rules = _RULES[cls] = tuple(
            _FieldRules(
                name=name,
                is_id=name in _ID_FIELDS,
                text_limit=MAX_TEXT if name in _LONG_TEXT_FIELDS else MAX_SHORT_TEXT,
                forbidden=_FORBIDDEN_IN_LONG_TEXT if name in _LONG_TEXT_FIELDS else _FORBIDDEN_IN_TEXT,
                is_currency=name == "currency",
                is_amount=name.endswith("_fen"),
                is_sha256=name == "document_sha256",
            )
            for name in field_names(cls)
        )
    return rules


def problems_with(event: Event) -> list[str]:
    problems: list[str] = []
    if not _CANONICAL_UUID.match(event.event_id):
        # The form the journal stores (36 characters, lower case): another spelling
        # of the same UUID would be a second id for one event, and too long a column.
        problems.append(
            f"event_id {event.event_id!r} is not a UUID in canonical form (lower-case 8-4-4-4-12 hex)"
        )
    if event.occurred_at.tzinfo is None:
        problems.append("occurred_at has no time zone")
    # The ledger's intake checks every event it reads: one branch per field's type, and
    # printable ASCII text (most of it) needs no search for control or formatting
    # characters nor a normal-form check (docs/benchmarks.md).
    for rule in _rules_of(type(event)):
        name = rule.name
        value = getattr(event, name)
        if isinstance(value, str):
            if rule.is_id:
                if not _ID.match(value):
                    problems.append(f"{name} {value!r} is not a valid id (1-64 of A-Z a-z 0-9 _ . : -)")
            elif not (len(value) <= rule.text_limit and value.isascii() and value.isprintable()):
                problems.extend(_text_problems(rule, value))
        elif isinstance(value, float):
            problems.append(f"{name} is a float; money and counts are integers")
        elif rule.is_amount and isinstance(value, int):
            problems.extend(_amount_problems(name, value, allow_zero=name == "fee_fen"))
        if rule.is_currency and value not in CURRENCIES:
            problems.append(f"unknown currency {value!r}; accepted: {', '.join(sorted(CURRENCIES))}")
        if rule.is_sha256 and not _SHA256.match(value):
            problems.append("document_sha256 must be 64 lowercase hex digits")
    problems.extend(_specific_problems(event))
    return problems


def _text_problems(rule: _FieldRules, value: str) -> list[str]:
    """The one policy for every free-text field: bounded, no control or bidirectional
    formatting characters, and in Unicode normal form C (so one name has one spelling)."""
    problems: list[str] = []
    if len(value) > rule.text_limit:
        problems.append(f"{rule.name} is {len(value)} characters long; the limit is {rule.text_limit}")
    bad = rule.forbidden.search(value)
    if bad is not None:
        problems.append(
            f"{rule.name} holds the control or formatting character U+{ord(bad.group()):04X}, "
            "which no text may hold"
        )
    elif not unicodedata.is_normalized("NFC", value):
        problems.append(f"{rule.name} is not in Unicode normal form C (NFC)")
    return problems


def _amount_problems(name: str, value: int, *, allow_zero: bool) -> list[str]:
    if value < 0 or (value == 0 and not allow_zero):
        return [f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}"]
    if value > MAX_AMOUNT_FEN:
        return [f"{name} {value} exceeds the per-event limit of {MAX_AMOUNT_FEN} fen"]
    return []


def _specific_problems(event: Event) -> list[str]:
    problems: list[str] = []
    if isinstance(event, DonationPledged | DonationConfirmed):
        if event.channel not in CHANNELS:
            problems.append(f"unknown channel {event.channel!r}; accepted: {', '.join(sorted(CHANNELS))}")
        if event.anonymity not in ANONYMITY_MODES:
            problems.append(
                f"unknown anonymity mode {event.anonymity!r}; accepted: {', '.join(sorted(ANONYMITY_MODES))}"
            )
        if event.anonymity == "named" and not event.display_name:
            problems.append("anonymity 'named' needs the display_name the donor consented to show")
    if isinstance(event, DonationConfirmed):
        if event.fee_fen > event.gross_fen:
            problems.append(f"fee_fen {event.fee_fen} exceeds gross_fen {event.gross_fen}")
        if event.receipt_no is not None and not _RECEIPT_NO.match(event.receipt_no):
            problems.append(
                f"receipt_no {event.receipt_no!r} is not a receipt number "
                "(ORG-YYYY-NNNNNNN: 2-12 of A-Z 0-9, a year, 7 or more digits)"
            )
    if isinstance(event, OfflineDonationRecorded) and event.kind not in OFFLINE_KINDS:
        problems.append(f"unknown offline kind {event.kind!r}; accepted: {', '.join(sorted(OFFLINE_KINDS))}")
    if isinstance(event, DisbursementRequested):
        problems.extend(_request_problems(event))
    if isinstance(event, SuspenseResolutionRequested):
        if event.action not in ("redirect", "refund"):
            problems.append(f"unknown action {event.action!r}; accepted: redirect, refund")
        if (event.action == "redirect") != (event.target_project_id is not None):
            problems.append("a redirection, and only a redirection, names target_project_id")
    if isinstance(event, ProjectRegistered):
        if not event.name.strip():
            problems.append("name is empty")
        if not 0 <= event.cost_cap_bp <= 10_000:
            problems.append(f"cost_cap_bp {event.cost_cap_bp} is not between 0 and 10000")
    return problems


def _request_problems(event: DisbursementRequested) -> list[str]:
    problems: list[str] = []
    if event.planned_on is not None and not _ISO_DATE.match(event.planned_on):
        problems.append(f"planned_on {event.planned_on!r} is not a date (YYYY-MM-DD)")
    documents = event.document_sha256s or []
    if len(documents) > MAX_DOCUMENTS:
        problems.append(f"{len(documents)} documents; the limit is {MAX_DOCUMENTS}")
    if any(not _SHA256.match(d) for d in documents):
        problems.append("each of document_sha256s must be 64 lowercase hex digits")
    return problems


def validate(event: Event) -> None:
    problems = problems_with(event)
    if problems:
        raise InvalidEvent(problems)
