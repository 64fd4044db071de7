"""Request bodies. Strict types: a float or a numeric string is never money."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from services.contracts.validation import ANONYMITY_MODES, CHANNELS, CURRENCIES, MAX_AMOUNT_FEN

Id = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="1-64 of A-Z a-z 0-9 _ . : -")
]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Long = Annotated[str, Field(min_length=1, max_length=2000)]
Fen = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT_FEN, description="integer fen (1 yuan = 100 fen)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("currency", check_fields=False)
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"unknown currency {value!r}; accepted: {', '.join(sorted(CURRENCIES))}")
        return value


class ProjectIn(_Strict):
    project_id: Id
    name: Short
    name_en: Annotated[str, Field(max_length=200)] | None = None
    organisation: Short
    certificate_no: Short
    purpose: Long
    goal_fen: Fen
    currency: str = "CNY"
    starts_on: date
    ends_on: date
    beneficiaries: Long
    use_of_funds: Long
    cost_cap_bp: Annotated[StrictInt, Field(ge=0, le=10_000)] = 1000
    leftover_handling: Short
    emergency: StrictBool = False

    @model_validator(mode="after")
    def _dates_in_order(self) -> ProjectIn:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ConfirmedDonationIn(_Strict):
    project_id: Id
    donation_id: Id
    provider: Id = "sandbox"
    provider_charge_id: Short
    gross_fen: Fen
    fee_fen: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_FEN)] = 0
    currency: str = "CNY"
    channel: str = "web"
    venue_id: Id | None = None
    anonymity: str = "anonymous"
    display_name: Annotated[str, Field(max_length=50)] | None = None
    message: Annotated[str, Field(max_length=200)] | None = None
    donor_ref: Id | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConfirmedDonationIn:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}; accepted: {', '.join(sorted(CHANNELS))}")
        if self.anonymity not in ANONYMITY_MODES:
            raise ValueError(
                f"unknown anonymity {self.anonymity!r}; accepted: {', '.join(sorted(ANONYMITY_MODES))}"
            )
        if self.fee_fen > self.gross_fen:
            raise ValueError("fee_fen exceeds gross_fen")
        return self


class TransitionIn(_Strict):
    reason: Annotated[str, Field(max_length=200)] = ""
