"""The fault matrix: every fault on every endpoint ends in the truth or in 'incomplete'.

A run may never put an account on the removal list that the ground truth does not; when
it cannot read everything it must say so (exit code 4 at the command line).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from login_audit.audit import run_audit
from login_audit.config import HttpSettings, Secret
from login_audit.errors import EXIT_INCOMPLETE
from login_audit.http import ApiKeyAuth, BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.cloudone import CloudOne
from login_audit.platforms.visionone import VisionOne
from login_audit.service import exit_code_for
from login_audit.simulator import (
    ALL_FAULTS,
    CHANGE_FAULTS,
    FaultConfig,
    build_cloudone_tenant,
    build_tenant,
)
from login_audit.simulator.server import BODY_FAULTS, C1_BODY_FAULTS

V1_PATHS = ("/v3.0/iam/accounts", "/v3.0/audit/logs")
#: Faults of the vendor's answers; "shift-accounts" changes the tenant itself (tested below),
#: and the refusals of a change are tested with apply (tests/test_apply_adversarial.py).
ANSWER_FAULTS = tuple(k for k in ALL_FAULTS if k not in ("shift-accounts", *CHANGE_FAULTS))
C1_PATHS = ("/api/users", "/api/saml-users", "/api/roles", "/api/logs")
#: Cloud One bodies carry no links, so a link to another host is not a Cloud One fault.
C1_FAULTS = tuple(k for k in ANSWER_FAULTS if k not in BODY_FAULTS or k in C1_BODY_FAULTS)
#: A cursor that repeats never heals: the audit log (read once, newest first) must stop
#: incomplete. An account list is read again when a listing fails, so it heals.
C1_NEVER_HEALS = {("repeat-link", "/api/logs")}
# A loaded machine can take seconds to answer: a read timeout is asked for only where a
# "slow" answer is the fault under test, so no other case depends on the machine's speed.
SETTINGS = HttpSettings(backoff_base=0.001, retry_after_cap=0.01, max_attempts=8, timeout=30)


def faults_of(kind: str, path: str, seed: int) -> tuple[FaultConfig, HttpSettings]:
    """Half the requests to ``path`` get ``kind``; at most two slow answers of 3 s each,
    against a client that waits 0.3 s."""
    if kind == "slow":
        config = FaultConfig(
            rate=0.5, seed=seed, kinds=(kind,), paths=(path,), slow_seconds=3.0, limit=2
        )
        return config, replace(SETTINGS, timeout=0.3)
    return FaultConfig(rate=0.5, seed=seed, kinds=(kind,), paths=(path,)), SETTINGS


@pytest.fixture(scope="module")
def tenants():
    return build_tenant(seed=81, accounts=300), build_cloudone_tenant(seed=82, users=220)


def check(summary, truth: set[str], kind: str) -> None:
    flagged = {f.account.user_id for f in summary.to_remove}
    if summary.complete:
        assert flagged == truth, f"{kind}: wrong result"
    else:
        assert exit_code_for(summary, False) == EXIT_INCOMPLETE
        assert flagged <= truth, f"{kind}: flagged on missing data: {flagged - truth}"
        assert summary.problems and "incomplete" in summary.problems[0]


@pytest.mark.parametrize("path", V1_PATHS)
@pytest.mark.parametrize("kind", ANSWER_FAULTS)
def test_vision_one_fault_matrix(tenants, start_sim, path: str, kind: str) -> None:
    v1, c1 = tenants
    faults, settings = faults_of(kind, path, seed=3)
    sim = start_sim(v1, cloudone=c1, faults=faults)
    with HttpClient(BearerAuth(Secret(sim.token)), settings) as http:
        summary = run_audit(VisionOne(http, sim.base_url, "t"), Policy())
    assert sim.stats.faults[kind] > 0
    check(summary, {r["UserId"] for r in v1.truth()["remove"]}, kind)
    if kind in ("repeat-link", "foreign-link"):
        assert not summary.complete  # these never heal: the listing must stop
    elif kind not in ("noitems", "nullitems"):
        assert summary.complete  # transient faults are retried away


@pytest.mark.parametrize("path", C1_PATHS)
@pytest.mark.parametrize("kind", C1_FAULTS)
def test_cloud_one_fault_matrix(tenants, start_sim, path: str, kind: str) -> None:
    """Every fault Cloud One can heal from is retried away: the result is complete and exact."""
    v1, c1 = tenants
    faults, settings = faults_of(kind, path, seed=4)
    sim = start_sim(v1, cloudone=c1, faults=faults)
    with HttpClient(ApiKeyAuth(Secret(sim.token)), settings) as http:
        summary = run_audit(CloudOne(http, "us-1", sim.base_url), Policy())
    assert sim.stats.faults[kind] > 0
    truth = {r["UserId"] for r in c1.truth()["remove"]}
    if (kind, path) in C1_NEVER_HEALS:
        assert not summary.complete and "would loop" in summary.problems[0]
        check(summary, truth, kind)
        return
    assert summary.complete, summary.problems
    assert {f.account.user_id for f in summary.to_remove} == truth
    if kind == "noitems":
        assert http.stats.retries > 0  # the bodies without their list were refused


def test_cloud_one_body_faults_change_cloud_one_bodies(tenants, start_sim) -> None:
    """Each body fault of the Cloud One matrix really changes a Cloud One answer."""
    import httpx

    v1, c1 = tenants
    sim = start_sim(v1, cloudone=c1)
    headers = {"Authorization": f"ApiKey {sim.token}", "Api-Version": "v1"}

    def page(kind: str | None, **params: str) -> dict:
        sim.faults = FaultConfig(rate=1.0 if kind else 0.0, kinds=(kind or "500",))
        answer = httpx.get(f"{sim.base_url}/api/logs", params=params, headers=headers)
        return answer.json()

    first = page(None, limit="100")
    assert len(first["logs"]) == 100 and first["next"]
    assert "logs" not in page("noitems", limit="100")
    assert page("repeat-link", limit="100", cursor=first["next"])["next"] == first["next"]
    assert sim.token in page("echo-link", limit="100")["next"]
    ended = page("nullitems", limit="100", cursor="")  # not the last page: no change
    assert ended["logs"] and ended["next"]
    count, cursor = 0, ""
    while True:  # how many entries the log serves (those within its retention)
        served = page(None, limit="100", cursor=cursor)
        count += len(served["logs"])
        if "next" not in served:
            break
        cursor = served["next"]
    last = page(None, limit="100", cursor=_c1_cursor(count - 1))
    assert len(last["logs"]) == 1 and "next" not in last
    extra = page("nullitems", limit="100", cursor=_c1_cursor(count - 1))
    assert extra["next"]  # the listing now ends on an extra, empty page ...
    assert page("nullitems", limit="100", cursor=extra["next"]) == {"logs": None}  # ... null


def _c1_cursor(offset: int) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps({"o": offset, "k": "/api/logs"}).encode()).decode()


def test_connection_refused_is_incomplete() -> None:
    import socket

    # The port stays bound (and not listening) for the whole test, so no other program can
    # take it and answer: connecting to it is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        settings = HttpSettings(backoff_base=0.001, max_attempts=2)
        with HttpClient(BearerAuth(Secret("a-realistic-token-0123456789")), settings) as http:
            summary = run_audit(VisionOne(http, f"http://127.0.0.1:{port}", "t"), Policy())
    assert not summary.complete and summary.to_remove == ()
    assert f"connection refused by 127.0.0.1:{port}" in " ".join(summary.problems)
    assert http.stats.retries == 0  # an address that never answered is not retried


def test_an_outage_on_every_endpoint_flags_nobody(tenants, start_sim) -> None:
    v1, c1 = tenants
    sim = start_sim(v1, cloudone=c1, faults=FaultConfig(outages=("/",)))
    settings = HttpSettings(backoff_base=0.001, max_attempts=2)
    with HttpClient(BearerAuth(Secret(sim.token)), settings) as http:
        summary = run_audit(VisionOne(http, sim.base_url, "t"), Policy())
    assert not summary.complete and summary.findings == () and summary.to_remove == ()


@pytest.mark.parametrize("partitioned", [False, True])
@pytest.mark.parametrize("limit", [1, None])
def test_an_account_deleted_while_the_list_is_paged(
    start_sim, tmp_path, limit, partitioned, monkeypatch
) -> None:
    """One deletion is absorbed by reading the list again; endless changes are incomplete.
    The same when the list is read as parallel partitions (the snapshot says it is long)."""
    from login_audit.archive import open_archive
    from login_audit.archive.base import TenantKey
    from login_audit.audit import run_archived_audit
    from login_audit.platforms import visionone

    if partitioned:
        from login_audit.platforms import partitions

        monkeypatch.setattr(visionone, "PARTITION_FROM", 500)
        # Split by role, this small tenant's listings would each fit on one page, and an
        # account is deleted only while a list is paged.
        monkeypatch.setattr(partitions, "ROLE_MIN_SHARE", 201)

    tenant = build_tenant(seed=83, accounts=700)
    sim = start_sim(tenant)
    archive = open_archive(str(tmp_path / "a.sqlite3"))
    key = TenantKey("visionone", "t", "default")
    with HttpClient(BearerAuth(Secret(sim.token)), SETTINGS) as http:
        first = run_archived_audit(VisionOne(http, sim.base_url, "t"), archive, key, Policy())
    assert first.complete
    sim.faults = FaultConfig(
        rate=1.0, seed=1, kinds=("shift-accounts",), paths=("/v3.0/iam/accounts",), limit=limit
    )
    with HttpClient(BearerAuth(Secret(sim.token)), SETTINGS) as http:
        second = run_archived_audit(VisionOne(http, sim.base_url, "t"), archive, key, Policy())
    archive.close()
    remaining = {a["email"] for a in sim.accounts}
    truth = {r["UserId"] for r in tenant.truth()["remove"]} & remaining
    flagged = {f.account.user_id for f in second.to_remove}
    assert sim.stats.faults["shift-accounts"] >= 1
    if limit == 1:
        assert second.complete and flagged == truth
        assert {f.account.email for f in second.findings} == remaining
    else:
        assert not second.complete and "kept changing" in " ".join(second.problems)
        assert flagged <= {r["UserId"] for r in tenant.truth()["remove"]}
