#!/usr/bin/env bash
# Run `make test` N times in a row, each in a fresh clone of this repository's HEAD, and
# say how many runs failed: a flaky test shows up here long before it shows up in CI.
#
#   scripts/repeat-suite.sh [N]        (default 20)
#
# Each clone is made in a private folder that is removed afterwards, whatever happens; the
# log of a failed run is kept in repeat-suite-logs/ beside the repository, and the temporary
# folder is checked for anything a run left behind.
set -euo pipefail

runs="${1:-20}"
case "$runs" in
    '' | *[!0-9]*) echo "usage: $0 [N]  (N: how many runs, a whole number)" >&2; exit 2 ;;
esac
repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
logs="$repo/repeat-suite-logs"
tmp_root="${TMPDIR:-/tmp}"
work="$(mktemp -d "$tmp_root/login-audit-repeat-XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=0
for i in $(seq 1 "$runs"); do
    clone="$work/clone"
    rm -rf "$clone"
    git clone --quiet "$repo" "$clone"
    before="$(ls -A "$tmp_root" | sort)"
    start=$(date +%s)
    if make -C "$clone" test > "$work/log" 2>&1; then
        outcome=passed
    else
        outcome=FAILED
        failed=$((failed + 1))
        mkdir -p "$logs"
        cp "$work/log" "$logs/run-$i.log"
    fi
    # Other programs on the machine may add folders too: this is a hint, not a verdict.
    left="$(comm -13 <(echo "$before") <(ls -A "$tmp_root" | sort) | grep -cv '^$' || true)"
    # A run that stops before pytest (lint, types, install) has no such line.
    summary="$(grep -E '[0-9]+ (passed|failed)' "$work/log" | tail -1 || true)"
    summary="${summary:-no tests ran: $(tail -1 "$work/log")}"
    echo "run $i/$runs: $outcome in $(($(date +%s) - start)) s; $summary; new in $tmp_root: $left"
done
echo "$((runs - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
