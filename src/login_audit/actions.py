"""Safe cleanup: disable or delete the accounts of a cleanup CSV, checked again first.

Nothing changes without an explicit go-ahead. Before acting, the account list is read
again and every logon since the report is swept: an account that signed in since, changed
status, no longer exists, is excluded by the policy, or is the last enabled Master
Administrator is skipped with the reason. More than ``max_changes`` changes refuse the
whole run. Every action and its result is journalled, and the first failure stops the run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from login_audit.analysis import ActivityIndex, exclusion_reason
from login_audit.audit import _LogonFold
from login_audit.errors import (
    ConfigError,
    IncompleteDataError,
    LoginAuditError,
    RetryLaterError,
    UnsupportedActionError,
)
from login_audit.models import Account, AccountStatus, Policy, TimeWindow
from login_audit.platforms.base import Platform
from login_audit.sweep import Sweep
from login_audit.timeutil import Clock, format_z, parse_timestamp, utcnow

log = logging.getLogger(__name__)

ACTIONS = ("disable", "delete")
MASTER_ROLE = "master administrator"
JOURNAL_FILENAME = "apply_journal.csv"
JOURNAL_HEADER = ("Time", "Action", "UserId", "AccountId", "Outcome", "Reason")


@dataclass(frozen=True)
class Change:
    """One line of the plan, then of the journal."""

    user_id: str
    action: str
    outcome: str  # planned, skipped, done, failed, not-run
    reason: str
    account: Account | None = None

    @property
    def account_id(self) -> str:
        """The account's id, when it still exists."""
        return self.account.id if self.account else ""


