"""A long account list read as independent filtered listings in parallel, and checked.

Each partition is a ``TMV1-Filter`` together with the same condition evaluated here, so
that what the vendor returns can be verified rather than trusted: every item must meet
its own partition's condition, and no account may come from two partitions. Values
compare without regard to case, as the vendor's filter is taken to do.

The largest partition (local, enabled accounts: 88% of a typical tenant) is split further
by ``role``, a field the vendor does not document as filterable. The roles come from that
partition's first page, and a remainder (``not`` any role named) takes every other one.
If the vendor refuses the role filter, ignores it (the items do not match), or treats it
otherwise (an account in two listings), the split is dropped and the partition read
whole; if a documented partition fails the same checks, the list is read in one listing.
A listing read again delivers newer versions of accounts already delivered.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from login_audit import interrupts
from login_audit.errors import ConfigError, ProtocolError
from login_audit.platforms.fields import lowered

log = logging.getLogger(__name__)

#: The most roles named by the split of one partition (each one more listing).
MAX_ROLES = 8
#: The fewest accounts of one role on the first page worth a listing of their own.
ROLE_MIN_SHARE = 10


@dataclass(frozen=True)
class Term:
    """``field eq value`` for one value, or, negated, ``field`` equal to none of them."""

    field: str
    values: tuple[str, ...]
    negated: bool = False

    def holds(self, item: dict[str, Any]) -> bool:
        """Whether an item whose keys are lower case meets the term."""
        value = item.get(self.field.lower())
        folded = value.casefold() if isinstance(value, str) else ""
        return (folded in {v.casefold() for v in self.values}) != self.negated


@dataclass(frozen=True)
class Partition:
    """One listing: the accounts meeting every term."""

    terms: tuple[Term, ...]
    #: Split further by role after the first page, when the listing is long.
    split_by_role: bool = False

    def holds(self, item: Any) -> bool:
        """Whether ``item`` (a raw account entry) belongs to this listing."""
        if not isinstance(item, dict):
            return True  # skipped by the caller, as in any listing
        low = lowered(item)
        return all(term.holds(low) for term in self.terms)

    def with_term(self, term: Term) -> Partition:
        """This partition narrowed by ``term``."""
        return Partition((*self.terms, term))


def role_split(partition: Partition, first_page: list[Any]) -> list[Partition]:
    """``partition`` split by the roles its first page shows, or [] when it is not worth it.

    Only roles held by at least ``ROLE_MIN_SHARE`` accounts of the page are named, and a
    remainder takes every other role. No split when an account of the page has no role:
    whether the vendor's ``not`` keeps an account without the field is not known.
    """
    roles: Counter[str] = Counter()
    for item in first_page:
        role = lowered(item).get("role") if isinstance(item, dict) else None
        if not isinstance(role, str) or not role.strip():
            return []
        roles[role.casefold()] += 1
    spelt: dict[str, str] = {}
    for item in first_page:
        role = lowered(item)["role"]
        spelt.setdefault(role.casefold(), role)
    named = [spelt[r] for r, n in roles.most_common(MAX_ROLES) if n >= ROLE_MIN_SHARE]
    if len(named) < 2:
        return []
    parts = [partition.with_term(Term("role", (r,))) for r in named]
    return [*parts, partition.with_term(Term("role", tuple(named), negated=True))]


#: Reads one listing: yields the item list of each page of a ``TMV1-Filter``.
Lister = Callable[[Partition], Iterator[list[Any]]]


class _Refused(Exception):
    """A partition's answer does not hold together (items of another partition)."""


@dataclass
class _Chain:
    """One listing under way."""

    partition: Partition
    #: The top-level partition it belongs to (a role split belongs to its parent).
    top: int
    split: bool = False
    whole: bool = False
    stop: threading.Event | None = None


