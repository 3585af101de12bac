"""Randomised soak: seeded fault mixes against the simulator; prints the figures.

.venv/bin/python bench/soak.py --runs 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from login_audit.simulator.soak import soak


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
