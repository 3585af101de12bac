"""Where ``watch`` sends its signals: JSON Lines, OCSF Detection Findings, webhooks.

A sink delivers pending signals and confirms each one it has delivered; the watcher
records the confirmation in the archive, so a signal is marked sent only once it has
really arrived (a file written and fsynced, a webhook answered 2xx). Before delivering,
the watcher marks signals ``sending``; a signal still ``sending`` at the next run was
interrupted, and :meth:`Sink.already_delivered` tells which of those arrived anyway
(a file can be read back; a webhook cannot, so it is sent again with the same
``Idempotency-Key``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from login_audit import __version__
from login_audit.config import Secret, is_loopback_host, read_secret_file
from login_audit.errors import ConfigError
from login_audit.http import (
    RETRY_STATUSES,
    USER_AGENT,
    RetryPolicy,
    parse_retry_after,
    tls_context,
)
from login_audit.models import RunSummary, SignalKind
from login_audit.timeutil import format_z

log = logging.getLogger(__name__)

WEBHOOK_ENV = "LOGIN_AUDIT_WEBHOOK_URL"
WEBHOOK_STYLES = ("json", "slack", "teams")

Confirm = Callable[[Sequence[str]], None]

#: OCSF 1.1 Detection Finding (Findings category).
OCSF_FINDING_CLASS, OCSF_FINDINGS, OCSF_VERSION = 2004, 2, "1.1.0"
_SEVERITY = {
    "dormant-reactivated": (4, "High"),
    "failed-logon-burst": (3, "Medium"),
    "role-changed-to-admin": (4, "High"),
    "api-key-created": (3, "Medium"),
    "account-created": (2, "Low"),
}


def _title(kind: str) -> str:
    try:
        return SignalKind(kind).label
    except ValueError:
        return kind


class Sink(Protocol):
    """A destination of signals."""

    #: A stable name for the archive's delivery state; never contains a secret.
    name: str

    def already_delivered(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` (interrupted deliveries) did arrive."""
        ...

    def deliver(self, signals: Sequence[dict[str, Any]], confirm: Confirm) -> str | None:
        """Deliver ``signals``, confirming each as it arrives; return a problem or None."""
        ...


def _ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def ocsf_finding(signal: dict[str, Any]) -> dict[str, Any]:
    """An OCSF 1.1 Detection Finding (class 2004) for one signal."""
    kind = str(signal["kind"])
    severity, severity_name = _SEVERITY.get(kind, (3, "Medium"))
    when = _ms(str(signal["occurredAt"]))
    tenant = signal.get("tenant") or {}
    finding: dict[str, Any] = {
        "class_uid": OCSF_FINDING_CLASS,
        "class_name": "Detection Finding",
        "category_uid": OCSF_FINDINGS,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": OCSF_FINDING_CLASS * 100 + 1,
        "type_name": "Detection Finding: Create",
        "time": when,
        "severity_id": severity,
        "severity": severity_name,
        "status_id": 1,
        "status": "New",
        "message": signal["summary"],
        "finding_info": {
            "uid": signal["id"],
            "title": _title(kind),
            "desc": signal["summary"],
            "types": [kind],
            "first_seen_time": when,
            "last_seen_time": when,
        },
        "resources": [{"type": "User", "name": signal["subject"]}],
        "evidences": [{"data": signal.get("evidence") or {}}],
        "metadata": {
            "version": OCSF_VERSION,
            "uid": signal["id"],
            "product": {
                "name": "login-audit",
                "vendor_name": "login-audit",
                "version": __version__,
            },
        },
        "cloud": {"provider": "Trend Micro", "region": tenant.get("region", "")},
        "unmapped": {"tenant": tenant},
    }
    if signal.get("actor"):
        finding["actor"] = {"user": {"name": signal["actor"]}}
    return finding


