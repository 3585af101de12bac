"""Report writers: exact file contents, spreadsheet safety, atomic private writes."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from login_audit.errors import ConfigError
from login_audit.models import (
    Account,
    AccountStatus,
    Finding,
    FindingKind,
    Policy,
    RunSummary,
    TimeWindow,
    UnmatchedIdentity,
)
from login_audit.reports import WriteNotes, write_reports
from login_audit.reports.atomic import write_atomic
from login_audit.reports.csvreport import neutralise, read_cell, write_rows
from login_audit.reports.jsonreport import finding_json, write_summary

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def make_summary(*findings: Finding, complete: bool = True) -> RunSummary:
    return RunSummary(
        tool_version="0.1.0",
        platform="visionone",
        region="eu",
        base_url="https://api.eu.xdr.trendmicro.com",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        window=TimeWindow(NOW - timedelta(days=180), NOW),
        policy=Policy(),
        complete=complete,
        problems=() if complete else ("logon records incomplete",),
        requests=7,
        events_read=1234,
        unmatched_events=2,
        findings=findings,
        unmatched=(
            UnmatchedIdentity("root account", "ignored", NOW - timedelta(days=3), None),
            UnmatchedIdentity("deleted@example.com", "email", None, NOW - timedelta(days=9)),
        ),
    )


def acc(email: str, role: str = "Operator", status: AccountStatus = AccountStatus.ENABLED):
    return Account(
        id="id-" + email.split("@")[0], email=email, role=role, auth_type="local", status=status
    )


SAMPLE = make_summary(
    Finding(
        acc("old@example.com", "Master Administrator"),
        FindingKind.INACTIVE,
        "last successful logon 2026-06-01 (174 days ago), older than the 90-day threshold",
        NOW - timedelta(days=174),
        NOW - timedelta(days=2),
        174,
    ),
    Finding(
        acc("never@example.com", '=HYPERLINK("http://x")'),
        FindingKind.NO_LOGIN,
        "no successful logon since 2026-05-26, the oldest record read",
    ),
    Finding(
        acc("busy@example.com"),
        FindingKind.ACTIVE,
        "last successful logon 1 day ago",
        NOW - timedelta(days=1),
        None,
        1,
    ),
    Finding(
        acc("gone@example.com", status=AccountStatus.DISABLED),
        FindingKind.EXCLUDED,
        "status disabled",
    ),
)


def test_reports_match_golden_files(tmp_path: Path) -> None:
    notes = write_reports(SAMPLE, tmp_path)
    assert [p.name for p in notes.paths] == [
        "filtered_accounts_report.csv",
        "accounts_report.csv",
        "audit_report.json",
        "audit_report.html",
    ]
    for name in ("filtered_accounts_report.csv", "accounts_report.csv", "audit_report.json"):
        assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes(), name
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert notes.neutralised == 2  # the formula role, in both CSVs


def test_cleanup_csv_is_header_only_when_nothing_to_remove(tmp_path: Path) -> None:
    write_reports(make_summary(SAMPLE.findings[2]), tmp_path)
    text = (tmp_path / "filtered_accounts_report.csv").read_bytes()
    assert text == b"UserId,RoleName,RequestType\r\n"


def test_json_report_counts_and_metadata(tmp_path: Path) -> None:
    notes = write_reports(make_summary(*SAMPLE.findings, complete=False), tmp_path)
    # An incomplete run never replaces the last complete reports: it writes beside them.
    assert all(p.parent == tmp_path / "incomplete" for p in notes.paths)
    data = json.loads((tmp_path / "incomplete" / "audit_report.json").read_text())
    assert data["counts"] == {
        "active": 1,
        "inactive": 1,
        "no-login": 1,
        "excluded": 1,
        "unknown": 0,
    }
    assert data["run"]["complete"] is False and data["run"]["requests"] == 7
    assert data["run"]["windowStart"] == "2026-05-26T12:00:00Z"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'x"])
def test_formula_starts_are_neutralised(value: str) -> None:
    assert neutralise(value) == ("'" + value, True)


_CELL = st.one_of(
    st.text(),
    st.tuples(st.sampled_from(["'", "''", "=", "+", "-", "@", "\t", "\r", "\r\n"]), st.text()).map(
        "".join
    ),
).map(lambda value: value.replace("\x00", ""))


# Every example rewrites the same file, so sharing the test's folder between them is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_CELL.filter(bool), _CELL), max_size=8))
def test_the_cleanup_csv_reader_gets_back_every_user_and_role(tmp_path: Path, rows) -> None:
    """Whatever an account is called, apply reads back the very user id the audit wrote."""
    from login_audit.actions import read_cleanup_csv
    from login_audit.reports.csvreport import CLEANUP_HEADER

    path = tmp_path / "filtered_accounts_report.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        write_rows(handle, CLEANUP_HEADER, [[u, r, "Remove"] for u, r in rows], WriteNotes())
    read = read_cleanup_csv(path)
    assert [(e.user_id, e.role) for e in read] == rows


@given(st.lists(st.lists(st.text(max_size=30), min_size=3, max_size=3), max_size=10))
def test_csv_round_trip_keeps_values_and_no_formula_survives(rows: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    write_rows(buffer, ("A", "B", "C"), rows, WriteNotes())
    read = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert read[0] == ["A", "B", "C"]
    assert len(read) == len(rows) + 1
    for original, written in zip(rows, read[1:], strict=True):
        for before, after in zip(original, written, strict=True):
            assert not after.startswith(("=", "+", "-", "@", "\t", "\r"))
            clean = before.replace("\x00", "")
            assert read_cell(after) == clean


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("previous\n")

    def explode(handle) -> None:
        handle.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ConfigError, match="No space left on device"):
        write_atomic(target, explode)
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["report.csv"]  # no temporary file left behind


def test_unwritable_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ConfigError, match="cannot create output directory"):
        write_reports(SAMPLE, blocked / "sub")


def test_two_runs_into_one_folder_never_mix_their_sets(tmp_path: Path, monkeypatch) -> None:
    """Two audits writing one output folder at once (two tenants, a mistyped cron line):
    each set is moved into place under the folder's lock, so the folder holds one run's
    cleanup CSV beside the same run's audit_report.json, whichever finished last."""
    import fcntl

    from login_audit.reports import atomic

    out = tmp_path / "out"
    out.mkdir()
    moves: list[tuple[str, bool]] = []
    real_replace = os.replace

    def replace(source, target) -> None:
        if Path(target).parent == out:
            probe = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                moves.append((Path(target).name, True))  # another run must wait
            else:
                moves.append((Path(target).name, False))
            finally:
                os.close(probe)
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    notes = write_reports(SAMPLE, out)
    assert sorted(name for name, _ in moves) == sorted(p.name for p in notes.paths)
    assert moves and all(held for _, held in moves), moves
    probe = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and released afterwards
    finally:
        os.close(probe)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(role=st.text(), reason=st.text(), days=st.one_of(st.none(), st.integers(-(10**6), 10**6)))
