"""Archived records written out as JSON (one array), JSONL or CSV, streaming."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from login_audit.config import looks_like_token
from login_audit.errors import ConfigError
from login_audit.models import AuditRecord
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import is_unusual, write_atomic
from login_audit.reports.csvreport import neutralise
from login_audit.timeutil import format_z_micro

FORMATS = ("json", "jsonl", "csv", "ocsf")
#: OCSF 1.1 Authentication (Identity & Access Management).
OCSF_CLASS, OCSF_CATEGORY, OCSF_VERSION = 3002, 3, "1.1.0"
_LOGON, _LOGOFF = 1, 2
_ACTIVITY = {
    "log on": _LOGON,
    "log off": _LOGOFF,
    "audit.user-signed-in.v1": _LOGON,
    "audit.user-signed-out.v1": _LOGOFF,
}
CSV_HEADER = ("Time", "Category", "Activity", "Result", "User", "UserId", "Raw")


def guess_format(output: str, requested: str | None) -> str:
    """The format asked for, else the one the output's suffix names, else JSON (no suffix).

    A suffix that names no format (``-o audit.xlsx``) is refused rather than filled with
    JSON the file's name says it is not.
    """
    if requested:
        return requested
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix and output != "-":
        raise ConfigError(
            f"cannot tell the format of {output} from its suffix .{suffix}: name the file "
            f".json, .jsonl, .csv or .ocsf, or give --format ({', '.join(FORMATS)})"
        )
    return "json"


def _time(record: AuditRecord) -> str:
    return format_z_micro(record.when) if record.when else ""


def ocsf_event(record: AuditRecord) -> dict[str, object] | None:
    """An OCSF Authentication event for a logon or logoff record, or None for others."""
    activity = _ACTIVITY.get(record.activity.lower()) or _ACTIVITY.get(record.category.lower())
    if activity is None or record.when is None:
        return None
    cloudone = record.category.lower().startswith("audit.")
    failed = record.result and record.result.lower() != "successful"
    user: dict[str, object] = {"name": record.principal}
    if "@" in record.principal:
        user["email_addr"] = record.principal
    if record.account_id:
        user["uid"] = record.account_id
    if cloudone:
        user["uid"] = record.principal
    return {
        "class_uid": OCSF_CLASS,
        "class_name": "Authentication",
        "category_uid": OCSF_CATEGORY,
        "category_name": "Identity & Access Management",
        "activity_id": activity,
        "activity_name": "Logon" if activity == _LOGON else "Logoff",
        "type_uid": OCSF_CLASS * 100 + activity,
        "time": int(record.when.timestamp() * 1000),
        "severity_id": 1,
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
        "user": user,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": record.key,
            "product": {
                "name": "Trend Cloud One" if cloudone else "Trend Vision One",
                "vendor_name": "Trend Micro",
            },
        },
        "raw_data": record.raw,
    }


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
    elif fmt == "ocsf":
        for record in records:
            event = ocsf_event(record)
            if event is not None:
                handle.write(json.dumps(event, ensure_ascii=False))
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


def check_output(output: str, *, force: bool) -> None:
    """Refuse to overwrite an existing file without ``force``, before any work is done."""
    path = Path(output).expanduser()
    if output != "-" and not path.exists() and looks_like_token(path.name.split(".")[0]):
        # Every message would echo the name, and the file's name would keep the token.
        raise ConfigError(
            "--output got a name that looks like a token (not shown); the token belongs in "
            "TMV1_TOKEN or --token-file: name the file to write, such as audit.jsonl"
        )
    if output != "-" and is_unusual(path):
        # Replacing it would put a regular file where a device (/dev/null) or a pipe was.
        raise ConfigError(
            f"{path} is not a regular file (a folder, device, pipe or socket): to write into it, "
            f"use -o - and redirect: > {path}"
        )
    if output != "-" and path.exists() and not force:
        raise ConfigError(f"{path} already exists; add --force to overwrite it")


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