class FileSink:
    """Appends one JSON line per signal (``jsonl``) or per OCSF finding (``ocsf``).

    The file is created mode 0600; an existing one is appended to (and made 0600) only
    when its end shows it is ours (see :func:`_is_signal_file`). A line cut short by a
    crash is removed before the next append, and signals whose delivery was interrupted
    are looked up in the file, so each signal is in it exactly once. ``-`` writes to
    standard output (at least once).
    """

    def __init__(self, path: str, fmt: str = "jsonl") -> None:
        self.fmt = fmt
        self.stdout = path == "-"
        self.path = Path(path).expanduser().resolve() if not self.stdout else Path("-")
        self.name = f"{fmt}:{self.path}"
        if self.stdout:
            return
        if Path(path).expanduser().is_symlink():
            from login_audit.reports.atomic import LINK_REFUSED

            raise ConfigError(f"cannot write {path}: {LINK_REFUSED}")
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"cannot write {self.path}: the directory {self.path.parent} does not exist"
            )
        if self.path.exists() and not self.path.is_file():
            raise ConfigError(f"cannot write {self.path}: it is not a regular file")
        writable = self.path if self.path.exists() else self.path.parent
        if not os.access(writable, os.W_OK) or (
            self.path.exists() and not os.access(self.path, os.R_OK)
        ):
            raise ConfigError(f"cannot write {self.path}: permission denied")
        if self.path.exists():  # refused now, before any network work, and again at writing
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
            try:
                self._refuse_foreign(fd)
            finally:
                os.close(fd)

    def _refuse_foreign(self, fd: int) -> None:
        """Raise :class:`ConfigError` unless ``fd`` is a signal file of ours (or empty)."""
        if not _is_signal_file(fd):
            option = "--ocsf" if self.fmt == "ocsf" else "--jsonl"
            raise ConfigError(
                f"{self.path} is not a signal file written by login-audit (its last line is "
                f"not a JSON object); give a new file name with {option}"
            )

    def __repr__(self) -> str:
        return f"FileSink({self.name!r})"

    def line(self, signal: dict[str, Any]) -> str:
        """The line written for ``signal``."""
        body = ocsf_finding(signal) if self.fmt == "ocsf" else signal
        return json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n"

    def _id_of(self, line: str) -> str | None:
        try:
            body = json.loads(line)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        if self.fmt == "ocsf":
            info = body.get("finding_info")
            return str(info.get("uid")) if isinstance(info, dict) else None
        value = body.get("id")
        return str(value) if value is not None else None

    def already_delivered(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the file already holds (read back in full, once per crash)."""
        if self.stdout or not self.path.exists():
            return set()
        wanted, found = set(ids), set()
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.endswith("\n"):
                    found_id = self._id_of(line)
                    if found_id in wanted:
                        found.add(found_id)
        return found

    def deliver(self, signals: Sequence[dict[str, Any]], confirm: Confirm) -> str | None:
        """Append every signal, fsync, then confirm them all."""
        if not signals:
            return None
        text = "".join(self.line(s) for s in signals)
        ids = [str(s["id"]) for s in signals]
        if self.stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
            confirm(ids)
            return None
        from login_audit.reports.atomic import open_failure, open_private_append

        try:
            fd, _ = open_private_append(self.path, os.O_RDWR, self._refuse_foreign, tighten=True)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {open_failure(exc)}") from None
        try:
            _drop_partial_line(fd)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        except OSError as exc:
            return f"cannot write {self.path}: {exc.strerror}"
        finally:
            os.close(fd)
        confirm(ids)
        return None


#: How much of the end of a signal file is read to tell whether it is ours.
_TAIL = 1 << 16


def _is_signal_file(fd: int) -> bool:
    """Empty, or text whose last whole line is a JSON object, as each line of ours is.

    A line cut short after it (a crash while writing) must begin like ours, with ``{``.
    Only the first 4 KiB (for binary data) and the last 64 KiB are read.
    """
    from login_audit.reports.atomic import looks_binary

    size = os.fstat(fd).st_size
    if size == 0:
        return True
    if looks_binary(fd):
        return False
    tail = os.pread(fd, min(size, _TAIL), max(0, size - _TAIL))
    whole, newline, cut = tail.rpartition(b"\n")
    if not newline or (cut and not cut.startswith(b"{")):
        return False
    if size > len(tail) and b"\n" not in whole:
        return False  # the last whole line began before the tail: longer than any of ours
    try:
        body = json.loads(whole.rpartition(b"\n")[2])
    except ValueError:
        return False
    return isinstance(body, dict)


def _drop_partial_line(fd: int) -> None:
    """Cut a last line that a crash left without its newline (it is written again)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    tail = os.pread(fd, min(size, _TAIL), max(0, size - _TAIL))
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    if cut < 0 and size > len(tail):
        return  # a line longer than 64 KiB: not ours, leave it alone
    os.ftruncate(fd, size - len(tail) + cut + 1)


def load_webhook_url(path: str | None, environ: dict[str, str] | None = None) -> Secret | None:
    """The webhook URL from the file ``path``, else ``$LOGIN_AUDIT_WEBHOOK_URL``, validated.

    Webhook URLs carry their token in the path: they are read like tokens, never taken
    from the command line, and never shown.
    """
    env = os.environ if environ is None else environ
    if path:
        value = read_secret_file(Path(path).expanduser(), "webhook file", ConfigError).strip()
        source = f"the webhook file {path}"
    else:
        value = env.get(WEBHOOK_ENV, "").strip()
        if not value:
            return None
        source = f"${WEBHOOK_ENV}"
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ConfigError(
            f"{source} does not hold one http(s) URL; put the webhook URL alone in it"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing the plain http:// webhook of {source}: use https:// (plain http is "
            "allowed only for loopback hosts)"
        )
    return Secret(value)


def _escape_slack(text: str) -> str:
    # Slack reads <...> as links and mentions: a name in the data must stay plain text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(signal: dict[str, Any]) -> str:
    tenant = signal.get("tenant") or {}
    where = f"[{tenant.get('name', '')}] " if tenant else ""
    title = _title(str(signal["kind"]))
    return f"{where}{title}: {signal['summary']} ({signal['occurredAt'][:19]}Z)"


def chat_message(
    heading: str, lines: Sequence[str], style: str, shown: int = 50
) -> dict[str, Any] | None:
    """A Slack or Teams message of a heading and lines; None for other styles.

    Chat messages have size limits: past ``shown`` lines the rest is counted, not listed.
    """
    if len(lines) > shown:
        lines = [*lines[:shown], f"and {len(lines) - shown} more"]
    if style == "slack":
        text = [f"*{_escape_slack(heading)}*", *(f"• {_escape_slack(line)}" for line in lines)]
        return {"text": "\n".join(text)}
    if style == "teams":
        blocks: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True}
        ]
        blocks += [{"type": "TextBlock", "text": line, "wrap": True} for line in lines]
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": blocks,
        }
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ],
        }
    return None


