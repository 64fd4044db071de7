"""How a donor's name appears in public, per the consent they gave (Charity Law Art. 82)."""

from __future__ import annotations

ANONYMOUS_LABEL = "爱心人士"  # "a kind-hearted person": how Chinese charities show anonymous donors


def shown_name(anonymity: str, display_name: str | None) -> str | None:
    """The name for screens and public pages, or None when the gift must not be shown at all."""
    if anonymity == "excluded":
        return None
    name = (display_name or "").strip()
    if anonymity == "named" and name:
        return name
    if anonymity == "masked" and name:
        # Keep the surname (or first letter) only: 王小明 -> 王**, Alice -> A**.
        return name[0] + "**"
    return ANONYMOUS_LABEL
