#!/usr/bin/env bash
# Make PostgreSQL's server binaries available for the test suite: the archive's tests
# run against a real server on loopback. Installs Debian's package when missing.
set -euo pipefail
if [ -n "${LOGIN_AUDIT_TEST_POSTGRES:-}" ]; then
    exit 0  # an already reachable server was named
fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "PostgreSQL server binaries are missing: install Debian's 'postgresql' package" \
         "or set LOGIN_AUDIT_TEST_POSTGRES to a server's URL" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql > /dev/null
