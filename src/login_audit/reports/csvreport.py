"""CSV reports: the cleanup file existing processes import, and the per-account detail."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from login_audit.models import Finding, RunSummary
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic
from login_audit.timeutil import format_z

CLEANUP_FILENAME = "filtered_accounts_report.csv"
CLEANUP_HEADER = ("UserId", "RoleName", "RequestType")
ACCOUNTS_FILENAME = "accounts_report.csv"
ACCOUNTS_HEADER = (
    "UserId",
    "AccountId",
    "RoleName",
    "AuthType",
    "Status",
    "LastLogin",
    "DaysSinceLogin",
    "LastFailedLogin",
    "Finding",
    "Reason",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A value that already starts with the prefix gets one more, so that reading a cell can
# always remove exactly one: ``'dave@x`` is written ``''dave@x`` and read back whole.
_PREFIXED = (*_FORMULA_START, "'")


def neutralise(value: str) -> tuple[str, bool]:
    """Make a cell inert for spreadsheets: prefix a ``'`` to values that start a formula
    (or a ``'``); :func:`read_cell` is its exact inverse.

    NUL characters, which no spreadsheet shows and some CSV writers cannot write, are
    dropped.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.startswith(_PREFIXED):
        return "'" + value, True
    return value, False


def read_cell(cell: str) -> str:
    """The value a cell written by :func:`neutralise` holds: one leading ``'`` removed."""
    return cell[1:] if cell.startswith("'") else cell


def write_rows(
    handle: IO[str], header: Sequence[str], rows: Iterable[Sequence[str]], notes: WriteNotes
) -> None:
    """Write a header and rows, neutralising every cell and counting what was changed."""
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(neutral_row(row, notes))


def neutral_row(row: Sequence[str], notes: WriteNotes) -> list[str]:
    """``row`` with every cell neutralised, counting the cells that were changed."""
    safe = []
    for cell in row:
        value, changed = neutralise(cell)
        notes.neutralised += int(changed)
        safe.append(value)
    return safe


def _time(moment: datetime | None) -> str:
    return format_z(moment) if moment else ""


class CleanupCsv:
    """``filtered_accounts_report.csv``: ``UserId,RoleName,RequestType`` per account to remove."""

    filename = CLEANUP_FILENAME

    def rows(self, findings: Iterable[Finding]) -> list[list[str]]:
        """One ``Remove`` row per removable finding, sorted by user id."""
        chosen = sorted(
            (f for f in findings if f.kind.removable), key=lambda f: f.account.user_id.lower()
        )
        return [[f.account.user_id, f.account.role, "Remove"] for f in chosen]

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the file, header only when nothing is to be removed."""
        rows = self.rows(summary.findings)
        return write_atomic(
            out_dir / self.filename,
            lambda h: write_rows(h, CLEANUP_HEADER, rows, notes),
            newline="",
        )


class AccountsCsv:
    """``accounts_report.csv``: every account with its finding and the evidence."""

    filename = ACCOUNTS_FILENAME

    def rows(self, findings: Iterable[Finding]) -> Iterator[list[str]]:
        """One row per finding, in report order (generated, so memory stays flat)."""
        return (
            [
                f.account.user_id,
                f.account.id,
                f.account.role,
                f.account.auth_type,
                f.account.status.value,
                _time(f.last_login),
                "" if f.days_since_login is None else str(f.days_since_login),
                _time(f.last_failed_login),
                f.kind.value,
                f.reason,
            ]
            for f in findings
        )

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the file."""
        rows = self.rows(summary.findings)
        return write_atomic(
            out_dir / self.filename,
            lambda h: write_rows(h, ACCOUNTS_HEADER, rows, notes),
            newline="",
        )


STALE_KEYS_FILENAME = "stale_api_keys.csv"
STALE_KEYS_HEADER = ("KeyId", "Name", "Enabled", "LastUsed", "Expires", "Finding", "Reason")


class StaleKeysCsv:
    """``stale_api_keys.csv``: API keys unused in ``--days``, expired, or never used."""

    filename = STALE_KEYS_FILENAME

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the flagged keys (header only when there are none)."""
        rows = [
            [
                f.key.id,
                f.key.name,
                "yes" if f.key.enabled else "no",
                _time(f.key.last_used),
                _time(f.key.expires),
                f.kind,
                f.reason,
            ]
            for f in summary.api_keys or ()
            if f.flagged
        ]
        return write_atomic(
            out_dir / self.filename,
            lambda h: write_rows(h, STALE_KEYS_HEADER, rows, notes),
            newline="",
        )
