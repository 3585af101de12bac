"""Watch benchmark: time to find new signals in a large archive when little is new.

Prints figures, asserts nothing. Run from the repository root:

    .venv/bin/python bench/bench_watch.py --records 1000000 [--postgres]

1. An archive is filled with ``--records`` synthetic Vision One records over 180 days
   (50,000 identities, a quarter of the records logons) and a snapshot of 5,100 accounts.
2. A first watch reads the whole archive (time and signals found).
3. Then, ``--rounds`` times: ``--new`` records are stored (among them a dormant account
   logging on again and a burst of failed logons on a stale account) and a watch finds
   and delivers their signals to a JSON Lines file. The figure is the median time of
   the watch, and the time of a watch with nothing new.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_archive import NOW, synthetic_items
from tests.postgres import postgres_server

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.delivery import FileSink
from login_audit.models import Account, AccountStatus
from login_audit.platforms.visionone import parse_record
from login_audit.syncstate import Checkpoint
from login_audit.watch import WatchRules
from login_audit.watcher import run_watch

KEY = TenantKey("visionone", "bench.invalid", "watch")


def fill(url: str, records: int) -> float:
    """Store the synthetic records and an account snapshot; return seconds taken."""
    archive = open_archive(url)
    tenant = archive.tenant_id(KEY)
    started = time.perf_counter()
    accounts = [
        Account(f"id-{n}", f"user{n:06d}@example.com", "Operator", "local", AccountStatus.ENABLED)
        for n in range(5000)
    ] + [  # accounts that never log on: the bursts of failed logons aim at them
        Account(f"stale-{n}", f"stale{n}@example.com", "Operator", "local", AccountStatus.ENABLED)
        for n in range(100)
    ]
    archive.store_accounts(tenant, accounts, NOW - timedelta(days=1))
    items = synthetic_items(records)
    checkpoint = Checkpoint.single(NOW - timedelta(days=180), NOW, "next", 0)
    for i in range(0, len(items), 2000):
        page = [parse_record(item) for item in items[i : i + 2000]]
        archive.commit_page(tenant, "all", page, checkpoint)  # type: ignore[arg-type]
    archive.finish_window(tenant, "all", NOW - timedelta(days=180), NOW, NOW)
    archive.close()
    return time.perf_counter() - started


def new_records(round_: int, count: int) -> list:
    """``count`` ordinary new records plus a reactivation and a burst."""
    when = NOW + timedelta(minutes=10 * round_)
    items = []
    for n in range(count - 7):
        items.append(
            {
                "loggedDateTime": (when + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "loggedUser": f"user{(round_ * 977 + n) % 5000:06d}@example.com",
                "category": "Workbench",
                "activity": "Update alert status",
                "result": "Successful",
                "details": {"round": round_, "n": n},
            }
        )
    sleeper = f"sleeper{round_}@example.com"  # no logon in the archive: dormant
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    logon = {"category": "Logon and Logoff", "activity": "Log on", "loggedDateTime": stamp}
    items.append({**logon, "loggedUser": sleeper, "result": "Successful"})
    target = f"stale{round_}@example.com"
    for n in range(6):
        items.append(
            {
                **logon,
                "loggedUser": target,
                "result": "Unsuccessful",
                "details": {"try": n},
                "loggedDateTime": (when + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return [parse_record(item) for item in items]


def measure(url: str, rounds: int, new: int, out: Path) -> dict[str, object]:
    """First watch, then ``rounds`` watches of ``new`` records each, then one of nothing."""
    archive = open_archive(url)
    tenant = archive.tenant_id(KEY)
    sink = FileSink(str(out))
    rules = WatchRules()
    started = time.perf_counter()
    first = run_watch(archive, KEY, rules, [sink])
    first_seconds = time.perf_counter() - started
    times, found = [], []
    checkpoint = Checkpoint.single(NOW, NOW + timedelta(days=1), "next", 0)
    for r in range(1, rounds + 1):
        archive.commit_page(tenant, "all", new_records(r, new), checkpoint)
        started = time.perf_counter()
        result = run_watch(archive, KEY, rules, [sink])
        times.append(time.perf_counter() - started)
        found.append(result.signals)
    started = time.perf_counter()
    idle = run_watch(archive, KEY, rules, [sink])
    idle_seconds = time.perf_counter() - started
    archive.close()
    return {
        "first_watch_s": round(first_seconds, 1),
        "first_records": first.records,
        "first_signals": first.signals,
        "new_watch_median_ms": round(statistics.median(times) * 1000, 1),
        "new_watch_max_ms": round(max(times) * 1000, 1),
        "signals_per_round": sorted(set(found)),
        "nothing_new_ms": round(idle_seconds * 1000, 1),
        "idle_records": idle.records,
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--new", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="also measure PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        urls = {"sqlite": str(Path(tmp) / "archive.sqlite3")}
        if args.postgres and pg:
            urls["postgresql"] = pg
        for name, url in urls.items():
            fill_s = fill(url, args.records)
            figures = measure(url, args.rounds, args.new, Path(tmp) / f"{name}.jsonl")
            print(f"{name}: {args.records:,} records stored in {fill_s:.0f} s")
            for label, value in figures.items():
                print(f"  {label}: {value}")


if __name__ == "__main__":
    main()
