"""The benchmark's input: opened projects, then confirmed gifts spread over them.

Deterministic for a seed, so two runs feed the ledger the same kind of work.
Every gift is a valid, distinct DonationConfirmed to a project that is open,
so each one becomes a posted journal entry, an outcome and (unless the donor
chose to be left out) a feed item: no duplicates, nothing the ledger can skip.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from services.contracts import events as ev

ACTOR_STAFF = "bench-staff"
ACTOR_PROVIDER = "sandbox"
# Roughly what the sandbox provider sends: mostly web and QR, some at venues.
CHANNELS = ("web", "web", "qr", "qr", "venue")
ANONYMITY = ("named", "masked", "masked", "anonymous", "excluded")
NAMES = ("王小明", "李娜", "张伟", "Alice", "陈静", "刘洋")
VENUES = ("botanic-garden", "city-library", "riverside-park")


def project_ids(count: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(count)]


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def opened_projects(ids: list[str], now: datetime, seed: int = 1) -> list[ev.Event]:
    """ProjectRegistered, ProjectApproved, FundraisingOpened for every project, in that order."""
    rng = random.Random(seed)
    out: list[ev.Event] = []
    for project_id in ids:
        common: dict[str, Any] = dict(occurred_at=now, actor=ACTOR_STAFF, project_id=project_id)
        out.append(
            ev.ProjectRegistered(
                event_id=_event_id(rng),
                **common,
                name=f"基准项目 {project_id}",
                organisation="苏州工业园区慈善总会",
                certificate_no="CSZ-2026-0001",
                purpose="为社区老人提供助餐",
                goal_fen=100_000_000,
                currency="CNY",
                starts_on="2026-01-01",
                ends_on="2026-12-31",
                beneficiaries="高龄老人",
                use_of_funds="餐费补贴",
                cost_cap_bp=1000,
                leftover_handling="转入同类项目",
            )
        )
        out.append(ev.ProjectApproved(event_id=_event_id(rng), **common, approval_ref="A-1"))
        out.append(ev.FundraisingOpened(event_id=_event_id(rng), **common))
    return out


def confirmed_gifts(
    count: int, ids: list[str], now: datetime, seed: int = 2
) -> Iterator[ev.DonationConfirmed]:
    """``count`` distinct confirmed gifts to random projects of ``ids``."""
    rng = random.Random(seed)
    for i in range(count):
        gross = rng.randint(100, 500_000)
        channel = rng.choice(CHANNELS)
        anonymity = rng.choice(ANONYMITY)
        donation_id = f"bd-{i:09d}"
        yield ev.DonationConfirmed(
            event_id=_event_id(rng),
            occurred_at=now,
            actor=ACTOR_PROVIDER,
            project_id=rng.choice(ids),
            donation_id=donation_id,
            provider="sandbox",
            provider_charge_id=f"ch-{donation_id}",
            gross_fen=gross,
            fee_fen=gross * 6 // 1000,
            currency="CNY",
            channel=channel,
            venue_id=rng.choice(VENUES) if channel == "venue" else None,
            anonymity=anonymity,
            display_name=None if anonymity == "anonymous" else rng.choice(NAMES),
            message=None,
            donor_ref=f"donor-{rng.randrange(1_000_000)}",
        )
