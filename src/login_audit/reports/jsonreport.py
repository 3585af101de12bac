"""``audit_report.json``: the run's metadata and every account, for machines and auditors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from login_audit.models import Finding, RunSummary
from login_audit.redaction import redact_url
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic
from login_audit.timeutil import format_z

JSON_FILENAME = "audit_report.json"
SCHEMA_VERSION = 1


def _time(moment: datetime | None) -> str | None:
    return format_z(moment) if moment else None


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


def summary_json(summary: RunSummary, *, with_accounts: bool = True) -> dict[str, Any]:
    """The whole report as a JSON-ready dictionary."""
    policy = summary.policy
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "login-audit", "version": summary.tool_version},
        "run": {
            "tenant": summary.tenant_name or None,
            "platform": summary.platform,
            "region": summary.region,
            "baseUrl": redact_url(summary.base_url),
            "startedAt": _time(summary.started_at),
            "finishedAt": _time(summary.finished_at),
            "windowStart": _time(summary.window.start),
            "windowEnd": _time(summary.window.end),
            "complete": summary.complete,
            "problems": list(summary.problems),
            "warnings": list(summary.warnings),
            "requests": summary.requests,
            "logonEventsRead": summary.events_read,
            "unmatchedIdentities": summary.unmatched_events,
        },
        "policy": {
            "days": policy.days,
            "graceDays": policy.grace_days,
            "includeDisabled": policy.include_disabled,
            "excludePatterns": list(policy.exclude_patterns),
            "excludeRoles": list(policy.exclude_roles),
            "identityMap": len(policy.identity_map),
            "ignoreIdentities": list(policy.ignore_identities),
            "trustEmptyEvidence": list(policy.trust_empty_evidence),
        },
        "unmatchedIdentities": [
            {
                "identity": u.identity,
                "kind": u.kind,
                "lastSuccessfulLogon": _time(u.last_success),
                "lastFailedLogon": _time(u.last_failed),
                "undatedSuccessfulLogon": u.undated_success,
            }
            for u in summary.unmatched
        ],
        "counts": summary.counts(),
        **(
            {
                "apiKeys": [
                    {
                        "id": f.key.id,
                        "name": f.key.name,
                        "enabled": f.key.enabled,
                        "lastUsed": _time(f.key.last_used),
                        "expires": _time(f.key.expires),
                        "finding": f.kind,
                        "reason": f.reason,
                    }
                    for f in summary.api_keys
                ]
            }
            if summary.api_keys is not None
            else {}
        ),
        "accounts": [finding_json(f) for f in summary.findings] if with_accounts else [],
    }


def write_summary(handle: IO[str], summary: RunSummary) -> None:
    """The report of :func:`summary_json`, streamed: the accounts are never all in memory
    as JSON at once (a tenant of 50,000 accounts would hold ~100 MB of dictionaries)."""
    head = summary_json(summary, with_accounts=False)
    text = json.dumps({**head, "accounts": []}, indent=2, ensure_ascii=False)
    before, _, after = text.rpartition('"accounts": []')
    handle.write(before + '"accounts": [')
    for number, finding in enumerate(summary.findings):
        item = _indented(finding_json(finding))
        handle.write(("," if number else "") + "\n    " + item.replace("\n", "\n    "))
    handle.write(("\n  ]" if summary.findings else "]") + after + "\n")


def _indented(value: dict[str, Any]) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, several times faster.

    The standard library's C encoder is not used when indenting, which made this report
    the slowest step after the requests; orjson writes the same text for these values
    (strings, integers, booleans, null). A string orjson refuses (a lone surrogate) is
    written by the standard library, as before.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, indent=2, ensure_ascii=False)


class JsonReport:
    """Writes ``audit_report.json``."""

    filename = JSON_FILENAME

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the file, pretty-printed and UTF-8, one account at a time."""
        return write_atomic(out_dir / self.filename, lambda h: write_summary(h, summary))
