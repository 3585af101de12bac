"""The account list read as parallel partitions: the same accounts as one listing, or one
listing when the vendor refuses a partition's filter."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.audit import run_archived_audit
from login_audit.config import HttpSettings, Secret
from login_audit.errors import RetryLaterError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms import visionone
from login_audit.platforms.partitions import MAX_ROLES, Partition, Term, partitioned_items
from login_audit.platforms.visionone import (
    ACCOUNT_PARTITIONS,
    PARTITION_FROM,
    VisionOne,
    partition_filter,
)
from login_audit.simulator import FaultConfig, build_tenant

#: Accounts of kinds the partitions do not name, spelt otherwise, or without the fields.
ODD = [
    {"id": "odd-oidc", "email": "oidc@example.com", "authType": "oidc", "status": "enabled"},
    {"id": "odd-case", "email": "case@example.com", "authType": "LOCAL", "status": "Enabled"},
    {"id": "odd-none", "email": "none@example.com", "status": "enabled"},
    {"id": "odd-nost", "email": "nost@example.com", "authType": "local"},
    {"id": "odd-lock", "email": "lock@example.com", "authType": "local", "status": "locked"},
    {"id": "odd-saml", "email": "saml@example.com", "authType": "saml", "status": "weird"},
]


@pytest.fixture(scope="module")
def tenant():
    return build_tenant(seed=41, accounts=1300)


def platform_for(sim, **settings) -> VisionOne:
    http = HttpClient(
        BearerAuth(Secret(sim.token)),
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, **settings),
    )
    return VisionOne(http, sim.base_url, "sim")


def account_pages(sim) -> int:
    return sim.stats.by_path["/v3.0/iam/accounts"]


@pytest.mark.parametrize("faults", [0.0, 0.25])
def test_partitions_list_exactly_the_accounts_of_one_listing(tenant, start_sim, faults) -> None:
    sim = start_sim(tenant, faults=FaultConfig(rate=faults, seed=5))
    for account in ODD:
        sim.add_account(account)
    platform = platform_for(sim, max_attempts=15)
    whole = [a.id for a in platform.list_accounts()]
    one_listing = account_pages(sim)
    parts = [a.id for a in platform.list_accounts(expected=PARTITION_FROM)]
    assert Counter(parts) == Counter(whole)  # each account once, none missing
    assert {a["id"] for a in ODD} <= set(parts)
    assert len(set(whole)) == len(sim.accounts)
    if not faults:
        # Each partition (the role listings too) costs at most one partly filled page more
        # than one listing, and the split partition's first page is read again.
        listings = len(ACCOUNT_PARTITIONS) + MAX_ROLES + 1
        assert account_pages(sim) - one_listing <= one_listing + listings + 1


def test_each_partition_is_a_filter_the_simulator_accepts_and_they_do_not_overlap(
    tenant, start_sim
) -> None:
    sim = start_sim(tenant)
    for account in ODD:
        sim.add_account(account)
    platform = platform_for(sim)
    seen: Counter[str] = Counter()
    for partition in ACCOUNT_PARTITIONS:
        seen.update(item["id"] for item in platform._items(partition_filter(partition)))
    assert set(seen.values()) == {1} and len(seen) == len(sim.accounts)


def test_a_refused_partition_falls_back_to_one_listing(tenant, start_sim) -> None:
    sim = start_sim(tenant, behaviours=("account-filters-refused",))
    platform = platform_for(sim)
    ids = [a.id for a in platform.list_accounts(expected=PARTITION_FROM)]
    assert sorted(ids) == sorted(a["id"] for a in sim.accounts)


def test_an_outage_of_the_account_list_is_an_error_not_a_short_list(tenant, start_sim) -> None:
    sim = start_sim(
        tenant, faults=FaultConfig(rate=1.0, kinds=("500",), paths=("/v3.0/iam/accounts",))
    )
    platform = platform_for(sim, max_attempts=2)
    with pytest.raises(RetryLaterError):
        list(platform.list_accounts(expected=PARTITION_FROM))


def _running(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is inside a call of ``function`` right now."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def test_a_reader_that_stops_early_stops_the_listings(start_sim) -> None:
    """Once the reader has its first account and goes away, each listing asks for at most
    the page it had already decided to read. The simulator holds every account page asked
    for after the first account until the listings are stopping (the closing thread waits
    for them), so no listing can run ahead while the test looks, however fast it is."""
    sim = start_sim(build_tenant(seed=42, accounts=6000))
    lock, holding, release = threading.Lock(), threading.Event(), threading.Event()
    late = 0

    def hold(path: str) -> None:
        nonlocal late
        if path != "/v3.0/iam/accounts":
            return
        with lock:
            if not holding.is_set():
                return
            late += 1
        release.wait(timeout=60)

    sim.on_request = hold
    accounts = platform_for(sim).list_accounts(expected=PARTITION_FROM)
    next(accounts)
    with lock:
        holding.set()
    closer = threading.Thread(target=accounts.close)
    closer.start()
    for _ in range(6000):  # the listings are told to stop before the pool is shut down
        if _running(closer, "shutdown") or not closer.is_alive():
            break
        closer.join(timeout=0.01)
    release.set()
    closer.join(timeout=60)
    assert not closer.is_alive()
    # A whole read of this tenant takes more than 30 pages; one per listing at most here.
    assert late <= len(ACCOUNT_PARTITIONS) + MAX_ROLES + 1, late


def test_the_next_audit_of_a_large_tenant_reads_the_partitions(
    tenant, start_sim, tmp_path, monkeypatch
) -> None:
    """The archive's last snapshot says the list is long: the second audit partitions it,
    and its findings are those of the first."""
    sim = start_sim(tenant)
    archive = open_archive(str(tmp_path / "a.sqlite3"))
    key = TenantKey("visionone", sim.base_url, "default")
    first = run_archived_audit(platform_for(sim), archive, key, Policy())
    monkeypatch.setattr(visionone, "PARTITION_FROM", 1000)
    before = account_pages(sim)
    second = run_archived_audit(
        platform_for(sim), archive, key, Policy(), overlap=timedelta(minutes=5)
    )
    archive.close()
    assert first.complete and second.complete
    assert account_pages(sim) - before >= len(ACCOUNT_PARTITIONS)
    assert [(f.account.id, f.kind) for f in second.findings] == [
        (f.account.id, f.kind) for f in first.findings
    ]


def recording(platform: VisionOne) -> list[str]:
    """The filters ``platform`` lists the accounts with, in the order it asks for them."""
    asked: list[str] = []
    pages = platform._pages

    def spy(filter_text):
        asked.append(filter_text or "")
        return pages(filter_text)

    platform._pages = spy  # type: ignore[method-assign]
    return asked


def test_the_largest_partition_is_split_by_role_and_the_list_is_exact(tenant, start_sim) -> None:
    sim = start_sim(tenant)
    for account in ODD:
        sim.add_account(account)
    platform = platform_for(sim)
    asked = recording(platform)
    accounts = list(platform.list_accounts(expected=PARTITION_FROM))
    by_id = {a.id: a for a in accounts}
    assert len(by_id) == len(sim.accounts)
    assert {(a["id"], a.get("role", "")) for a in sim.accounts} == {
        (a.id, a.role) for a in by_id.values()
    }
    roles = [f for f in asked if "(role eq" in f and not f.startswith("not") and "not (" not in f]
    assert len(roles) >= 2  # the simulated tenant's roles each got a listing
    assert any("not ((role eq" in f for f in asked)  # and a remainder for any other role


@pytest.mark.parametrize("behaviour", ["account-filter-ignored", "account-filters-refused"])
def test_a_role_filter_ignored_or_refused_reads_the_partition_whole(
    tenant, start_sim, behaviour
) -> None:
    sim = start_sim(tenant, behaviours=(behaviour,))
    platform = platform_for(sim)
    asked = recording(platform)
    accounts = list(platform.list_accounts(expected=PARTITION_FROM))
    by_id = {a.id: a for a in accounts}
    assert len(by_id) == len(sim.accounts)
    assert {(a["id"], a["role"], a["status"]) for a in sim.accounts} == {
        (a.id, a.role, a.status.value) for a in by_id.values()
    }
    if behaviour == "account-filter-ignored":
        # The role listings are given up and only the local, enabled partition read whole:
        # the documented partitions still stand.
        assert "" not in asked
        whole = partition_filter(ACCOUNT_PARTITIONS[0])
        assert asked.count(whole) == 2


def fake_lister(accounts: list[dict], answer):
    """A vendor that answers each partition with ``answer(partition, accounts)``, paged."""

    def lister(partition):
        items = answer(partition, accounts)
        for start in range(0, max(len(items), 1), 200):
            yield items[start : start + 200]

    return lister


def people(n: int, roles=("Operator", "Auditor")) -> list[dict]:
    return [
        {
            "id": f"u{i}",
            "email": f"u{i}@example.com",
            "authType": "local",
            "status": "enabled",
            "role": roles[i % len(roles)],
        }
        for i in range(n)
    ]


def test_a_vendor_that_reads_an_unknown_field_as_false_is_caught() -> None:
    """``role eq X`` matches nobody and ``not (...)`` matches everyone: the remainder's
    items have a named role, so the split is given up and the partition read whole."""

    def answer(partition, accounts):
        if any(t.field == "role" and not t.negated for t in partition.terms):
            return []
        documented = Partition(tuple(t for t in partition.terms if t.field != "role"))
        return [a for a in accounts if documented.holds(a)]

    accounts = people(900)
    items = list(partitioned_items(ACCOUNT_PARTITIONS, fake_lister(accounts, answer), list))
    assert {i["id"] for i in items} == {a["id"] for a in accounts}


def test_an_account_in_two_partitions_makes_the_list_be_read_in_one_listing() -> None:
    """An account whose status changed while the list was read: listed as enabled and as
    disabled. The list is read again whole, and its version comes last."""
    accounts = people(900)
    moved = {**accounts[5], "status": "disabled"}
    latest = [moved if a["id"] == "u5" else a for a in accounts]

    def answer(partition, _):
        if partition.terms[-1] == Term("status", ("disabled",)):
            return [moved]
        return [a for a in accounts if partition.holds(a)]

    items = list(
        partitioned_items(ACCOUNT_PARTITIONS, fake_lister(accounts, answer), lambda: latest)
    )
    last = {i["id"]: i for i in items}
    assert last["u5"]["status"] == "disabled" and len(last) == 900


def test_no_role_split_when_an_account_has_no_role() -> None:
    accounts = people(900)
    accounts[3] = {k: v for k, v in accounts[3].items() if k != "role"}
    asked: list[Partition] = []

    def answer(partition, _):
        asked.append(partition)
        return [a for a in accounts if partition.holds(a)]

    items = list(partitioned_items(ACCOUNT_PARTITIONS, fake_lister(accounts, answer), list))
    assert sorted(i["id"] for i in items) == sorted(a["id"] for a in accounts)
    assert not any(t.field == "role" for p in asked for t in p.terms)


def test_a_role_with_a_control_character_is_not_a_crash(tenant, start_sim) -> None:
    """No filter can name such a role: its listing fails before any request, and the
    partition is read whole."""
    sim = start_sim(tenant)
    odd = [
        {
            "id": f"ctl{n}",
            "email": f"ctl{n}@example.com",
            "authType": "local",
            "status": "enabled",
            "role": "Bad\x07Role",
        }
        for n in range(50)
    ]
    with sim.lock:
        sim.accounts[:0] = odd  # on the first page, where the roles are learnt
        sim.account_rows.clear()
    platform = platform_for(sim)
    asked = recording(platform)
    ids = {a.id for a in platform.list_accounts(expected=PARTITION_FROM)}
    assert ids == {a["id"] for a in sim.accounts}
    assert asked.count(partition_filter(ACCOUNT_PARTITIONS[0])) == 2


def test_a_role_with_quotes_and_filter_words_is_listed_by_its_own_filter(tenant, start_sim) -> None:
    """A custom role named to look like filter syntax is quoted, not obeyed."""
    sim = start_sim(tenant)
    hostile = "O'Brien') or (status eq 'disabled"
    odd = [
        {
            "id": f"q{n}",
            "email": f"q{n}@example.com",
            "authType": "local",
            "status": "enabled",
            "role": hostile,
        }
        for n in range(60)
    ]
    with sim.lock:
        sim.accounts[:0] = odd
        sim.account_rows.clear()
    platform = platform_for(sim)
    asked = recording(platform)
    accounts = {a.id: a for a in platform.list_accounts(expected=PARTITION_FROM)}
    assert set(accounts) == {a["id"] for a in sim.accounts}
    assert all(accounts[f"q{n}"].role == hostile for n in range(60))
    assert "(role eq 'O''Brien'') or (status eq ''disabled')" in " ".join(asked)
    assert asked.count(partition_filter(ACCOUNT_PARTITIONS[0])) == 1  # the split held
