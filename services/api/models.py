"""Request bodies. Strict types: a fraction, a string or a boolean is never money.

Every bound is stated in the OpenAPI document: the accepted codes as an enum,
each integer with its range, the characters free text may not hold as a pattern.
Rules across fields, which a JSON schema cannot state, are in the model's
description. Free text is taken in any Unicode normal form and kept in NFC, the
form every event's text is in (services/contracts/validation.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from services.contracts.validation import ANONYMITY_MODES, CHANNELS, CURRENCIES, MAX_AMOUNT_FEN
from services.ledger.read import LEFTOVER_DISPOSITIONS
from services.payments.wechatpay_v3 import TIMESTAMP_TOLERANCE

# The largest integer the databases store (SQLite's INTEGER, PostgreSQL's BIGINT).
MAX_INT64 = 2**63 - 1


class _StringRule:
    """A rule on a string that pydantic checks after the string's own constraints, and that the
    JSON schema states beside them."""

    def check(self, value: str) -> str:
        raise NotImplementedError

    def describe(self, json_schema: JsonSchemaValue) -> None:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        check: Callable[[str], str] = self.check
        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        self.describe(json_schema)
        return json_schema


@dataclass(frozen=True)
class OneOf(_StringRule):
    """A string that must be one of `accepted`: an enum in the schema, the project's message if not."""

    what: str
    accepted: frozenset[str]

    def check(self, value: str) -> str:
        if value not in self.accepted:
            raise ValueError(f"unknown {self.what} {value!r}; accepted: {', '.join(sorted(self.accepted))}")
        return value

    def describe(self, json_schema: JsonSchemaValue) -> None:
        json_schema["enum"] = sorted(self.accepted)


# The characters the event rules refuse in free text (services/contracts/validation.py):
# C0 and C1 controls and the bidirectional overrides and isolates; multi-line text keeps
# tabs and line feeds. Written as regex classes that Python, Rust and JSON Schema read alike.
CONTROLS = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
CONTROLS_BUT_LINES = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"


@dataclass(frozen=True)
class Text(_StringRule):
    """Free text: none of the refused characters (a pattern in the schema), then kept in NFC."""

    multiline: bool = False

    @property
    def refused(self) -> str:
        return CONTROLS_BUT_LINES if self.multiline else CONTROLS

    def check(self, value: str) -> str:
        bad = re.search(f"[{self.refused}]", value)
        if bad is not None:
            raise ValueError(
                f"holds the control or formatting character U+{ord(bad.group()):04X}, which no text may hold"
            )
        return unicodedata.normalize("NFC", value)

    def describe(self, json_schema: JsonSchemaValue) -> None:
        if "pattern" in json_schema:  # a schema has one pattern; both must match
            json_schema["allOf"] = [{"pattern": json_schema.pop("pattern")}]
        json_schema["pattern"] = f"^[^{self.refused}]*$"


def _whole(value: object) -> object:
    """JSON has one number type: 5000.0 is the integer 5000, as JSON Schema counts it; 50.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# After a StrictInt and its bounds: an integer as JSON Schema's `integer` has it (5000 or
# 5000.0), never 50.5, "5000" or true. (Placed before the bounds, it would hide them from the schema.)
WHOLE = BeforeValidator(_whole)


def _not_a_number(value: object) -> object:
    """Pydantic reads a number as seconds since 1970; the document promises an RFC 3339 date-time."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("a date-time such as 2026-06-30T23:59:59Z is needed, not a number")
    return value


