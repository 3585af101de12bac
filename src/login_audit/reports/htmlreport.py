"""``audit_report.html``: one self-contained page for people and auditors.

No network and no external assets: inline CSS, inline SVG charts drawn here in Python,
and a few lines of inline JavaScript for sorting and filtering the table (the page reads
fine without them and prints well on paper). Every value is escaped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from login_audit.models import Finding, FindingKind, RunSummary
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import write_atomic

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

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;margin:0 0 12px}.incomplete{background:#fdecea;border:1px solid #c0392b;
padding:8px 12px;margin:12px 0}.cards{display:flex;gap:10px;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:90px}
.card b{display:block;font-size:22px}.charts{display:flex;gap:24px;flex-wrap:wrap}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #e5e5e5;
padding:4px 6px;text-align:left;vertical-align:top}th{background:#f5f5f5;cursor:pointer;
user-select:none}tr.alert td{background:#fff4e5}td.kind{font-weight:600}
.filters{margin:8px 0;display:flex;gap:8px}.filters input{flex:1;padding:4px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
@media print{.filters{display:none}body{margin:0}th{cursor:auto}tr{break-inside:avoid}
a{color:inherit;text-decoration:none}}
"""

SCRIPT = """
(function(){
  var table=document.getElementById('accounts');
  var body=table.tBodies[0];
  var rows=Array.prototype.slice.call(body.rows);
  var text=document.getElementById('filter-text');
  var kind=document.getElementById('filter-kind');
  function apply(){
    var t=text.value.toLowerCase(), k=kind.value, shown=0;
    rows.forEach(function(r){
      var ok=(!k||r.dataset.kind===k)&&(!t||r.textContent.toLowerCase().indexOf(t)>=0);
      r.style.display=ok?'':'none'; if(ok){shown++;}
    });
    document.getElementById('shown').textContent=shown;
  }
  text.addEventListener('input',apply); kind.addEventListener('change',apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    th.addEventListener('click',function(){
      var asc=th.dataset.dir!=='asc'; th.dataset.dir=asc?'asc':'desc';
      var numeric=th.dataset.type==='num';
      rows.sort(function(a,b){
        var x=a.cells[i].dataset.v||a.cells[i].textContent;
        var y=b.cells[i].dataset.v||b.cells[i].textContent;
        if(numeric){x=parseFloat(x);y=parseFloat(y);x=isNaN(x)?1e9:x;y=isNaN(y)?1e9:y;}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  apply();
  document.body.setAttribute('data-ready','1');
})();
"""

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
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def histogram_svg(findings: tuple[Finding, ...], threshold: int) -> str:
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
    parts = [
        f'<svg class="chart" id="histogram" width="{width}" height="{height}" '
        f'role="img" aria-label="Accounts by days since last successful logon">'
    ]
    for i, band in enumerate(bands):
        x = left + i * bar
        y = float(height - bottom)
        for kind in ORDER:
            count = band[kind]
            if not count:
                continue
            h = (height - bottom - 16) * count / top
            y -= h
            parts.append(
                f'<rect x="{x + 3:.1f}" y="{y:.1f}" width="{bar - 6:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[kind]}" data-kind="{kind.value}"><title>{escape(labels[i])} '
                f"days: {count} {kind.value}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" font-size="11" '
            f'text-anchor="middle">{sum(band.values())}</text>'
        )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" font-size="11" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    # The threshold sits between the last band at or under it and the first above it.
    edge = next((i for i, b in enumerate(BINS) if b[1] > threshold), len(BINS))
    tx = left + edge * bar
    parts.append(
        f'<line x1="{tx:.1f}" y1="8" x2="{tx:.1f}" y2="{height - bottom}" '
        'stroke="#222" stroke-dasharray="4 3"/>'
    )
    parts.append(f'<text x="{tx + 4:.1f}" y="18" font-size="11">threshold {threshold} days</text>')
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="11">days since the last '
        "successful logon</text></svg>"
    )
    return "".join(parts)


