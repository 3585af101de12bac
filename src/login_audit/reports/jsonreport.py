"""``audit_report.json``: the run's metadata and every account, for machines and auditors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from login_audit.http import redact_url
from login_audit.models import Finding, RunSummary
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic

JSON_FILENAME = "audit_report.json"
SCHEMA_VERSION = 1


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def finding_json(finding: Finding) -> dict[str, Any]:
    """One account of the report."""
    account = finding.account
    return {
        "userId": account.user_id,
        "accountId": account.id,
        "email": account.email,
        "role": account.role,
        "authType": account.auth_type,
        "status": account.status.value,
        "finding": finding.kind.value,
        "remove": finding.kind.removable,
        "reason": finding.reason,
        "lastLogin": _time(finding.last_login),
        "daysSinceLogin": finding.days_since_login,
        "lastFailedLogin": _time(finding.last_failed_login),
    }


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """The whole report as a JSON-ready dictionary."""
    policy = summary.policy
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "login-audit", "version": summary.tool_version},
        "run": {
            "platform": summary.platform,
            "region": summary.region,
            "baseUrl": redact_url(summary.base_url),
            "startedAt": _time(summary.started_at),
            "finishedAt": _time(summary.finished_at),
            "windowStart": _time(summary.window.start),
            "windowEnd": _time(summary.window.end),
            "complete": summary.complete,
            "problems": list(summary.problems),
            "requests": summary.requests,
            "logonEventsRead": summary.events_read,
            "unmatchedLogonEvents": summary.unmatched_events,
        },
        "policy": {
            "days": policy.days,
            "includeDisabled": policy.include_disabled,
            "excludePatterns": list(policy.exclude_patterns),
            "excludeRoles": list(policy.exclude_roles),
        },
        "counts": summary.counts(),
        "accounts": [finding_json(f) for f in summary.findings],
    }


def _write(handle: IO[str], text: str) -> None:
    handle.write(text)


class JsonReport:
    """Writes ``audit_report.json``."""

    filename = JSON_FILENAME

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the file, pretty-printed and UTF-8."""
        text = json.dumps(summary_json(summary), indent=2, ensure_ascii=False) + "\n"
        return write_atomic(out_dir / self.filename, lambda h: _write(h, text))
