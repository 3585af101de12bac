"""The account list read as parallel partitions: the same accounts as one listing, or one
listing when the vendor refuses a partition's filter."""

from __future__ import annotations

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
from login_audit.platforms.visionone import ACCOUNT_PARTITIONS, PARTITION_FROM, VisionOne
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
        # Each partition costs at most one partly filled page more than one listing.
        assert account_pages(sim) - one_listing <= one_listing + len(ACCOUNT_PARTITIONS)


def test_each_partition_is_a_filter_the_simulator_accepts_and_they_do_not_overlap(
    tenant, start_sim
) -> None:
    sim = start_sim(tenant)
    for account in ODD:
        sim.add_account(account)
    platform = platform_for(sim)
    seen: Counter[str] = Counter()
    for filter_text in ACCOUNT_PARTITIONS:
        seen.update(item["id"] for item in platform._items(filter_text))
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


def test_a_reader_that_stops_early_stops_the_listings(tenant, start_sim) -> None:
    sim = start_sim(tenant)
    platform = platform_for(sim)
    accounts = platform.list_accounts(expected=PARTITION_FROM)
    next(accounts)
    accounts.close()
    # At most a page or two per partition was read after the reader went away.
    assert account_pages(sim) <= 2 * len(ACCOUNT_PARTITIONS)


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
