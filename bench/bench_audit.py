"""Audit benchmark: requests and wall time of the first and the next-day audit.

Prints figures, asserts nothing. Run from the repository root:

    .venv/bin/python bench/bench_audit.py --accounts 500 5000 50000

For each tenant size, against the simulator (180 days of logons, Vision One's rate limit
of 500 requests per 60 s run ``--time-scale`` times faster, with the same scale applied
to a per-request latency of ``--latency-ms``):

1. requests of the first audit (``login-audit audit`` with a fresh archive), against the
   lower bound (account pages + ``Log on`` events in the window / 200) and against the
   per-user strategy of the old script (one filtered query per account, every page);
2. wall time of that audit against the bound requests / rate;
3. requests and wall time of a second audit one simulated day later;
4. peak memory (VmHWM) of the audit process.

The day between the two audits is compressed into seconds (the new records are dated
after the first audit's watermark), which changes no request count.

The per-user strategy is run for real up to ``--per-user-max`` accounts; above that its
request count is computed from the simulator's records (the same formula it follows).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import logons_of_a_day
from login_audit.config import HttpSettings, Secret
from login_audit.http import BearerAuth, HttpClient
from login_audit.platforms.visionone import LOGON_FILTER, filter_and, filter_eq
from login_audit.simulator import Simulator, build_tenant

CHILD = """
import sys, time
from login_audit.cli import main
started = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
elapsed = time.perf_counter() - started
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print('HWM', hwm, 'ELAPSED', elapsed, file=sys.stderr)
"""


def logons_in_window(tenant, now: datetime) -> Counter[str]:
    """``Log on`` events per loggedUser inside the 180-day window."""
    oldest = now - timedelta(days=180)
    counts: Counter[str] = Counter()
    for when, item in zip(tenant.times, tenant.records, strict=True):
        if (
            when >= oldest
            and item["activity"] == "Log on"
            and (item["category"] == "Logon and Logoff")
        ):
            counts[item["loggedUser"].lower()] += 1
    return counts


def per_user_requests(sim: Simulator, settings: HttpSettings) -> tuple[int, float]:
    """The old strategy for real: one filtered, fully paged query per account."""
    http = HttpClient(BearerAuth(Secret(sim.token)), settings)
    now = datetime.now(timezone.utc)
    params = {
        "startDateTime": (now - timedelta(days=179)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "top": 200,
    }
    started = time.perf_counter()
    for account in sim.accounts:
        headers = {
            "TMV1-Filter": filter_and(LOGON_FILTER, filter_eq("loggedUser", account["email"]))
        }
        url: str | None = f"{sim.base_url}/v3.0/audit/logs"
        query: dict | None = params
        while url:
            body = http.get_json(url, params=query, headers=headers)
            url, query = body.get("nextLink"), None
    http.close()
    return http.stats.requests, time.perf_counter() - started


def run_audit_cli(sim: Simulator, archive: Path, out: Path, scale: float) -> tuple[int, float, int]:
    """One ``login-audit audit`` in a child process: (requests, seconds, peak KiB).

    The seconds are those of the command itself, without the interpreter's start-up.
    """
    args = [
        sys.executable,
        "-c",
        CHILD,
        "audit",
        "--base-url",
        sim.base_url,
        "--archive",
        str(archive),
        "--output-dir",
        str(out),
        "--quiet",
        "--rate-window",
        str(60 * scale),
        "--backoff-base",
        str(scale),
    ]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=False,
        env={"TMV1_TOKEN": sim.token, "PATH": "/usr/bin:/bin"},
    )
    if proc.returncode not in (0, 3):
        raise SystemExit(f"audit failed ({proc.returncode}): {proc.stderr[-2000:]}")
    tail = proc.stderr.split("HWM")[-1].split()
    hwm, seconds = int(tail[0]), float(tail[2])
    import json

    report = json.loads((out / "audit_report.json").read_text())
    return report["run"]["requests"], seconds, hwm


def main() -> None:
    """Measure every tenant size and print one block of figures each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--per-user-max", type=int, default=5000)
    args = parser.parse_args()
    scale = args.time_scale
    rate = 500 / (60 * scale)
    print(
        f"rate limit 500 per 60 s at time scale {scale} = {rate:,.0f} requests/s; "
        f"latency {args.latency_ms:.0f} ms scaled to {args.latency_ms * scale:.1f} ms"
    )
    for size in args.accounts:
        tenant = build_tenant(seed=100 + size, accounts=size)
        with (
            tempfile.TemporaryDirectory() as tmp,
            Simulator(
                tenant, rate_window=60.0, time_scale=scale, latency_ms=args.latency_ms * scale
            ) as sim,
        ):
            now = datetime.now(timezone.utc)
            counts = logons_in_window(tenant, now)
            events = sum(counts.values())
            bound = math.ceil(size / 200) + math.ceil(events / 200)
            archive = Path(tmp) / "archive.sqlite3"
            requests, seconds, hwm = run_audit_cli(sim, archive, Path(tmp) / "one", scale)
            if size <= args.per_user_max:
                settings = HttpSettings(rate_window=60 * scale, backoff_base=scale)
                per_user, per_user_s = per_user_requests(sim, settings)
                per_user_note = f"measured, {per_user_s:.1f} s"
            else:
                per_user = sum(
                    max(1, math.ceil(counts.get(a.email.lower(), 0) / 200)) for a in tenant.accounts
                )
                per_user_note = "computed from the simulator's records"
            # "One day later": half the accounts log on once more. The day is compressed
            # into the seconds between the two audits, after the first one's watermark,
            # which changes no request count.
            first_end = datetime.now(timezone.utc)
            time.sleep(2.0)
            emails = (a.email for a in tenant.accounts[: size // 2])
            day = logons_of_a_day(emails, first_end, timedelta(seconds=1.5), size)
            sim.add_records(day)
            requests2, seconds2, _ = run_audit_cli(sim, archive, Path(tmp) / "two", scale)
        print(
            f"\n{size:,} accounts, {len(tenant.records):,} records, {events:,} logon events "
            f"in the window"
        )
        print(
            f"  first audit: {requests} requests; lower bound {bound} "
            f"({requests / bound - 1:+.1%}); per-user strategy {per_user:,} "
            f"({per_user_note}): {per_user / requests:.1f}x more"
        )
        print(
            f"  wall time: {seconds:.2f} s; bound requests/rate {bound / rate:.2f} s; "
            f"ratio {seconds / (requests / rate):.2f} of requests/rate"
        )
        print(
            f"  next day ({len(day):,} new logons): {requests2} requests in {seconds2:.2f} s, "
            f"{requests2 / per_user:.2%} of the per-user strategy"
        )
        print(f"  peak memory of the audit process: {hwm / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