def roles_svg(findings: tuple[Finding, ...]) -> str:
    """Findings by role, as stacked horizontal bars."""
    by_role: dict[str, Counter[FindingKind]] = {}
    for f in findings:
        by_role.setdefault(f.account.role or "(no role)", Counter())[f.kind] += 1
    roles = sorted(by_role, key=lambda r: -sum(by_role[r].values()))[:12]
    width, row, left = 520, 22, 170
    height = 20 + row * max(1, len(roles))
    top = max((sum(by_role[r].values()) for r in roles), default=1)
    parts = [
        f'<svg class="chart" id="roles" width="{width}" height="{height}" role="img" '
        'aria-label="Findings by role">'
    ]
    for i, role in enumerate(roles):
        y = 8 + i * row
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" font-size="11" text-anchor="end">'
            f"{escape(role[:28])}</text>"
        )
        x = float(left)
        for kind in ORDER:
            count = by_role[role][kind]
            if not count:
                continue
            w = (width - left - 40) * count / top
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{COLOURS[kind]}"><title>{escape(role)}: {kind.value} '
                f"{count}</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{sum(by_role[role].values())}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _row(f: Finding, threshold: int, now: datetime) -> str:
    recent_failure = f.last_failed_login is not None and now - f.last_failed_login < timedelta(
        days=threshold
    )
    alert = f.kind.removable and recent_failure
    days = "" if f.days_since_login is None else str(f.days_since_login)
    cells = [
        f'<td class="kind" style="color:{COLOURS[f.kind]}">{escape(f.kind.value)}</td>',
        f"<td>{escape(f.account.user_id)}</td>",
        f"<td>{escape(f.account.role)}</td>",
        f"<td>{escape(f.account.auth_type)} / {escape(f.account.status.value)}</td>",
        f'<td data-v="{escape(_day(f.last_login))}">{escape(_day(f.last_login))}</td>',
        f'<td data-v="{escape(days or "")}">{escape(days)}</td>',
        f"<td>{escape(_day(f.last_failed_login))}" + (" &#9888;" if alert else "") + "</td>",
        f"<td>{escape(f.reason)}</td>",
    ]
    css = ' class="alert"' if alert else ""
    return f'<tr data-kind="{escape(f.kind.value)}"{css}>' + "".join(cells) + "</tr>"


def keys_section(summary: RunSummary) -> str:
    """The API keys that are stale, expired or never used (when they were audited)."""
    if summary.api_keys is None:
        return ""
    flagged = [f for f in summary.api_keys if f.flagged]
    rows = "".join(
        f"<tr><td>{escape(f.kind)}</td><td>{escape(f.key.name)}</td><td>{escape(f.key.id)}</td>"
        f"<td>{escape(_day(f.key.last_used))}</td><td>{escape(_day(f.key.expires))}</td>"
        f"<td>{escape(f.reason)}</td></tr>"
        for f in flagged
    )
    return (
        f"<h2>API keys: {len(flagged)} of {len(summary.api_keys)} stale, expired or never used"
        '</h2><table id="api-keys"><thead><tr><th>Finding</th><th>Name</th><th>Id</th>'
        f"<th>Last used</th><th>Expires</th><th>Reason</th></tr></thead><tbody>{rows}"
        "</tbody></table>"
    )


def signals_section(summary: RunSummary) -> str:
    """Takeover signals of the period, when ``watch`` runs on the tenant."""
    if summary.signals is None:
        return ""
    rows = "".join(
        f'<tr class="alert"><td>{escape(_day(s.occurred_at))}</td>'
        f"<td>{escape(s.kind.label)}</td>"
        f"<td>{escape(s.subject)}</td><td>{escape(s.summary)}</td></tr>"
        for s in summary.signals
    )
    return (
        f"<h2>Takeover signals in the last {summary.policy.days} days: "
        f"{len(summary.signals)}</h2>"
        '<table id="signals"><thead><tr><th>Time</th><th>Signal</th><th>Subject</th>'
        f"<th>What happened</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="meta">Found by <code>login-audit watch</code> in the archive.</p>'
    )


_KIND_NOTE = {
    "display-name": "could be any account: map it or accept it",
    "email": "no such account (deleted?)",
    "id": "no such account: a deleted account or an API key",
    "ignored": "accepted as nobody's account",
}


