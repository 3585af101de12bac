"""Migration 0005: an archive written with hex primary keys is rekeyed by time in place.

The archive is built here as the code before 0005 built it (the migrations up to 0004, then
rows inserted with the statement its ``commit_page`` ran), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey, to_us
from login_audit.archive.signals import SignalStore
from login_audit.archive.sql import SqlArchive
from login_audit.audit import archived_logons
from login_audit.models import AuditRecord
from login_audit.platforms.visionone import parse_record
from login_audit.syncstate import Checkpoint

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
KEYS = (TenantKey("visionone", "eu", "prod"), TenantKey("visionone", "us", "prod"))

#: What ``commit_page`` ran before 0005: the hex digest as the key.
OLD_INSERT = (
    "INSERT INTO records (tenant_id, key, logged_at, category, activity, result, kind,"
    " principal, account_id, raw, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def some_records(seed: int, count: int) -> list[AuditRecord]:
    """Logons (ok, failed), log-offs and other records, some sharing a second, two undated,
    in no particular order of time."""
    rng = random.Random(seed)
    items = []
    for n in range(count):
        category, activity = rng.choice(
            [("Logon and Logoff", "Log on")] * 3
            + [("Logon and Logoff", "Log off"), ("Account Management", "Edit account")]
        )
        item = {
            "loggedDateTime": (T0 + timedelta(minutes=rng.randrange(600))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "loggedUser": f"user{rng.randrange(8)}@example.com",
            "category": category,
            "activity": activity,
            "result": rng.choice(["Successful", "Successful", "Unsuccessful"]),
            "details": {"n": n},
        }
        if rng.random() < 0.3:
            item["loggedUserId"] = f"id-{rng.randrange(8)}"
        if n in (5, 17):
            item["loggedDateTime"] = "unreadable"
        items.append(item)
    records = [parse_record(item) for item in items]
    return [r for r in records if r is not None]


def build_old_archive(url: str, monkeypatch) -> dict[TenantKey, list[AuditRecord]]:
    """An archive at 0004 holding records of two tenants, numbered as they were stored,
    with a watch position; returns each tenant's records in storage order."""
    from login_audit.archive import sql

    monkeypatch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:4])
    old = open_archive(url)
    assert isinstance(old, SqlArchive)
    stored: dict[TenantKey, list[AuditRecord]] = {}
    for n, key in enumerate(KEYS):
        tenant = old.tenant_id(key)
        records = some_records(n, 120)
        # The same record in both tenants: keys are unique per tenant only.
        records.append(some_records(0, 1)[0])
        unique = list({r.key: r for r in reversed(records)}.values())[::-1]
        with old.dialect.transaction(old.conn):
            for seq, r in enumerate(unique, 1):
                old._execute(
                    OLD_INSERT,
                    (
                        tenant,
                        r.key,
                        to_us(r.when) if r.when else None,
                        r.category,
                        r.activity,
                        r.result,
                        r.kind.value,
                        r.principal,
                        r.account_id,
                        r.raw,
                        seq,
                    ),
                )
            old._execute("UPDATE tenants SET record_seq = ? WHERE id = ?", (len(unique), tenant))
        SignalStore(old).save(tenant, (), 40 + n, T0)
        stored[key] = unique
    assert "0005_records_keyed_by_time" not in old.migrations()
    old.close()
    monkeypatch.undo()
    return stored


def logons(archive: SqlArchive, tenant: int) -> list[tuple[object, ...]]:
    return sorted(
        (e.principal, e.account_id or "", e.successful, e.when or T0 - timedelta(days=1))
        for e in archived_logons(archive, tenant)
    )


def test_an_old_archive_keeps_its_records_logons_and_watch_positions(
    archive_url: str, monkeypatch
) -> None:
    stored = build_old_archive(archive_url, monkeypatch)
    # What the code before 0005 answered, read before migrating.
    from login_audit.archive import sql

    monkeypatch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:4])
    before = open_archive(archive_url)
    assert isinstance(before, SqlArchive)
    old_logons = {key: logons(before, before.tenant_id(key)) for key in KEYS}
    before.close()
    monkeypatch.undo()

    archive = open_archive(archive_url)
    assert isinstance(archive, SqlArchive)
    assert archive.migrations()[-1] == "0005_records_keyed_by_time"
    store = SignalStore(archive)
    for n, key in enumerate(KEYS):
        tenant = archive.tenant_id(key)
        records = stored[key]
        # The same records, in time order for export (undated first)...
        undated = sorted(r.key for r in records if r.when is None)
        dated = sorted((r.when, r.key) for r in records if r.when is not None)
        exported = list(archive.iter_records(tenant, batch=7))
        assert [r.key for r in exported] == undated + [k for _, k in dated]
        assert sorted(exported, key=lambda r: r.key) == sorted(records, key=lambda r: r.key)
        # ... the same logons for the audit, the same numbers and position for the watch.
        assert logons(archive, tenant) == old_logons[key]
        assert store.position(tenant) == 40 + n
        assert store.last_seq(tenant) == len(records)
        assert [(seq, r.key) for seq, r in store.records_after(tenant, 0, 1000)] == [
            (seq, r.key) for seq, r in enumerate(records, 1)
        ]
        # A record stored before is still a duplicate; a new one gets the next number.
        again = archive.commit_page(tenant, "all", records, Checkpoint.single(T0, T0, None, 1))
        assert again == 0 and store.last_seq(tenant) == len(records)
        new = [r for r in some_records(7, 30) if r.key not in {x.key for x in records}]
        assert archive.commit_page(tenant, "all", new, Checkpoint.single(T0, T0, None, 2)) == len(
            new
        )
        assert [r.key for _, r in store.records_after(tenant, len(records), 1000)] == [
            r.key for r in new
        ]
    archive.close()


@pytest.mark.parametrize("batch", [1, 3, 50])
def test_export_reads_the_new_key_in_time_then_digest_order(
    archive: SqlArchive, batch: int
) -> None:
    tenant = archive.tenant_id(KEYS[0])
    records = some_records(3, 80)
    archive.commit_page(tenant, "all", records, Checkpoint.single(T0, T0, None, 1))
    got = [r.key for r in archive.iter_records(tenant, batch=batch)]
    undated = sorted({r.key for r in records if r.when is None})
    dated = sorted({(r.when, r.key) for r in records if r.when is not None})
    assert got == undated + [k for _, k in dated]
