"""Wall-time benchmark: what a user waits for, at real latency and the real rate limit.

Prints figures, asserts nothing. Each figure is the median of ``--repeat`` runs made in
this one run (the machine is shared: compare figures of one run, not across runs):

    .venv/bin/python bench/bench_wall.py --accounts 400 --latency-ms 100 400
    .venv/bin/python bench/bench_wall.py --accounts 5000 --latency-ms 100 --per-user-max 0
    .venv/bin/python bench/bench_wall.py --accounts 50000 --per-user-max 0 --repeat 1 --next-day

For each tenant size and latency, against the simulator (180 days of logons; Vision One's
limit of 500 requests per 60 s, not compressed; every answer delayed by the latency):

1. start-up: ``login-audit --version`` as a new process, from spawn to exit;
2. the first audit: ``login-audit audit`` with a fresh archive, as a new process, from
   spawn to exit; its requests against the lower bound (account pages + ``Log on``
   events / 200);
3. the per-user strategy of the old script (one filtered, fully paged query per account,
   one after another), run for real up to ``--per-user-max`` accounts;
4. the latency floor: start-up + latency x (the probe page + one wave of the parallel
   slices, i.e. the logon pages shared evenly by ``MAX_SLICES`` chains), or the account
   pages read one after another if they take longer, or requests / rate if the rate
   limit is the bound;
5. with ``--next-day``: an audit one simulated day later (half the accounts log on once
   more after the first audit's watermark, at instants spread over ``--day-spread``
   seconds: a day compressed, spread as a day's logons are, so the sweep's time slices
   can share them; 1.5 s puts them all in one burst that one slice must read), each
   repeat from a copy of the archive the first audit left and after a minute without
   requests (the rate window of a day).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import logons_of_a_day
from bench.bench_audit import logons_in_window, per_user_requests
from login_audit.config import HttpSettings
from login_audit.simulator import Simulator, build_tenant
from login_audit.sweep import MAX_SLICES

RATE = 500 / 60.0


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds from spawn to exit of ``login-audit ARGS``, and the finished process."""
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "login-audit"), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    return time.perf_counter() - started, proc


def audit(sim: Simulator, archive: Path, out: Path) -> tuple[float, int]:
    """One ``login-audit audit``: (seconds, requests)."""
    seconds, proc = timed(
        [
            "audit",
            "--base-url",
            sim.base_url,
            "--archive",
            str(archive),
            "--output-dir",
            str(out),
            "--quiet",
        ],
        {"TMV1_TOKEN": sim.token, "PATH": "/usr/bin:/bin", "HOME": str(out.parent)},
    )
    if proc.returncode not in (0, 3):
        raise SystemExit(f"audit failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads((out / "audit_report.json").read_text())
    return seconds, int(report["run"]["requests"])


def next_day(sim: Simulator, tenant, seed: int, spread: float) -> int:
    """Half the accounts log on once more, after everything read so far, at instants spread
    over the next ``spread`` seconds: the day between two audits, compressed."""
    now = datetime.now(timezone.utc)
    half = tenant.accounts[: len(tenant.accounts) // 2]
    day = logons_of_a_day((a.email for a in half), now, timedelta(seconds=spread), seed, seed)
    sim.add_records(day)
    time.sleep(spread + 0.5)  # the new records are older than the next audit's start
    return len(day)


def measure(size: int, latency_ms: float, args: argparse.Namespace) -> None:
    """Print one block of figures for one tenant size at one latency."""
    tenant = build_tenant(seed=100 + size, accounts=size)
    latency = latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp, Simulator(tenant, latency_ms=latency_ms) as sim:
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp}
        startup = statistics.median(timed(["--version"], env)[0] for _ in range(args.repeat))
        events = sum(logons_in_window(tenant, datetime.now(timezone.utc)).values())
        account_pages, logon_pages = math.ceil(size / 200), math.ceil(events / 200)
        bound = account_pages + logon_pages
        firsts, requests = [], []
        for n in range(args.repeat):
            archive = Path(tmp) / f"archive-{n}.sqlite3"
            seconds, count = audit(sim, archive, Path(tmp) / f"first-{n}")
            firsts.append(seconds)
            requests.append(count)
        first = statistics.median(firsts)
        wave = 1 + math.ceil(logon_pages / MAX_SLICES)
        floor = startup + latency * max(wave, account_pages)
        floor = max(floor, bound / RATE) if bound > 500 else floor
        print(f"\n{size:,} accounts, {events:,} logon events, latency {latency_ms:.0f} ms")
        print(f"  start-up (--version): {startup * 1000:.0f} ms")
        print(
            f"  first audit: {first:.2f} s (runs {', '.join(f'{s:.2f}' for s in firsts)}); "
            f"requests {statistics.median(requests):.0f} (runs {requests}), lower bound {bound} "
            f"(+{statistics.median(requests) - bound:.0f})"
        )
        print(f"  floor {floor:.2f} s: first audit at {first / floor:.2f}x the floor")
        if bound > 500:
            print(f"  requests / rate {bound / RATE:.1f} s: {first / (bound / RATE):.2f}x")
        if size <= args.per_user_max:
            settings = HttpSettings()
            runs = [per_user_requests(sim, settings) for _ in range(args.repeat)]
            per_user = statistics.median(s for _, s in runs)
            print(
                f"  per-user strategy: {runs[0][0]:,} requests, {per_user:.1f} s "
                f"(runs {', '.join(f'{s:.1f}' for _, s in runs)}): the audit is "
                f"{per_user / first:.1f}x faster"
            )
        if args.next_day:
            # One day of logons; each next-day audit starts from a copy of the archive as
            # the first audit left it, after a quiet rate window (a day has passed).
            added = next_day(sim, tenant, seed=2, spread=args.day_spread)
            nexts = []
            for n in range(args.next_repeat):
                archive = Path(tmp) / f"next-{n}.sqlite3"
                shutil.copyfile(Path(tmp) / "archive-0.sqlite3", archive)
                time.sleep(60.0)
                nexts.append(audit(sim, archive, Path(tmp) / f"next-{n}"))
            seconds = statistics.median(s for s, _ in nexts)
            print(
                f"  next-day audit ({added:,} new logons over {args.day_spread:g} s): "
                f"{seconds:.2f} s "
                f"(runs {', '.join(f'{s:.2f}' for s, _ in nexts)}), "
                f"requests {[r for _, r in nexts]}"
            )


def main() -> None:
    """Measure every tenant size at every latency."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[400, 5000])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[100.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-user-max", type=int, default=1000)
    parser.add_argument("--next-day", action="store_true")
    parser.add_argument("--next-repeat", type=int, default=3, help="next-day audits, one a day")
    parser.add_argument(
        "--day-spread",
        type=float,
        default=60.0,
        help="seconds over which the next day's logons are spread (1.5: all in one burst)",
    )
    args = parser.parse_args()
    for size in args.accounts:
        for latency in args.latency_ms:
            measure(size, latency, args)


if __name__ == "__main__":
    main()
