"""Machine clients: their names and the permissions a named token may carry (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from services.staff.domain.roles import Permission

# The shared CHARITY_STAFF_TOKEN acts under this name; no stored token may take it.
SHARED_TOKEN_NAME = "automation"
MACHINE_NAME = re.compile(r"[a-z][a-z0-9_.-]{1,31}\Z")
# What a token presented as a bearer credential starts with, so a leaked one is recognisable.
TOKEN_PREFIX = "clm_"


def check_machine_name(name: str) -> str:
    if not MACHINE_NAME.match(name):
        raise ValueError("a machine client's name is 2-32 of a-z 0-9 _ . - starting with a letter")
    if name == SHARED_TOKEN_NAME:
        raise ValueError(f"{SHARED_TOKEN_NAME!r} is the shared CHARITY_STAFF_TOKEN's name")
    return name


def parse_permissions(names: Iterable[str]) -> frozenset[Permission]:
    """Permissions by their values (`project.register`); ValueError names the known ones."""
    chosen: set[Permission] = set()
    for name in names:
        try:
            chosen.add(Permission(name))
        except ValueError:
            known = ", ".join(p.value for p in Permission)
            raise ValueError(f"unknown permission {name!r}; one of: {known}") from None
    if not chosen:
        raise ValueError("a token needs at least one --permission")
    return frozenset(chosen)
