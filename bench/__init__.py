"""Benchmarks that print figures; shared pieces of their simulated tenants."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any


def logons_of_a_day(
    emails: Iterable[str], start: datetime, spread: timedelta, seed: int, day: int = 2
) -> list[tuple[datetime, dict[str, Any]]]:
    """One successful ``Log on`` per email, at random instants of ``[start, start+spread)``.

    What a "next day" of a tenant adds, in the shape ``Simulator.add_records`` takes.
    """
    rng = random.Random(seed)
    records = []
    for email in emails:
        when = start + spread * rng.random()
        records.append(
            (
                when,
                {
                    "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "loggedUser": email,
                    "category": "Logon and Logoff",
                    "activity": "Log on",
                    "result": "Successful",
                    "details": {"day": day},
                },
            )
        )
    return records
