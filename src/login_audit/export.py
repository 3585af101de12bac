"""Archived records written out as JSON (one array), JSONL or CSV, streaming."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from login_audit.errors import ConfigError
from login_audit.models import AuditRecord
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic
from login_audit.reports.csvreport import neutralise

FORMATS = ("json", "jsonl", "csv")
CSV_HEADER = ("Time", "Category", "Activity", "Result", "User", "UserId", "Raw")


def guess_format(output: str, requested: str | None) -> str:
    """The format asked for, else the one the output's suffix names, else JSON."""
    if requested:
        return requested
    suffix = Path(output).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "json"


def _time(record: AuditRecord) -> str:
    return record.when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if record.when else ""


def write_records(
    handle: IO[str], records: Iterable[AuditRecord], fmt: str, notes: WriteNotes
) -> int:
    """Write ``records`` to ``handle`` in ``fmt``; return how many were written."""
    count = 0
    if fmt == "json":
        handle.write("[")
        for record in records:
            handle.write(",\n" if count else "\n")
            handle.write(record.raw)
            count += 1
        handle.write("\n]\n" if count else "]\n")
    elif fmt == "jsonl":
        for record in records:
            handle.write(record.raw)
            handle.write("\n")
            count += 1
    elif fmt == "csv":
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        for record in records:
            row = []
            for cell in (
                _time(record),
                record.category,
                record.activity,
                record.result,
                record.principal,
                record.account_id or "",
                record.raw,
            ):
                value, changed = neutralise(cell)
                notes.neutralised += int(changed)
                row.append(value)
            writer.writerow(row)
            count += 1
    else:
        raise ConfigError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return count


def export_records(records: Iterable[AuditRecord], output: str, fmt: str, notes: WriteNotes) -> int:
    """Stream ``records`` to ``output`` (``-`` for stdout; files are written atomically)."""
    if output == "-":
        return write_records(sys.stdout, records, fmt, notes)
    counted: list[int] = []

    def write(handle: IO[str]) -> None:
        counted.append(write_records(handle, records, fmt, notes))

    path = Path(output).expanduser()
    if path.parent and not path.parent.exists():
        raise ConfigError(f"cannot write {path}: the directory {path.parent} does not exist")
    write_atomic(path, write, newline="" if fmt == "csv" else None)
    notes.paths.append(path)
    return counted[0]
