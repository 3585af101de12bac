"""Report writers, one module per format, behind the :class:`Report` interface."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from login_audit import interrupts
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


def prepare_in_background() -> Callable[[], None]:
    """Load the report writers and compile the page templates on a thread of their own.

    An audit spends most of its time waiting for the vendor's answers; loading the
    writers then, instead of after the last answer, shortens the wait for the reports.
    Nothing depends on it: a writer not ready yet is loaded when it is first used. Returns
    a function that waits until it has ended.
    """
    # Not a daemon: a run that fails at once exits only after this import has finished,
    # not while the interpreter tears modules down under it.
    worker = threading.Thread(target=_prepare, name="reports-prepare")
    worker.start()
    return worker.join


def _prepare() -> None:
    interrupts.spare_this_thread()
    # The import too: a thread's uncaught error would print its traceback amid the audit.
    with contextlib.suppress(Exception):  # whatever failed here fails again, reported, later
        from login_audit.reports.htmlreport import load_templates

        default_reports()
        load_templates()


#: Where an incomplete run writes its reports, inside the output directory, so that the
#: last complete reports (which a cleanup process may import) are never replaced by them.
INCOMPLETE_DIR = "incomplete"


def report_dir(summary: RunSummary, out_dir: Path) -> Path:
    """Where the reports of ``summary`` go: ``out_dir``, or its ``incomplete`` folder."""
    return out_dir if summary.complete else out_dir / INCOMPLETE_DIR


def write_reports(
    summary: RunSummary, out_dir: Path, reports: list[Report] | None = None
) -> WriteNotes:
    """Write every report of ``reports`` (default: all) as one set.

    A complete run replaces the reports in ``out_dir`` (and removes an older
    ``incomplete`` folder); an incomplete run writes into ``out_dir/incomplete`` and
    leaves the last complete reports alone. See :func:`atomic.replace_set`.
    """
    from login_audit.reports.atomic import ensure_dir, replace_set

    target = report_dir(summary, out_dir)
    # Folders made for this set are removed again if it is never written (an interrupt, a
    # full disk): a run that wrote nothing leaves no empty folder behind.
    made = [folder for folder in (target, *target.parents) if not folder.exists()]
    notes = WriteNotes()
    chosen = reports if reports is not None else default_reports(summary)

    def write(staging: Path) -> list[Path]:
        return [report.write(summary, staging, notes) for report in chosen]

    try:
        ensure_dir(out_dir)
        notes.paths += replace_set(ensure_dir(target), write)
    except BaseException:
        for folder in made:  # the deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    if summary.complete:
        from login_audit.reports.atomic import remove_files
        from login_audit.reports.csvreport import StaleKeysCsv

        names = [r.filename for r in default_reports()] + [StaleKeysCsv.filename]
        remove_files(out_dir / INCOMPLETE_DIR, names)
    return notes
