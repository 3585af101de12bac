"""Compatibility entry point for the original ``login_audit_report.py`` script.

``python login_audit_report.py -t TOKEN`` (with ``TMV1_URL`` for the host) audits with the
default policy, writes ``filtered_accounts_report.csv`` (and the detailed reports) to the
current directory and logs errors to ``error.log``, as the original script did, but with
login-audit's rules: successful logons only, fail closed on missing data, no token printed.
New set-ups should use ``login-audit audit`` instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from login_audit.config import TOKEN_ENV, URL_ENV, HttpSettings, Secret, vision_one_base_url
from login_audit.errors import EXIT_CONFIG, LoginAuditError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.visionone import VisionOne
from login_audit.redaction import Redactor
from login_audit.service import (
    audit_and_report,
    configure_logging,
    exit_code_for,
    render_summary,
)


def main(argv: list[str] | None = None) -> int:
    """Run the audit the way the original script did; return the exit code."""
    parser = argparse.ArgumentParser(
        description="Audit Trend Vision One accounts (compatibility wrapper of login-audit)."
    )
    parser.add_argument(
        "-t",
        "--token",
        help=f"API token (visible to other users of this machine: prefer ${TOKEN_ENV})",
    )
    args = parser.parse_args(argv)
    redactor = Redactor()
    configure_logging(redactor, "WARNING", "error.log")
    token_text = args.token or os.environ.get(TOKEN_ENV, "")
    if args.token:
        print(
            "warning: a token given with -t is visible to other users of this machine "
            f"(ps, shell history); set {TOKEN_ENV} instead and omit -t",
            file=sys.stderr,
        )
    if not token_text.strip():
        print(f"error: no API token: pass -t TOKEN or set {TOKEN_ENV}", file=sys.stderr)
        return EXIT_CONFIG
    token = Secret(token_text.strip())
    redactor.add(token)
    try:
        region, base_url = vision_one_base_url(None, os.environ.get(URL_ENV) or None)
        with HttpClient(BearerAuth(token), HttpSettings()) as http:
            summary, notes = audit_and_report(
                VisionOne(http, base_url, region), policy=Policy(), output_dir=Path.cwd()
            )
    except LoginAuditError as exc:
        # Logged once: on stderr and in error.log, secrets scrubbed by the redactor.
        logging.getLogger("login_audit").error("%s", exc)
        return exc.exit_code
    print(render_summary(summary, notes))
    return exit_code_for(summary, fail_on_findings=False)


if __name__ == "__main__":
    sys.exit(main())
