"""``audit_report.html``: one self-contained page for people and auditors.

No network and no external assets: inline CSS, inline SVG charts, and a few lines of
inline JavaScript for sorting and filtering the table (the page reads fine without them
and prints well on paper). The markup lives in ``templates/``, rendered by Jinja2 with
autoescaping on, so every value is escaped without an ``escape()`` call in sight; this
module only computes what the templates show (counts, chart geometry, row flags).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from login_audit.models import Finding, FindingKind, RunSummary
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic
from login_audit.timeutil import format_minute

HTML_FILENAME = "audit_report.html"
COLOURS = {
    FindingKind.INACTIVE: "#c0392b",
    FindingKind.NO_LOGIN: "#e67e22",
    FindingKind.UNKNOWN: "#7f8c8d",
    FindingKind.ACTIVE: "#27ae60",
    FindingKind.EXCLUDED: "#95a5a6",
}
ORDER = (
    FindingKind.INACTIVE,
    FindingKind.NO_LOGIN,
    FindingKind.UNKNOWN,
    FindingKind.ACTIVE,
    FindingKind.EXCLUDED,
)

BINS: tuple[tuple[str, int, int], ...] = (
    ("0-7", 0, 7),
    ("8-30", 8, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-120", 91, 120),
    ("121-180", 121, 180),
    ("181-365", 181, 365),
    ("366+", 366, 10**9),
)


def _day(moment: datetime | None) -> str:
    return format_minute(moment)


@cache
def _templates() -> jinja2.Environment:
    """The page templates, shipped in the package; values are escaped unless marked safe."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("login_audit.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["day"] = _day
    return env


def load_templates() -> None:
    """Compile the templates of the audit page now (each is compiled once per process)."""
    for name in ("audit_report.html", "charts.svg"):
        _templates().get_template(name)


def _render(name: str, **values: Any) -> str:
    return _templates().get_template(name).render(**values)


def _chart(name: str, chart: dict[str, Any]) -> Markup:
    """One chart of ``charts.svg``, ready to be placed in a page."""
    macro = getattr(_templates().get_template("charts.svg").module, name)
    # With autoescape on, a macro returns Markup whose values are escaped already.
    drawn: Markup = macro(chart)
    return drawn


def _n(value: float) -> str:
    return f"{value:.1f}"


def histogram_svg(findings: tuple[Finding, ...], threshold: int) -> Markup:
    """Accounts per band of days since the last successful logon, threshold marked.

    Each bar is stacked by finding, in the finding's colour, so an ``unknown`` account is
    grey wherever it falls and an inactive one red even in a band under the threshold
    (its logon is older than the threshold by hours, or the bands are coarser than days).
    """
    bands: list[Counter[FindingKind]] = [Counter() for _ in range(len(BINS) + 1)]
    for f in findings:
        if f.kind is FindingKind.EXCLUDED:
            continue
        index = len(BINS)
        if f.days_since_login is not None:
            index = next(i for i, (_, low, high) in enumerate(BINS) if f.days_since_login <= high)
        bands[index][f.kind] += 1
    labels = [b[0] for b in BINS] + ["none"]
    width, height, left, bottom = 520, 220, 36, 36
    bar = (width - left - 10) / len(bands)
    top = max(sum(c.values()) for c in bands) or 1
    drawn = []
    for i, band in enumerate(bands):
        x = left + i * bar
        y = float(height - bottom)
        bars = []
        for kind in ORDER:
            count = band[kind]
            if not count:
                continue
            h = (height - bottom - 16) * count / top
            y -= h
            bars.append(
                {
                    "x": _n(x + 3),
                    "y": _n(y),
                    "width": _n(bar - 6),
                    "height": _n(h),
                    "colour": COLOURS[kind],
                    "kind": kind.value,
                    "count": count,
                }
            )
        drawn.append(
            {
                "bars": bars,
                "x": _n(x + bar / 2),
                "top": _n(y - 3),
                "total": sum(band.values()),
                "label": labels[i],
            }
        )
    # The threshold sits between the last band at or under it and the first above it.
    edge = next((i for i, b in enumerate(BINS) if b[1] > threshold), len(BINS))
    tx = left + edge * bar
    chart = {
        "width": width,
        "height": height,
        "left": left,
        "bands": drawn,
        "axis": height - bottom + 14,
        "base": height - bottom,
        "caption_y": height - 6,
        "threshold": threshold,
        "threshold_x": _n(tx),
        "threshold_label_x": _n(tx + 4),
    }
    return _chart("histogram", chart)