def unmatched_section(summary: RunSummary) -> str:
    """The identities of the log that match no account, with their last logons."""
    if not summary.unmatched:
        return ""
    rows = "".join(
        f"<tr><td>{escape(u.identity)}</td><td>{escape(u.kind)}</td>"
        f"<td>{escape(_day(u.last_success))}</td><td>{escape(_day(u.last_failed))}</td>"
        f"<td>{escape(_KIND_NOTE.get(u.kind, ''))}</td></tr>"
        for u in summary.unmatched
    )
    return (
        f"<h2>Identities of the log that match no account: {len(summary.unmatched)}</h2>"
        '<table id="unmatched"><thead><tr><th>Identity</th><th>Looks like</th>'
        "<th>Last logon</th><th>Last failed logon</th><th>Meaning</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def tenant_title(summary: RunSummary) -> str:
    """The tenant as people name it: its name, platform and region (or host)."""
    where = summary.region
    if where == "custom":
        where = urlsplit(summary.base_url).netloc or where
    place = f"{summary.platform} {where}"
    return f"{summary.tenant_name} ({place})" if summary.tenant_name else place


def policy_line(summary: RunSummary) -> str:
    """The policy the findings follow, and how many accounts it puts on the removal list."""
    policy = summary.policy

    def listed(values: tuple[str, ...]) -> str:
        return ", ".join(escape(v) for v in values) or "none"

    return (
        f'<p class="meta" id="policy"><b>{len(summary.to_remove)} to remove</b> &middot; '
        f"threshold {policy.days} days &middot; grace for new accounts {policy.grace_days} "
        f"days &middot; disabled accounts "
        f"{'audited' if policy.include_disabled else 'excluded'} &middot; excluded patterns: "
        f"{listed(policy.exclude_patterns)} &middot; excluded roles: "
        f"{listed(policy.exclude_roles)}</p>"
    )


def render(summary: RunSummary) -> str:
    """The whole page."""
    counts = summary.counts()
    window = f"{_day(summary.window.start)} to {_day(summary.window.end)} UTC"
    cards = "".join(
        f'<div class="card" style="border-color:{COLOURS[k]}"><b>{counts[k.value]}</b>'
        f"{escape(k.value)}</div>"
        for k in ORDER
    )
    problems = "".join(f"<li>{escape(p)}</li>" for p in summary.problems)
    incomplete = (
        f'<div class="incomplete"><b>Incomplete:</b> accounts whose data could not be read '
        f"are 'unknown' and are not on the removal list.<ul>{problems}</ul></div>"
        if not summary.complete
        else ""
    )
    warnings = (
        '<div class="incomplete"><b>Check:</b><ul>'
        + "".join(f"<li>{escape(w)}</li>" for w in summary.warnings)
        + "</ul></div>"
        if summary.warnings
        else ""
    )
    legend = "".join(
        f'<span style="background:{COLOURS[k]}"></span>{escape(k.value)}' for k in ORDER
    )
    options = "".join(
        f'<option value="{escape(k.value)}">{escape(k.value)}</option>' for k in ORDER
    )
    rows = "".join(_row(f, summary.policy.days, summary.finished_at) for f in summary.findings)
    title = f"Login audit: {tenant_title(summary)}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">{escape(summary.base_url)} &middot; logons {escape(window)} &middot; '
        f"{'complete' if summary.complete else 'INCOMPLETE'} &middot; "
        f"{summary.requests} requests &middot; login-audit {escape(summary.tool_version)}</p>"
        f"{policy_line(summary)}"
        f'{incomplete}{warnings}<div class="cards">{cards}</div>'
        f'<div class="charts"><div><h2>Days since the last successful logon</h2>'
        f"{histogram_svg(summary.findings, summary.policy.days)}</div>"
        f"<div><h2>Findings by role</h2>{roles_svg(summary.findings)}"
        f'<p class="legend">{legend}</p></div></div>'
        f'<h2>Accounts (<span id="shown">{len(summary.findings)}</span> shown)</h2>'
        '<div class="filters"><input id="filter-text" type="search" '
        'placeholder="Filter by user, role, reason..." aria-label="Filter">'
        f'<select id="filter-kind" aria-label="Finding"><option value="">all findings</option>'
        f"{options}</select></div>"
        '<table id="accounts"><thead><tr><th>Finding</th><th>User</th><th>Role</th>'
        '<th>Type / status</th><th>Last logon</th><th data-type="num">Days</th>'
        "<th>Last failed logon</th><th>Reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        '<p class="meta">&#9888; marks accounts to remove that saw failed logons within the '
        "threshold: someone may be trying to get in.</p>"
        f"{signals_section(summary)}{unmatched_section(summary)}{keys_section(summary)}"
        f"<script>{SCRIPT}</script></body></html>\n"
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
    head = "".join(f"<th>{escape(k.value)}</th>" for k in ORDER)
    rows = []
    for entry in entries:
        name = escape(entry.name)
        if entry.link:
            name = f'<a href="{escape(entry.link)}">{name}</a>'
        summary = entry.summary
        if summary is None:
            state, cells, remove = (
                "FAILED",
                f'<td colspan="{len(ORDER)}">{escape(entry.error)}</td>',
                "",
            )
        else:
            state = "complete" if summary.complete else "INCOMPLETE"
            counts = summary.counts()
            cells = "".join(f"<td>{counts[k.value]}</td>" for k in ORDER)
            remove = str(len(summary.to_remove))
        where = escape(tenant_title(summary)) if summary else ""
        rows.append(
            f"<tr><td>{name}</td><td>{where}</td><td>{state}</td><td>{remove}</td>{cells}"
            f"<td>{entry.exit_code}</td></tr>"
        )
    total = sum(len(e.summary.to_remove) for e in entries if e.summary)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Login audit: {len(entries)} tenants</title><style>{CSS}</style></head><body>"
        f"<h1>Login audit: {len(entries)} tenants</h1>"
        f'<p class="meta">{total} accounts to remove in all &middot; finished '
        f"{escape(_day(finished))} UTC</p>"
        '<table id="tenants"><thead><tr><th>Tenant</th><th>Platform and region</th>'
        f"<th>State</th><th>To remove</th>{head}<th>Exit</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
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