def read_partitions(partitions: tuple[Partition, ...], lister: Lister) -> Iterator[Any]:
    """Items of every partition, verified, as their pages arrive; see the module docstring.

    Raises :class:`_Refused` (caught by :func:`partitioned_items`) when a top-level
    partition fails, and whatever a listing raised otherwise.
    """
    messages: queue.Queue[tuple[int, str, Any]] = queue.Queue()
    chains: list[_Chain] = []
    owner: dict[str, int] = {}
    stopping = threading.Event()

    def read(number: int) -> None:
        chain = chains[number]
        try:
            for page_number, page in enumerate(lister(chain.partition)):
                if stopping.is_set() or (chain.stop is not None and chain.stop.is_set()):
                    break
                if page_number == 0 and chain.partition.split_by_role and not chain.whole:
                    parts = role_split(chain.partition, page)
                    if parts:
                        messages.put((number, "split", parts))
                        return  # the role listings read this page again
                messages.put((number, "page", page))
            messages.put((number, "done", None))
        except BaseException as exc:  # handed to the reading thread
            messages.put((number, "error", exc))

    def conflict(chain_number: int, account_id: str) -> bool:
        other = owner.get(account_id)
        if other is None or other == chain_number:
            return False
        a, b = chains[chain_number], chains[other]
        # A partition read whole after its role split failed delivers them again.
        return not (a.top == b.top and (a.whole or b.whole))

    def fail_split(chain: _Chain, why: str) -> None:
        log.info("the account list's role filter %s; reading that partition whole", why)
        for other in chains:
            if other.top == chain.top and other.stop is not None:
                other.stop.set()
        start(_Chain(partitions[chain.top], chain.top, whole=True))

    pool = ThreadPoolExecutor(
        len(partitions) + MAX_ROLES + 2,
        thread_name_prefix="accounts",
        initializer=interrupts.spare_this_thread,
    )
    running = 0

    def start(chain: _Chain) -> None:
        nonlocal running
        chains.append(chain)
        running += 1
        pool.submit(read, len(chains) - 1)

    try:
        for number, partition in enumerate(partitions):
            start(_Chain(partition, number))
        split_failed: set[int] = set()
        while running:
            number, kind, value = messages.get()
            chain = chains[number]
            stale = chain.split and chain.top in split_failed
            if kind == "split":
                running -= 1
                for part in value:
                    start(_Chain(part, number, split=True, stop=threading.Event()))
                continue
            if kind in ("done", "error"):
                running -= 1
            if stale:
                continue  # a role listing given up: nothing more from it counts
            if kind == "error":
                refused = isinstance(value, ProtocolError) and value.status == 400
                # A role no filter can express (control characters) is refused before sending.
                if chain.split and (refused or isinstance(value, ConfigError)):
                    split_failed.add(chain.top)
                    fail_split(chain, "was refused")
                    continue
                if refused:
                    raise _Refused("a partition's filter was refused") from value
                raise value
            if kind != "page":
                continue
            bad = next((item for item in value if not chain.partition.holds(item)), None)
            ids = [str(lowered(i).get("id", "")) for i in value if isinstance(i, dict)]
            clash = next((i for i in ids if i and conflict(number, i)), None)
            if bad is not None or clash is not None:
                why = "is not applied" if bad is not None else "gives an account twice"
                if chain.split:
                    split_failed.add(chain.top)
                    fail_split(chain, why)
                    continue
                raise _Refused(f"a partition of the account list {why}")
            for account_id in ids:
                owner.setdefault(account_id, number)
            yield from value
    except KeyboardInterrupt:
        # The run ends: the listings stop within a request instead of reading on, or
        # waiting out the rate limit, while the pool is waited for.
        from login_audit.http import cancel_all

        cancel_all()
        raise
    finally:
        stopping.set()  # a caller that stops reading stops the listings after a page
        pool.shutdown(wait=True, cancel_futures=True)


def partitioned_items(
    partitions: tuple[Partition, ...], lister: Lister, whole: Callable[[], Iterator[Any]]
) -> Iterator[Any]:
    """:func:`read_partitions`, or ``whole()`` (one listing) after it if a partition fails."""
    try:
        yield from read_partitions(partitions, lister)
    except _Refused as exc:
        log.info("%s; reading the account list in one listing", exc)
        yield from whole()
