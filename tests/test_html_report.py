"""The HTML report as a person sees it: rendered by a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from login_audit.models import Finding, FindingKind
from login_audit.reports import write_reports
from login_audit.reports.htmlreport import COLOURS, render
from tests.test_reports import SAMPLE, acc, make_summary

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing (scripts/ensure-chromium.sh installs it)")
        pytest.skip("chromium is not installed (run scripts/ensure-chromium.sh)")
    return path


def evil_summary():
    evil = Finding(
        acc("<script>alert(1)</script>@example.com", "<b>Role</b>"),
        FindingKind.NO_LOGIN,
        "reason with <img src=x onerror=alert(2)>",
    )
    return make_summary(*SAMPLE.findings, evil)


def test_values_are_escaped() -> None:
    page = render(evil_summary())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in page
    assert "<img src=x" not in page and "<b>Role</b>" not in page
    assert page.count("<script>") == 1  # only the report's own


def test_the_page_is_self_contained() -> None:
    page = render(SAMPLE)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(" not in page


def test_dormant_accounts_with_recent_failed_logons_stand_out() -> None:
    page = render(SAMPLE)
    row = next(r for r in page.split("<tr") if "old@example.com" in r)
    assert 'class="alert"' in row and "&#9888;" in row


def test_rendered_in_chromium(tmp_path: Path) -> None:
    binary = chromium()
    summary = evil_summary()
    write_reports(summary, tmp_path)
    page = tmp_path / "audit_report.html"
    result = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = result.stdout
    assert 'data-ready="1"' in dom, result.stderr[-2000:]  # the script ran to its end
    histogram = dom[dom.index('id="histogram"') : dom.index("</svg>", dom.index('id="histogram"'))]
    # One segment per finding present in a band, each in its finding's colour.
    segments = re.findall(r'<rect [^>]*fill="(#[0-9a-f]+)" data-kind="([a-z-]+)"', histogram)
    assert segments and all(COLOURS[FindingKind(kind)] == fill for fill, kind in segments)
    shown = sum(1 for f in summary.findings if f.kind is not FindingKind.EXCLUDED)
    assert sum(int(n) for n in re.findall(r"days: (\d+) ", histogram)) == shown
    roles = dom[dom.index('id="roles"') : dom.index("</svg>", dom.index('id="roles"'))]
    assert roles.count("<rect") >= 3
    assert dom.count('<tr data-kind="') == len(summary.findings)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_prints_to_pdf(tmp_path: Path) -> None:
    binary = chromium()
    write_reports(make_summary(*SAMPLE.findings), tmp_path)
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--print-to-pdf={pdf}",
            (tmp_path / "audit_report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_last_failed_within_threshold_only() -> None:
    # A failure older than the threshold is history, not an alarm.
    old = Finding(
        acc("x@example.com"),
        FindingKind.INACTIVE,
        "r",
        SAMPLE.started_at - timedelta(days=200),
        SAMPLE.started_at - timedelta(days=120),
        200,
    )
    row = next(r for r in render(make_summary(old)).split("<tr") if "x@example.com" in r)
    assert 'class="alert"' not in row


def test_the_histogram_is_coloured_by_finding_not_by_band() -> None:
    """An unknown account is grey and an inactive one red, wherever their bands fall."""
    inactive = Finding(acc("late@example.com"), FindingKind.INACTIVE, "r", days_since_login=90)
    unknown = Finding(acc("unread@example.com"), FindingKind.UNKNOWN, "r")
    active = Finding(acc("busy@example.com"), FindingKind.ACTIVE, "r", days_since_login=200)
    page = render(make_summary(inactive, unknown, active))
    bars = dict(
        (title.split(" days: ")[0], fill)
        for fill, title in re.findall(
            r'fill="(#[0-9a-f]+)" data-kind="[a-z-]+"><title>([^<]+)', page
        )
    )
    assert bars["61-90"] == COLOURS[FindingKind.INACTIVE]
    assert bars["none"] == COLOURS[FindingKind.UNKNOWN]
    assert bars["181-365"] == COLOURS[FindingKind.ACTIVE]


def test_the_page_names_the_tenant_and_shows_the_policy() -> None:
    from dataclasses import replace

    from login_audit.models import Policy

    policy = Policy(days=60, grace_days=14, exclude_patterns=("svc-*",), exclude_roles=("Auditor",))
    summary = replace(make_summary(*SAMPLE.findings), tenant_name="prod-eu", policy=policy)
    page = render(summary)
    assert "<title>Login audit: prod-eu (visionone eu)</title>" in page
    policy_text = re.sub(r"<[^>]+>", "", page[page.index('id="policy"') :].split("</p>")[0])
    assert f"{len(summary.to_remove)} to remove" in policy_text
    for needle in ("threshold 60 days", "grace for new accounts 14 days", "svc-*", "Auditor"):
        assert needle in policy_text, policy_text


def test_attribute_values_and_every_section_are_escaped_too() -> None:
    """Quotes cannot leave an attribute, and no section is left out of the escaping."""
    from dataclasses import replace

    from login_audit.models import UnmatchedIdentity

    hostile = '"><script>alert(3)</script>'
    summary = replace(
        evil_summary(),
        tenant_name=hostile,
        problems=(hostile,),
        complete=False,
        warnings=(hostile,),
        unmatched=(UnmatchedIdentity(hostile, "display-name", None, None),),
    )
    page = render(summary)
    assert page.count("<script>") == 1
    assert "&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert page.count("alert(3)") == 5  # the title, heading, problem, warning, identity


def test_the_fleet_page_escapes_names_and_links() -> None:
    from datetime import datetime, timezone

    from login_audit.reports.htmlreport import FleetEntry, render_fleet

    hostile = '"><img src=x onerror=alert(4)>'
    page = render_fleet(
        [
            FleetEntry(hostile, SAMPLE, hostile + "/audit_report.html", 0),
            FleetEntry("down", None, None, 2, error=hostile),
        ],
        datetime(2026, 11, 22, tzinfo=timezone.utc),
    )
    assert "<img" not in page
    assert '<a href="&#34;&gt;&lt;img src=x onerror=alert(4)&gt;/audit_report.html">' in page
    assert page.count("alert(4)") == 3
    assert '<td colspan="5">' in page and "FAILED" in page