def roles_svg(findings: tuple[Finding, ...]) -> Markup:
    """Findings by role, as stacked horizontal bars."""
    by_role: dict[str, Counter[FindingKind]] = {}
    for f in findings:
        by_role.setdefault(f.account.role or "(no role)", Counter())[f.kind] += 1
    roles = sorted(by_role, key=lambda r: -sum(by_role[r].values()))[:12]
    width, row, left = 520, 22, 170
    top = max((sum(by_role[r].values()) for r in roles), default=1)
    rows = []
    for i, role in enumerate(roles):
        y = 8 + i * row
        x = float(left)
        bars = []
        for kind in ORDER:
            count = by_role[role][kind]
            if not count:
                continue
            w = (width - left - 40) * count / top
            bars.append(
                {
                    "x": _n(x),
                    "width": _n(w),
                    "colour": COLOURS[kind],
                    "kind": kind.value,
                    "count": count,
                }
            )
            x += w
        rows.append(
            {
                "role": role,
                "y": y,
                "text_y": y + 13,
                "bars": bars,
                "total": sum(by_role[role].values()),
                "total_x": _n(x + 4),
            }
        )
    chart = {
        "width": width,
        "height": 20 + row * max(1, len(roles)),
        "label_x": left - 6,
        "bar_height": row - 6,
        "rows": rows,
    }
    return _chart("roles", chart)


class Row(NamedTuple):
    """What one account's row of the table shows.

    A tuple with attributes, not a dictionary: the template engine looks a name up as an
    attribute first, and a dictionary's failed lookup (an exception per cell) made the
    table of a large tenant the slowest part of the page.
    """

    kind: str
    colour: str
    alert: bool
    user: str
    role: str
    auth_type: str
    status: str
    last_login: str
    days: str
    last_failed: str
    reason: str


def _row(f: Finding, threshold: int, now: datetime) -> Row:
    """What one account's row of the table shows."""
    recent_failure = f.last_failed_login is not None and now - f.last_failed_login < timedelta(
        days=threshold
    )
    return Row(
        kind=f.kind.value,
        colour=COLOURS[f.kind],
        alert=f.kind.removable and recent_failure,
        user=f.account.user_id,
        role=f.account.role,
        auth_type=f.account.auth_type,
        status=f.account.status.value,
        last_login=_day(f.last_login),
        days="" if f.days_since_login is None else str(f.days_since_login),
        last_failed=_day(f.last_failed_login),
        reason=f.reason,
    )


#: What each kind of unmatched identity may mean, for the reader of the page.
KIND_NOTES = {
    "display-name": "could be any account: map it or accept it",
    "email": "no such account (deleted?)",
    "id": "no such account: a deleted account or an API key",
    "ignored": "accepted as nobody's account",
}


def tenant_title(summary: RunSummary) -> str:
    """The tenant as people name it: its name, platform and region (or host)."""
    where = summary.region
    if where == "custom":
        where = urlsplit(summary.base_url).netloc or where
    place = f"{summary.platform} {where}"
    return f"{summary.tenant_name} ({place})" if summary.tenant_name else place


def render(summary: RunSummary) -> str:
    """The whole page."""
    counts = summary.counts()
    return _render(
        "audit_report.html",
        s=summary,
        title=f"Login audit: {tenant_title(summary)}",
        window=f"{_day(summary.window.start)} to {_day(summary.window.end)} UTC",
        kinds=[{"name": k.value, "colour": COLOURS[k], "count": counts[k.value]} for k in ORDER],
        histogram=histogram_svg(summary.findings, summary.policy.days),
        roles=roles_svg(summary.findings),
        rows=[_row(f, summary.policy.days, summary.finished_at) for f in summary.findings],
        kind_notes=KIND_NOTES,
    )


@dataclass(frozen=True)
class FleetEntry:
    """One tenant of a fleet run, as the combined page shows it."""

    name: str
    summary: RunSummary | None
    link: str | None
    exit_code: int
    error: str = ""


def render_fleet(entries: list[FleetEntry], finished: datetime) -> str:
    """The combined page of ``audit --all``: one row per tenant, linked to its own report."""
    rows = []
    for entry in entries:
        summary = entry.summary
        counts = summary.counts() if summary else None
        rows.append(
            {
                "name": entry.name,
                "link": entry.link,
                "where": tenant_title(summary) if summary else "",
                "state": "FAILED"
                if summary is None
                else ("complete" if summary.complete else "INCOMPLETE"),
                "remove": "" if summary is None else str(len(summary.to_remove)),
                "counts": None if counts is None else [counts[k.value] for k in ORDER],
                "error": entry.error,
                "exit_code": entry.exit_code,
            }
        )
    return _render(
        "fleet_report.html",
        title=f"Login audit: {len(entries)} tenants",
        total=sum(len(e.summary.to_remove) for e in entries if e.summary),
        finished=finished,
        kinds=[k.value for k in ORDER],
        rows=rows,
    )


class HtmlReport:
    """Writes ``audit_report.html``."""

    filename = HTML_FILENAME

    def write(self, summary: RunSummary, out_dir: Path, notes: WriteNotes) -> Path:
        """Write the page atomically (mode 0600)."""
        text = render(summary)

        def write(handle: IO[str]) -> None:
            handle.write(text)

        return write_atomic(out_dir / self.filename, write)
