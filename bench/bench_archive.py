"""Archive benchmark: ingest rate (SQLite, PostgreSQL), export memory, incremental audits.

Prints figures, asserts nothing. Run from the repository root:

    .venv/bin/python bench/bench_archive.py --records 1000000

1. Records parsed and stored per second: synthetic Vision One audit records are parsed
   (``parse_record``: canonical JSON, hash, timestamps) and committed ``COMMIT_PAGES``
   pages of 200 at a time with their checkpoint, as ``sync`` does (with the command
   line's collector setting, ``cli.GC_THRESHOLD``; ``--python-gc`` keeps Python's
   default, the setting of a program using the library). The rate is the
   median over ten equal chunks; the last chunk against the first shows whether it
   stays flat as the table grows. Records per CPU second (SQLite: all the work is in
   this process) tell the code's cost apart from a busy machine's: of the thread that
   parses and stores, and of the whole process (with the background checkpoints of the
   write-ahead log); the last chunk is then stored again to measure the look-up of
   records already stored.
2. Peak memory (max RSS) of ``login-audit export --no-sync`` of the whole archive to JSON,
   in a child process, against the same command on an archive a tenth the size.
3. Requests and seconds of a first ``audit`` of a simulated tenant and of a second one
   a simulated day later (the simulator adds a day of logons; the clock moves a day).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres import postgres_server

from bench import logons_of_a_day
from login_audit.archive import Archive, open_archive
from login_audit.archive.base import TenantKey
from login_audit.audit import run_archived_audit
from login_audit.cli import GC_THRESHOLD
from login_audit.config import HttpSettings, Secret
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.visionone import VisionOne, parse_record
from login_audit.simulator import Simulator, build_tenant
from login_audit.sync import COMMIT_PAGES
from login_audit.syncstate import Checkpoint

NOW = datetime.now(timezone.utc).replace(microsecond=0)
CATEGORIES = (
    ("Logon and Logoff", "Log on"),
    ("Logon and Logoff", "Log off"),
    ("Account Management", "Edit account"),
    ("Workbench", "Update alert status"),
)


def synthetic_items(count: int, seed: int = 1) -> list[dict]:
    """``count`` audit records spread over 180 days, oldest first."""
    rng = random.Random(seed)
    step = 180 * 86_400 / count
    items = []
    for n in range(count):
        when = NOW - timedelta(days=180) + timedelta(seconds=n * step)
        category, activity = rng.choice(CATEGORIES)
        items.append(
            {
                "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ingestedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "loggedUser": f"user{rng.randrange(50_000):06d}@example.com",
                "loggedRole": "Operator",
                "accessType": "Console",
                "category": category,
                "activity": activity,
                "result": "Successful" if rng.random() < 0.9 else "Unsuccessful",
                "details": {"sourceIp": f"198.51.100.{rng.randrange(1, 255)}", "n": n},
            }
        )
    return items


def store(archive: Archive, tenant: int, items: list[dict]) -> int:
    """Parse and store ``items`` as ``sync`` does: pages of 200, ``COMMIT_PAGES`` a commit."""
    checkpoint = Checkpoint.single(NOW - timedelta(days=180), NOW, "next", 0)
    held: list = []
    stored = 0
    for i in range(0, len(items), 200):
        held += [parse_record(item) for item in items[i : i + 200]]
        if len(held) >= 200 * COMMIT_PAGES or i + 200 >= len(items):
            stored += archive.commit_page(tenant, "all", held, checkpoint)
            held = []
    return stored


def ingest(
    url: str, items: list[dict], chunks: int = 10
) -> tuple[list[float], tuple[float, float], float]:
    """Parse and store ``items``; return records/second of each chunk, records per second of
    this thread's and of this process's CPU time, and records/second of storing the last
    chunk again (every record already stored, each looked up; the first pass needs no
    look-up for a record later than every stored one, as in a first sync read in time
    order)."""
    archive = open_archive(url)
    tenant = archive.tenant_id(TenantKey("visionone", "bench.invalid", "ingest"))
    size = len(items) // chunks
    rates = []
    cpu, thread = time.process_time(), time.thread_time()
    for c in range(chunks):
        chunk = items[c * size : (c + 1) * size]
        started = time.perf_counter()
        store(archive, tenant, chunk)
        rates.append(len(chunk) / (time.perf_counter() - started))
    thread_rate = size * chunks / (time.thread_time() - thread)
    cpu_rate = size * chunks / (time.process_time() - cpu)
    started = time.perf_counter()
    assert store(archive, tenant, items[(chunks - 1) * size : chunks * size]) == 0
    again = size / (time.perf_counter() - started)
    archive.finish_window(tenant, "all", NOW - timedelta(days=180), NOW, NOW)
    archive.close()
    return rates, (thread_rate, cpu_rate), again


def export_batch_ms(url: str, batch: int = 5000) -> tuple[float, float]:
    """Median milliseconds of the first and of the last ten export batches."""
    archive = open_archive(url)
    tenant = archive.tenant_id(TenantKey("visionone", "bench.invalid", "ingest"))
    times, started = [], time.perf_counter()
    for n, _ in enumerate(archive.iter_records(tenant, batch=batch), 1):
        if n % batch == 0:
            now = time.perf_counter()
            times.append((now - started) * 1000)
            started = now
    archive.close()
    return statistics.median(times[:10]), statistics.median(times[-10:])


def export_peak_rss_mib(archive_path: str) -> tuple[float, float]:
    """Max RSS (MiB) and seconds of a child ``login-audit export`` of the whole archive."""
    out = Path(archive_path).with_suffix(".export.json")
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            # VmHWM is the peak RSS of this process image; ru_maxrss would include the
            # parent's peak, inherited across fork and exec.
            "import sys\n"
            "from login_audit.cli import main\n"
            "try:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(hwm.split()[1], file=sys.stderr)",
            "export",
            "--no-sync",
            "--base-url",
            "https://bench.invalid",
            "--tenant",
            "ingest",
            "--archive",
            archive_path,
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    rss_kib = int(proc.stderr.strip().splitlines()[-1])
    out.unlink()
    return rss_kib / 1024, seconds


def incremental_audit(accounts: int, latency_ms: float) -> dict[str, float]:
    """Requests and seconds of a first audit and of a second one a simulated day later."""
    tenant = build_tenant(seed=5, accounts=accounts)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Simulator(tenant, latency_ms=latency_ms) as sim:
        archive = open_archive(str(Path(tmp) / "a.sqlite3"))
        key = TenantKey("visionone", "bench", "audit")

        def audit(clock_offset: timedelta) -> tuple[int, float]:
            http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings())
            platform = VisionOne(http, sim.base_url, "bench")
            started = time.perf_counter()
            summary = run_archived_audit(
                platform,
                archive,
                key,
                Policy(),
                clock=lambda: datetime.now(timezone.utc) + clock_offset,
            )
            return summary.requests, time.perf_counter() - started

        results["first_requests"], results["first_seconds"] = audit(timedelta(0))
        # One simulated day: every active account logs on once more.
        emails = (a.email for a in tenant.accounts[: accounts // 2])
        day = logons_of_a_day(emails, datetime.now(timezone.utc), timedelta(hours=23), 9)
        sim.add_records(day)
        results["second_requests"], results["second_seconds"] = audit(timedelta(days=1))
        results["new_logons"] = len(day)
        archive.close()
    return results


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="keep Python's default collector thresholds (the CLI collects less often)",
    )
    args = parser.parse_args()
    if not args.python_gc:
        # As `login-audit sync` runs: the command line collects cyclic garbage less often.
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    print(f"generating {args.records:,} synthetic records ...", flush=True)
    items = synthetic_items(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.sqlite3")
        rates, (thread_rate, cpu_rate), again = ingest(path, items)
        print(
            f"SQLite ingest: median {statistics.median(rates):,.0f} records/s "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}, 10 chunks of "
            f"{args.records // 10:,}); last chunk {rates[-1] / rates[0]:.0%} of the first; "
            f"{thread_rate:,.0f} records per CPU second of the ingesting thread "
            f"({cpu_rate:,.0f} of the process); the last chunk again (all "
            f"duplicates, each looked up) {again:,.0f} records/s",
            flush=True,
        )
        first, last = export_batch_ms(path)
        print(
            f"export batches of 5,000: first ten {first:.1f} ms each, last ten {last:.1f} ms "
            f"each (median); ratio {last / first:.2f}",
            flush=True,
        )
        small = str(Path(tmp) / "small.sqlite3")
        ingest(small, items[: args.records // 10], chunks=1)
        big_rss, big_s = export_peak_rss_mib(path)
        small_rss, small_s = export_peak_rss_mib(small)
        print(
            f"export to JSON: {args.records:,} records peak RSS {big_rss:.0f} MiB "
            f"({big_s:.1f} s); {args.records // 10:,} records peak RSS {small_rss:.0f} MiB "
            f"({small_s:.1f} s); ratio {big_rss / small_rss:.2f}",
            flush=True,
        )
    if not args.skip_postgres:
        with postgres_server() as url:
            if url is None:
                print("PostgreSQL: no server binaries, skipped")
            else:
                pg_rates, _, pg_again = ingest(url, items)
                print(
                    f"PostgreSQL ingest: median {statistics.median(pg_rates):,.0f} records/s "
                    f"(min {min(pg_rates):,.0f}, max {max(pg_rates):,.0f}); last chunk "
                    f"{pg_rates[-1] / pg_rates[0]:.0%} of the first; the last chunk again "
                    f"(all duplicates) {pg_again:,.0f} records/s",
                    flush=True,
                )
    figures = incremental_audit(args.accounts, args.latency_ms)
    print(
        f"audit of {args.accounts:,} accounts at {args.latency_ms:.0f} ms latency: first "
        f"{figures['first_requests']:.0f} requests in {figures['first_seconds']:.1f} s; a "
        f"simulated day later ({figures['new_logons']:.0f} new logons) "
        f"{figures['second_requests']:.0f} requests in {figures['second_seconds']:.1f} s "
        f"({figures['second_requests'] / figures['first_requests']:.1%} of the requests)"
    )


if __name__ == "__main__":
    main()