def webhook_body(signals: Sequence[dict[str, Any]], style: str) -> dict[str, Any]:
    """The JSON body of one webhook request for ``signals`` (one, or a digest)."""
    count = len(signals)
    heading = f"login-audit: {count} new takeover signal{'s' if count != 1 else ''}"
    message = chat_message(heading, [_line(s) for s in signals], style)
    if message is not None:
        return message
    if count == 1:
        return {"source": "login-audit", "signal": signals[0]}
    return {"source": "login-audit", "signals": list(signals)}


def audit_body(
    summary: RunSummary, tenant: str, new_stale: Sequence[str], style: str
) -> dict[str, Any]:
    """The webhook body telling an audit's owners what became stale since the last audit."""
    where = f"{tenant} ({summary.platform} {summary.region})"
    heading = f"login-audit: {len(new_stale)} newly stale accounts on {where}"
    lines = [f"{len(summary.to_remove)} accounts to remove in all"]
    if not summary.complete:
        lines += [f"INCOMPLETE: {problem}" for problem in summary.problems]
    lines += [f"{user}: no successful logon in {summary.policy.days} days" for user in new_stale]
    message = chat_message(heading, lines, style)
    if message is not None:
        return message
    return {
        "source": "login-audit",
        "audit": {
            "tenant": tenant,
            "platform": summary.platform,
            "region": summary.region,
            "finishedAt": format_z(summary.finished_at),
            "days": summary.policy.days,
            "complete": summary.complete,
            "counts": summary.counts(),
            "toRemove": len(summary.to_remove),
            "newlyStale": list(new_stale),
            "problems": list(summary.problems),
        },
    }


