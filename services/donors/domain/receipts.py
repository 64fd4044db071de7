"""Receipt numbers and verification codes.

A receipt number names the organisation, the year and a counter that is
gap-free per organisation and year (`SIP-2026-0001234`): an auditor can see
that no receipt was skipped or withdrawn. The counter lives in the donor store
and is advanced in the same transaction that marks a pledge paid.

The verification code is a short random secret printed on the receipt: with
the number it opens the receipt page; the number alone opens nothing, so
counting through numbers reveals no donor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# Crockford's base32 without I, L, O and U: nothing a donor reading it aloud can confuse.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # 40 bits: guessing one takes ~10^12 tries (the statements form also limits wrong codes)
RECEIPT_NO = re.compile(r"(?P<org>[A-Z0-9]{2,12})-(?P<year>[0-9]{4})-(?P<no>[0-9]{7,})")


def org_code(organisation: str, overrides: dict[str, str]) -> str:
    """The organisation's code in receipt numbers: configured, or ORG plus a hash of its name."""
    if organisation in overrides:
        return overrides[organisation]
    return "ORG" + hashlib.sha256(organisation.encode()).hexdigest()[:5].upper()


def receipt_no(code: str, year: int, number: int) -> str:
    return f"{code}-{year:04d}-{number:07d}"


def new_verification_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalised_code(typed: str) -> str:
    """What a person types, as stored: case and spaces do not matter, nor O/0 and I/L/1 mix-ups."""
    cleaned = typed.strip().upper().replace(" ", "").replace("-", "")
    return cleaned.translate(str.maketrans("OIL", "011"))


def codes_match(typed: str, stored: str) -> bool:
    # Constant time: the comparison must not tell an attacker how many characters were right.
    return hmac.compare_digest(normalised_code(typed).encode(), stored.encode())
