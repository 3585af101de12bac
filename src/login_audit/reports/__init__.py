"""Report writers, one module per format, behind the :class:`Report` interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from login_audit.models import RunSummary


@dataclass
class WriteNotes:
    """What writers report back to the caller besides the paths."""

    neutralised: int = 0
    paths: list[Path] = field(default_factory=list)


class Report(Protocol):
    """A report format: renders a run summary into one file of ``out_dir``."""

    filename: str

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the report atomically (mode 0600) and return its path."""
        ...


def default_reports(summary: RunSummary | None = None) -> list[Report]:
    """The reports an audit writes, in the order they are listed to the user."""
    from login_audit.reports.csvreport import AccountsCsv, CleanupCsv, StaleKeysCsv
    from login_audit.reports.htmlreport import HtmlReport
    from login_audit.reports.jsonreport import JsonReport

    reports: list[Report] = [CleanupCsv(), AccountsCsv(), JsonReport(), HtmlReport()]
    if summary is not None and summary.api_keys is not None:
        reports.append(StaleKeysCsv())
    return reports


def write_reports(
    summary: RunSummary, out_dir: Path, reports: list[Report] | None = None
) -> WriteNotes:
    """Write every report of ``reports`` (default: all) into ``out_dir``."""
    from login_audit.reports.atomic import ensure_dir

    ensure_dir(out_dir)
    notes = WriteNotes()
    for report in reports if reports is not None else default_reports(summary):
        notes.paths.append(report.write(summary, out_dir, notes))
    return notes
