"""Randomised soak: seeded fault mixes against the simulator; prints the figures.

.venv/bin/python bench/soak.py --runs 200

The test suite runs a bounded number of the same runs (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import random
from collections import Counter
from dataclasses import dataclass, field

from login_audit.audit import run_audit
from login_audit.config import HttpSettings, Secret
from login_audit.http import ApiKeyAuth, BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.cloudone import CloudOne
from login_audit.platforms.visionone import VisionOne
from login_audit.simulator import ALL_FAULTS, FaultConfig, Simulator
from login_audit.simulator.cloudone import build_cloudone_tenant
from login_audit.simulator.tenant import build_tenant

PATHS = (
    "/v3.0/iam/accounts",
    "/v3.0/audit/logs",
    "/api/users",
    "/api/saml-users",
    "/api/roles",
    "/api/logs",
)


@dataclass
class SoakReport:
    """What a soak did and found."""

    runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    complete: int = 0
    incomplete: int = 0
    wrong: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line of figures."""
        return (
            f"{self.runs} runs, {sum(self.faults.values())} faults drawn "
            f"({len(self.faults)} kinds), {self.requests} requests; {self.complete} complete "
            f"and equal to the truth, {self.incomplete} incomplete (nothing flagged on missing "
            f"data), {len(self.wrong)} wrong"
        )


def soak(runs: int, seed: int = 2026, accounts: int = 400) -> SoakReport:
    """Run ``runs`` audits, alternating platforms, each with its own random fault mix."""
    rng = random.Random(seed)
    report = SoakReport()
    v1 = build_tenant(seed=seed, accounts=accounts)
    c1 = build_cloudone_tenant(seed=seed, users=accounts)
    truths = {
        "visionone": {r["UserId"] for r in v1.truth()["remove"]},
        "cloudone": {r["UserId"] for r in c1.truth()["remove"]},
    }
    for number in range(runs):
        platform = "visionone" if number % 2 == 0 else "cloudone"
        answer_faults = [k for k in ALL_FAULTS if k != "shift-accounts"]
        kinds = tuple(rng.sample(answer_faults, rng.randint(1, 5)))
        faults = FaultConfig(
            rate=rng.uniform(0.05, 0.4),
            seed=rng.randrange(1 << 30),
            kinds=kinds,
            paths=tuple(rng.sample(PATHS, rng.randint(1, len(PATHS)))),
            slow_seconds=0.6,
        )
        settings = HttpSettings(
            backoff_base=0.001, retry_after_cap=0.01, max_attempts=10, timeout=0.4
        )
        with Simulator(v1, cloudone=c1, faults=faults) as sim:
            if platform == "visionone":
                http = HttpClient(BearerAuth(Secret(sim.token)), settings)
                client: VisionOne | CloudOne = VisionOne(http, sim.base_url, "soak")
            else:
                http = HttpClient(ApiKeyAuth(Secret(sim.token)), settings)
                client = CloudOne(http, "us-1", sim.base_url)
            with http:
                summary = run_audit(client, Policy())
            report.faults.update(sim.stats.faults)
            report.requests += sim.stats.requests
        report.runs += 1
        flagged = {f.account.user_id for f in summary.to_remove}
        truth = truths[platform]
        if summary.complete:
            report.complete += 1
            if flagged != truth:
                report.wrong.append(f"run {number} ({platform}, {kinds}): wrong cleanup list")
        else:
            report.incomplete += 1
            if not flagged <= truth:
                report.wrong.append(f"run {number} ({platform}, {kinds}): flagged on missing data")
    return report


def main() -> None:
    """Run the soak and print one line of figures plus any wrong run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    report = soak(args.runs, seed=args.seed)
    print(f"soak (seed {args.seed}): {report.line()} in {time.perf_counter() - started:.0f} s")
    for kind, count in sorted(report.faults.items()):
        print(f"  {kind}: {count}")
    for problem in report.wrong:
        print(f"  WRONG: {problem}")


if __name__ == "__main__":
    main()