def read_cleanup_csv(path: Path) -> list[str]:
    """The ``UserId`` of every ``Remove`` row of a cleanup CSV (header checked)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if header is None or [h.strip() for h in header[:3]] != ["UserId", "RoleName", "RequestType"]:
        raise ConfigError(
            f"{path} is not a cleanup CSV: its header must be UserId,RoleName,RequestType"
        )
    users = []
    for number, row in enumerate(rows, 2):
        if not row or not row[0].strip():
            continue
        if len(row) < 3 or row[2].strip() != "Remove":
            log.warning("%s line %d: RequestType is not 'Remove'; row ignored", path, number)
            continue
        user = row[0].strip()
        users.append(user[1:] if user.startswith("'") else user)  # undo formula neutralising
    return users


def report_end(csv_path: Path) -> datetime | None:
    """When the audit behind a cleanup CSV ended, from ``audit_report.json`` beside it."""
    report = csv_path.with_name("audit_report.json")
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        return parse_timestamp(data["run"]["windowEnd"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recent_logons(
    platform: Platform, accounts: list[Account], since: datetime, now: datetime
) -> ActivityIndex:
    """Every logon since ``since``, joined to ``accounts``; refuses on incomplete data.

    The API takes whole seconds, so the window ends at the next whole second: a logon in
    the current second must not escape the re-check.
    """
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    window = TimeWindow(since, end)
    fold = _LogonFold(window)
    problems = Sweep(platform, window, logons_only=True).run(lambda page, _: fold.add_page(page))
    if problems:
        raise IncompleteDataError(
            f"cannot check the logons since {since:%Y-%m-%d %H:%M} ({problems[0]}); "
            "nothing was changed"
        )
    index = ActivityIndex(accounts)
    index.add_all(platform.account_activity())
    index.add_all(fold.events_for_index())
    return index


def plan(
    requested: list[str],
    accounts: list[Account],
    index: ActivityIndex,
    policy: Policy,
    action: str,
    since: datetime,
) -> list[Change]:
    """Decide, for every requested user, what ``apply`` would do and why."""
    by_user = {a.user_id.lower(): a for a in accounts}
    masters = sum(
        1
        for a in accounts
        if a.role.casefold() == MASTER_ROLE and a.status is AccountStatus.ENABLED
    )
    changes: list[Change] = []
    seen: set[str] = set()
    for user in requested:
        if user.lower() in seen:
            continue
        seen.add(user.lower())
        account = by_user.get(user.lower())
        if account is None:
            changes.append(Change(user, action, "skipped", "no longer exists"))
            continue

        def skip(reason: str, acc: Account = account, who: str = user) -> None:
            changes.append(Change(who, action, "skipped", reason, acc))

        activity = index.get(account.id)
        excluded = exclusion_reason(replace(account, status=AccountStatus.ENABLED), policy)
        if action == "disable" and account.status is AccountStatus.DISABLED:
            skip("already disabled")
        elif account.status is AccountStatus.DISABLED and not policy.include_disabled:
            skip("disabled (use --include-disabled to delete disabled accounts)")
        elif account.status not in (AccountStatus.ENABLED, AccountStatus.DISABLED):
            skip(f"status changed to {account.status.value}")
        elif excluded:
            skip(f"excluded: {excluded}")
        elif activity.last_success is not None or activity.undated_success:
            when = activity.last_success
            skip(
                f"signed in since the report ({when:%Y-%m-%d %H:%M})"
                if when
                else "signed in since the report"
            )
        elif account.role.casefold() == MASTER_ROLE and account.status is AccountStatus.ENABLED:
            if masters <= 1:
                skip("the last enabled Master Administrator")
            else:
                masters -= 1
                changes.append(
                    Change(user, action, "planned", f"no logon since {since:%Y-%m-%d}", account)
                )
        else:
            changes.append(
                Change(user, action, "planned", f"no logon since {since:%Y-%m-%d}", account)
            )
    return changes


class Journal:
    """``apply_journal.csv``, appended and flushed to disk one line at a time (mode 0600)."""

    def __init__(
        self,
        path: Path,
        clock: Clock = utcnow,
        mirror: Callable[[Change, datetime], None] | None = None,
    ) -> None:
        self.path, self.clock, self.mirror = path, clock, mirror
        new = not path.exists()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open the journal {path}: {exc.strerror}") from None
        self.handle = os.fdopen(fd, "a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle, lineterminator="\r\n")
        if new:
            self.writer.writerow(JOURNAL_HEADER)
        self.entries: list[Change] = []

    def write(self, change: Change) -> None:
        """Record one change (file, and archive when there is one) before the next action."""
        at = self.clock()
        self.writer.writerow(
            [
                format_z(at),
                change.action,
                change.user_id,
                change.account_id,
                change.outcome,
                change.reason,
            ]
        )
        self.handle.flush()
        os.fsync(self.handle.fileno())
        if self.mirror is not None:
            self.mirror(change, at)
        self.entries.append(change)

    def close(self) -> None:
        """Close the file."""
        self.handle.close()


def execute(
    platform: Platform,
    changes: list[Change],
    journal: Journal,
    on_change: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """Carry out the planned changes in order; stop at the first failure."""
    results: list[Change] = []
    failed = False
    for change in changes:
        if change.outcome != "planned" or change.account is None:
            result = change
        elif failed:
            result = replace(change, outcome="not-run", reason="stopped after a failure")
        else:
            try:
                if change.action == "disable":
                    platform.disable_account(change.account)
                else:
                    platform.delete_account(change.account)
            except UnsupportedActionError as exc:
                result = replace(change, outcome="skipped", reason=str(exc))
            except ConfigError as exc:
                if "not found" in str(exc):
                    result = replace(change, outcome="skipped", reason="no longer exists")
                else:
                    result = replace(change, outcome="failed", reason=str(exc))
                    failed = True
            except (RetryLaterError, LoginAuditError) as exc:
                result = replace(change, outcome="failed", reason=str(exc))
                failed = True
            else:
                result = replace(change, outcome="done")
        journal.write(result)
        on_change(result)
        results.append(result)
    return results


def recheck_since(csv_path: Path, policy: Policy, now: datetime) -> datetime:
    """The start of the logon re-check: the report's end, or ``--days`` back without one."""
    end = report_end(csv_path)
    fallback = now - timedelta(days=policy.days)
    return end - timedelta(minutes=5) if end and fallback < end <= now else fallback