def notify_audit(
    webhook: WebhookSink, summary: RunSummary, tenant: str, previous: Sequence[str] | None
) -> str | None:
    """Tell an audit's owners which accounts became stale since ``previous`` (the last
    audit's removal list; None when there was none), and whether the run was incomplete.

    Nothing is posted when nothing new is stale and the run is complete. Returns the
    problem when the webhook did not accept the message.
    """
    before = {user.lower() for user in previous or ()}
    new_stale = [
        f.account.user_id for f in summary.to_remove if f.account.user_id.lower() not in before
    ]
    if not new_stale and summary.complete:
        return None
    body = audit_body(summary, tenant, new_stale, webhook.style)
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    problem = webhook.post(body, key)
    return f"{webhook.label}: {problem}" if problem else None


class WebhookSink:
    """POSTs each signal (or one digest of all) as JSON; retried like every API request.

    Retries 408, 429, 5xx and network errors, honouring ``Retry-After``, else capped
    exponential backoff with jitter (the project's :class:`~login_audit.http.RetryPolicy`).
    A signal is confirmed only after a 2xx. The URL is never logged or shown: messages
    name the webhook by a short hash of it.
    """

    def __init__(
        self,
        url: Secret,
        *,
        style: str = "json",
        digest: bool = False,
        policy: RetryPolicy | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        rng: random.Random | None = None,
    ) -> None:
        if style not in WEBHOOK_STYLES:
            raise ConfigError(f"unknown webhook format {style!r}: use json, slack or teams")
        self._url = url
        self.style = style
        self.digest = digest
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.label = "webhook " + hashlib.sha256(url.reveal().encode()).hexdigest()[:12]
        self.name = self.label.replace(" ", ":")
        self.requests = 0
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            follow_redirects=False,
            transport=transport,
            verify=tls_context(),
        )

    def __repr__(self) -> str:
        return f"WebhookSink({self.label!r}, style={self.style!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def already_delivered(self, ids: Sequence[str]) -> set[str]:
        """A receiver cannot be asked: interrupted signals are sent again."""
        return set()

    def deliver(self, signals: Sequence[dict[str, Any]], confirm: Confirm) -> str | None:
        """Post the signals in order; stop at the first that cannot be delivered."""
        groups = [list(signals)] if self.digest and signals else [[s] for s in signals]
        for group in groups:
            ids = [str(s["id"]) for s in group]
            key = ids[0] if len(ids) == 1 else hashlib.sha256(",".join(ids).encode()).hexdigest()
            problem = self.post(webhook_body(group, self.style), key)
            if problem is not None:
                return f"{self.label}: {problem}; {len(signals)} signals kept for the next run"
            confirm(ids)
        return None

    def post(self, body: dict[str, Any], key: str) -> str | None:
        """POST ``body`` with retries; None once a 2xx came back, else the problem."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        problem = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            retry_after: float | None = None
            self.requests += 1
            try:
                response = self._client.post(
                    self._url.reveal(), content=payload, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError as exc:
                # The exception's text may quote the URL: only its type is kept.
                problem = type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return None
                problem = f"HTTP {status}"
                if status not in RETRY_STATUSES:
                    return f"the receiver refused the signal ({problem})"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            if attempt == self.policy.max_attempts:
                break
            delay = self.policy.delay(attempt, retry_after, self._rng)
            log.info("%s: %s; retrying in %.1fs", self.label, problem, delay)
            self._sleep(delay)
        return f"not delivered after {self.policy.max_attempts} attempts ({problem})"