def test_json_accounts_are_written_as_the_standard_library_writes_them(
    tmp_path: Path, role: str, reason: str, days: int | None
) -> None:
    # Any text, lone surrogates included (the standard library writes those itself).
    finding = Finding(acc("a@example.com", role), FindingKind.ACTIVE, reason, NOW, None, days)
    buffer = io.StringIO()
    write_summary(buffer, make_summary(finding))
    expected = json.dumps(finding_json(finding), indent=2, ensure_ascii=False)
    assert "    " + expected.replace("\n", "\n    ") in buffer.getvalue()
    assert json.loads(buffer.getvalue())["accounts"] == [finding_json(finding)]


@pytest.mark.parametrize("complete", [True, False])
def test_an_interrupted_write_leaves_no_folder_it_made(
    tmp_path: Path, monkeypatch, complete: bool
) -> None:
    """Ctrl-C or SIGTERM while the reports are written: the folders made for them go."""
    from login_audit.reports.jsonreport import JsonReport

    def interrupted(*_: object) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(JsonReport, "write", interrupted)
    out = tmp_path / "new" / "reports"
    summary = SAMPLE if complete else make_summary(*SAMPLE.findings, complete=False)
    with pytest.raises(KeyboardInterrupt):
        write_reports(summary, out)
    assert os.listdir(tmp_path) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        write_reports(summary, tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()  # a folder that was there stays
