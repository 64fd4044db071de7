"""Which projects take gifts now: the API's check before it publishes a confirmed donation.

Asking the database on every gift made that read most of a confirmation's cost.
A project found fundraising is remembered for a short while (one second by
default); anything else (unknown, not yet open, closed) is asked again every
time, so a new or newly opened project is seen at once. The ledger stays the
authority: a gift for a project that closed within that second is booked by
the ledger's lifecycle rules exactly as one that raced the closing would be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.ledger.read import LedgerQueries, ProjectStatus, ProjectTotals

DEFAULT_TTL_S = 1.0


class OpenProjects:
    def __init__(
        self,
        queries: LedgerQueries,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queries = queries
        self._ttl_s = ttl_s
        self._clock = clock
        self._fundraising: dict[str, tuple[float, ProjectTotals]] = {}

    async def project(self, project_id: str) -> ProjectTotals | None:
        """The project as last read (at most ttl_s ago if it was fundraising), or None."""
        now = self._clock()
        remembered = self._fundraising.get(project_id)
        if remembered is not None and now < remembered[0]:
            return remembered[1]
        project = await asyncio.to_thread(self._queries.project, project_id)
        if project is not None and project.status == ProjectStatus.FUNDRAISING:
            self._fundraising[project_id] = (now + self._ttl_s, project)
        else:
            self._fundraising.pop(project_id, None)
        return project