# A date-time with its time zone, written as one (2026-06-30T23:59:59+08:00).
Instant = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
# A provider retries a notification for about a day (WeChat Pay: 24 h 4 min); anything much
# older is no retry but a back-dated gift.
RETRIES_LAST = timedelta(days=30)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Id = Annotated[str, Field(pattern=ID_PATTERN, description="1-64 of A-Z a-z 0-9 _ . : -")]
# Ids in a path: every id the ledger holds has this form, anything else is nobody's.
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="1-64 of A-Z a-z 0-9 _ . : -")]
Short = Annotated[str, Field(min_length=1, max_length=200), Text()]
Long = Annotated[str, Field(min_length=1, max_length=2000), Text(multiline=True)]
Fen = Annotated[
    StrictInt, Field(gt=0, le=MAX_AMOUNT_FEN, description="integer fen (1 yuan = 100 fen)"), WHOLE
]
Currency = Annotated[str, OneOf("currency", CURRENCIES)]
Channel = Annotated[str, OneOf("channel", CHANNELS)]
Anonymity = Annotated[str, OneOf("anonymity", ANONYMITY_MODES)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_Strict):
    """A project's plan, as registered with the civil-affairs bureau. `ends_on` is not before `starts_on`."""

    project_id: Id
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S", description="not blank"), Text()]
    name_en: Annotated[str, Field(max_length=200), Text()] | None = None
    organisation: Short
    certificate_no: Short
    purpose: Long
    goal_fen: Fen
    currency: Currency = "CNY"
    starts_on: date
    ends_on: date
    beneficiaries: Long
    use_of_funds: Long
    cost_cap_bp: Annotated[
        StrictInt, Field(ge=0, le=10_000, description="basis points of the gifts"), WHOLE
    ] = 1000
    leftover_handling: Short
    emergency: StrictBool = False
    area: Short | None = None
    filing_no: Short | None = None  # the plan's filing number (备案编号)

    @model_validator(mode="after")
    def _dates_in_order(self) -> ProjectIn:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ConfirmedDonationIn(_Strict):
    """A gift the payment provider confirmed. `fee_fen` is at most `gross_fen`; `anonymity` 'named'
    needs the `display_name` the donor consented to show."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"anonymity": {"const": "named"}}, "required": ["anonymity"]},
            "then": {
                "properties": {"display_name": {"type": "string", "minLength": 1}},
                "required": ["display_name"],
            },
        }
    )
    project_id: Id
    donation_id: Id
    provider: Id = "sandbox"
    provider_charge_id: Short
    gross_fen: Fen
    fee_fen: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_FEN), WHOLE] = 0
    currency: Currency = "CNY"
    channel: Channel = "web"
    venue_id: Id | None = None
    anonymity: Anonymity = "anonymous"
    display_name: Annotated[str, Field(max_length=50), Text()] | None = None
    message: Annotated[str, Field(max_length=200), Text(multiline=True)] | None = None
    donor_ref: Id | None = None
    confirmed_at: Instant | None = Field(
        None,
        description=(
            "when the provider confirmed the payment (default: when this request arrives): at most "
            "30 days ago and at most 300 s ahead of the server's clock; a retry sends the same, so "
            "that it is the same event and applied once, not a conflicting duplicate"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> ConfirmedDonationIn:
        if self.confirmed_at is not None:
            # A caller's clock may run ahead of ours as far as a signed notification's may.
            now = datetime.now(UTC)
            if self.confirmed_at > now + TIMESTAMP_TOLERANCE:
                raise ValueError(f"confirmed_at is more than {TIMESTAMP_TOLERANCE.seconds} s in the future")
            if self.confirmed_at < now - RETRIES_LAST:
                raise ValueError(f"confirmed_at is more than {RETRIES_LAST.days} days old")
        if self.fee_fen > self.gross_fen:
            raise ValueError("fee_fen exceeds gross_fen")
        if self.anonymity == "named" and not self.display_name:
            raise ValueError("anonymity 'named' needs the display_name the donor consented to show")
        return self


class TransitionIn(_Strict):
    reason: Annotated[str, Field(max_length=200), Text()] = ""


class ReasonIn(_Strict):
    """A step that must say why: suspending or resuming a project."""

    reason: Short


class ProgressIn(_Strict):
    """A progress report, disclosed on the project's public page; never edited afterwards."""

    summary: Long


UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class CorrectionIn(_Strict):
    """A correction note. `corrects_event_id` is the id of an event in this project's journal,
    which stays as it was: the note is published beside it."""

    corrects_event_id: Annotated[str, Field(pattern=UUID_PATTERN, description="an event id (UUID)")]
    note: Long


class ClosureIn(_Strict):
    """Closing a project. `leftover_target_project_id`, a project that is fundraising, is needed
    for 'transfer_to_project' and refused with any other disposition."""

    leftover_disposition: Annotated[str, OneOf("leftover disposition", LEFTOVER_DISPOSITIONS)]
    leftover_target_project_id: Id | None = None

    @model_validator(mode="after")
    def _target_with_transfer(self) -> ClosureIn:
        transfer = self.leftover_disposition == "transfer_to_project"
        if transfer and not self.leftover_target_project_id:
            raise ValueError("transfer_to_project needs leftover_target_project_id, the receiving project")
        if not transfer and self.leftover_target_project_id:
            raise ValueError("leftover_target_project_id goes only with transfer_to_project")
        return self


DisplayChoice = Annotated[str, OneOf("display choice", frozenset({"masked", "anonymous", "excluded"}))]
DonorName = Annotated[str, Field(max_length=50), Text()]
DonorMessage = Annotated[str, Field(max_length=200), Text(multiline=True)]


class DonationIn(_Strict):
    """A gift a donor starts. `anonymity` 'masked' shows the surname only ('王**') and needs a
    `display_name` and `consent_to_show_name`; 'anonymous' shows 爱心人士; 'excluded' lists nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"anonymity": {"const": "masked"}}, "required": ["anonymity"]},
            "then": {
                "properties": {
                    "display_name": {"type": "string", "pattern": r"\S"},
                    "consent_to_show_name": {"const": True},
                },
                "required": ["display_name", "consent_to_show_name"],
            },
        }
    )
    project_id: Id
    amount_fen: Fen
    currency: Currency = "CNY"
    venue_id: Id | None = None
    anonymity: DisplayChoice = "anonymous"
    display_name: DonorName | None = None
    message: DonorMessage | None = None
    consent_to_show_name: StrictBool = False

    @model_validator(mode="after")
    def _consented(self) -> DonationIn:
        if self.anonymity == "masked":
            if not (self.display_name or "").strip():
                raise ValueError("showing a masked name needs the name: enter it or choose anonymous")
            if not self.consent_to_show_name:
                raise ValueError("showing a name needs the donor's consent (consent_to_show_name)")
        return self


class DonationCreated(BaseModel):
    donation_id: str
    status: str
    amount_fen: int = Field(ge=1, le=MAX_AMOUNT_FEN)
    currency: str
    pay_url: str = Field(description="the provider's pay page: send the donor there")
    expires_at_ms: int = Field(ge=0, le=10**15, description="when an unpaid pledge lapses (ms since 1970)")
