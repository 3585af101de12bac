"""A loopback HTTP server that behaves like Trend Vision One's v3.0 API.

It follows the documented shapes (``items``/``nextLink`` paging with an opaque
``skipToken``, ``top`` of 50/100/200, the ``TMV1-Filter`` language, 180-day retention,
error bodies, a per-window rate limit answered with 429) and can inject faults at a
seeded rate. Tests and benchmarks run the real client against it; nothing leaves the
machine.
"""

from __future__ import annotations

import base64
import bisect
import email.utils
import hashlib
import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from login_audit.simulator.behaviours import (
    BEHAVIOURS,
    apply_to_cloudone,
    apply_to_tenant,
    unsort,
)
from login_audit.simulator.cloudone import RETENTION_DAYS as C1_RETENTION_DAYS
from login_audit.simulator.cloudone import CloudOneTenant
from login_audit.simulator.filters import FilterSyntaxError, parse_filter
from login_audit.simulator.tenant import RETENTION_DAYS, Tenant

PERM_AUDIT = "audit"
PERM_ACCOUNTS = "accounts"
PERM_ACCOUNTS_WRITE = "accounts-write"
ALL_PERMISSIONS = frozenset({PERM_AUDIT, PERM_ACCOUNTS, PERM_ACCOUNTS_WRITE})

#: Faults injected by default when a fault rate is set.
DEFAULT_FAULTS = (
    "429",
    "429-date",
    "429-bare",
    "500",
    "502",
    "503",
    "504",
    "drop",
    "truncate",
    "badjson",
)
#: Refusals of a change (``PATCH``, ``DELETE``): on a read no client could recover from them.
CHANGE_FAULTS = ("404", "409", "lost-reply")
#: Every fault the simulator knows, including the ones a test must ask for by name.
ALL_FAULTS = (
    *DEFAULT_FAULTS,
    "noitems",
    "nullitems",
    "repeat-link",
    "foreign-link",
    "slow",
    "notjson",
    "echo-token",
    "echo-link",
    "shift-accounts",
    *CHANGE_FAULTS,
)

AUDIT_FIELDS = ("loggedUser", "loggedRole", "accessType", "category", "activity", "result")
ACCOUNT_FIELDS = ("id", "email", "authType", "status")
PAGE_SIZES = (50, 100, 200)
_USER_TERM = re.compile(r"\(\s*loggedUser\s+eq\s+'((?:[^']|'')*)'\s*\)", re.IGNORECASE)
_STRICT_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class FaultConfig:
    """Which faults to inject and how often (``rate`` of requests, seeded)."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = DEFAULT_FAULTS
    outages: tuple[str, ...] = ()
    #: Only requests whose path starts with one of these get random faults (all if empty).
    paths: tuple[str, ...] = ()
    #: Seconds a "slow" answer waits before it is sent (beyond a client's read timeout).
    slow_seconds: float = 2.0
    #: At most this many random faults in all (None: no limit).
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")


@dataclass
class SimStats:
    """What the simulator served, for tests and benchmarks."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a traceback when a client goes away."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (killed processes, abandoned retries)."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Simulator:
    """Serves one :class:`Tenant` on ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        cloudone: CloudOneTenant | None = None,
        token: str | None = None,
        tokens: dict[str, frozenset[str]] | None = None,
        faults: FaultConfig | None = None,
        rate_limit: int = 500,
        rate_window: float = 60.0,
        time_scale: float = 1.0,
        latency_ms: float = 0.0,
        c1_max_limit: int = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        host: str = "127.0.0.1",
        port: int = 0,
        behaviours: tuple[str, ...] | frozenset[str] = (),
    ) -> None:
        unknown = set(behaviours) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours: {sorted(unknown)}")
        self.behaviours = frozenset(behaviours)
        self.tenant = apply_to_tenant(tenant, self.behaviours)
        self.cloudone = apply_to_cloudone(cloudone, self.behaviours) if cloudone else None
        self.token = token or secrets.token_urlsafe(24)
        self.tokens = dict(tokens or {})
        self.tokens.setdefault(self.token, ALL_PERMISSIONS)
        self.faults = faults or FaultConfig()
        self.rate_limit = rate_limit
        self.window_seconds = rate_window * time_scale
        self.time_scale = time_scale
        self.latency = latency_ms / 1000.0
        self.c1_max_limit = c1_max_limit
        self.clock = clock
        self.stats = SimStats()
        self.accounts = [a.to_json() for a in tenant.accounts]
        self.changes: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._window_index = -1
        self._window_count = 0
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        #: Filtered account lists by filter, dropped whenever the simulator changes an
        #: account: a tenant of 50,000 accounts read as parallel partitions would otherwise
        #: be filtered whole again for every page (the simulator's time, not the client's).
        #: The unfiltered list is never cached, so tests may edit ``accounts`` in place.
        self._account_rows: dict[str, list[Any]] = {}
        self._user_index: dict[str, list[int]] | None = None
        self._server = _QuietServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def __repr__(self) -> str:
        return f"Simulator(base_url={self.base_url!r})"

    def start(self) -> Simulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="login-audit-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_records(self, items: list[tuple[datetime, dict[str, Any]]]) -> None:
        """Log new records (as the vendor would while we are not looking)."""
        with self._lock:
            for when, item in items:
                index = bisect.bisect_right(self.tenant.times, when)
                self.tenant.times.insert(index, when)
                self.tenant.records.insert(index, item)
            self._cache.clear()
            self._user_index = None

    def add_account(self, account: dict[str, Any]) -> None:
        """Create an account in the tenant."""
        with self._lock:
            self.accounts.append(account)
            self._account_rows.clear()

    # -- policy: rate limit and faults ------------------------------------------------

    def _count_and_limit(self, path: str) -> float | None:
        """Count the request; return seconds until the window resets if over the limit."""
        now = time.monotonic()
        with self._lock:
            self.stats.requests += 1
            self.stats.by_path[path] += 1
            index = math.floor(now / self.window_seconds)
            if index != self._window_index:
                self._window_index, self._window_count = index, 0
            self._window_count += 1
            if self._window_count > self.rate_limit:
                self.stats.rate_limited += 1
                return (index + 1) * self.window_seconds - now
        return None

    def _pick_fault(self, path: str) -> str | None:
        with self._lock:
            if any(path.startswith(prefix) for prefix in self.faults.outages):
                self.stats.faults["outage"] += 1
                return "outage"
            targeted = not self.faults.paths or any(
                path.startswith(prefix) for prefix in self.faults.paths
            )
            spent = sum(n for k, n in self.stats.faults.items() if k != "outage")
            if self.faults.limit is not None and spent >= self.faults.limit:
                return None
            if targeted and self.faults.rate and self._rng.random() < self.faults.rate:
                kind = self._rng.choice(self.faults.kinds)
                self.stats.faults[kind] += 1
                return kind
        return None

    # -- endpoints ----------------------------------------------------------------------

    def _page(
        self,
        rows: list[Any],
        query: dict[str, str],
        key: str,
        path: str,
    ) -> dict[str, Any]:
        top_text = query.get("top", "50")
        if not top_text.isdigit() or int(top_text) not in PAGE_SIZES:
            raise _HttpError(400, "BadRequest", "top must be one of 50, 100, 200")
        top = int(top_text)
        offset = 0
        if "skipToken" in query:
            try:
                state = json.loads(base64.urlsafe_b64decode(query["skipToken"].encode()))
                offset, token_key = int(state["o"]), str(state["k"])
            except (ValueError, KeyError, TypeError):  # includes bad base64
                raise _HttpError(400, "BadRequest", "skipToken is not valid") from None
            if token_key != key:
                raise _HttpError(
                    400, "BadRequest", "skipToken does not match the query or TMV1-Filter"
                )
        body: dict[str, Any] = {"items": rows[offset : offset + top]}
        if not body["items"] and "null-items" in self.behaviours:
            body["items"] = None  # how some vendors answer an empty result
        if offset + top < len(rows):
            token = base64.urlsafe_b64encode(
                json.dumps({"o": offset + top, "k": key}).encode()
            ).decode()
            params = {k: v for k, v in query.items() if k != "skipToken"}
            params["skipToken"] = token
            body["nextLink"] = f"{self.base_url}{path}?{urlencode(params)}"
        return body

    def _parse_time(self, query: dict[str, str], name: str, default: datetime) -> datetime:
        if name not in query:
            return default
        try:
            return datetime.strptime(query[name], _STRICT_TIME).replace(tzinfo=timezone.utc)
        except ValueError:
            raise _HttpError(400, "BadRequest", f"{name} must be YYYY-MM-DDTHH:MM:SSZ") from None

    def audit_logs(self, query: dict[str, str], filter_text: str) -> dict[str, Any]:
        """``GET /v3.0/audit/logs``."""
        now = self.clock()
        oldest = now - timedelta(days=RETENTION_DAYS)
        end = self._parse_time(query, "endDateTime", now)
        asked_start = self._parse_time(query, "startDateTime", oldest)
        if "reject-old-start" in self.behaviours and asked_start < oldest:
            raise _HttpError(
                400, "BadRequest", f"startDateTime must be within the last {RETENTION_DAYS} days"
            )
        start = max(asked_start, oldest)  # older records are not served
        order = query.get("orderBy", "loggedDateTime desc").strip().lower()
        if order not in ("loggedDateTime desc".lower(), "loggedDateTime asc".lower()):
            raise _HttpError(400, "BadRequest", "orderBy must be 'loggedDateTime asc|desc'")
        try:
            predicate = parse_filter(filter_text, AUDIT_FIELDS)
        except FilterSyntaxError as exc:
            raise _HttpError(400, "BadRequest", f"invalid TMV1-Filter: {exc}") from None
        key = hashlib.sha256(
            json.dumps([filter_text, asked_start.isoformat(), end.isoformat(), order]).encode()
        ).hexdigest()[:24]
        with self._lock:
            indices = self._cache.get(key)
        if indices is None:
            times = self.tenant.times
            lo = bisect.bisect_left(times, start)
            hi = bisect.bisect_left(times, end)
            records = self.tenant.records
            user = _USER_TERM.search(filter_text) if " or " not in filter_text else None
            if user:
                # Per-user queries (the old scripts' way) would scan every record each time.
                wanted = user.group(1).replace("''", "'").lower()
                candidates = [i for i in self._by_user().get(wanted, []) if lo <= i < hi]
            else:
                candidates = list(range(lo, hi))
            indices = [i for i in candidates if predicate(records[i])]
            if order.endswith("desc"):
                indices.reverse()
            if "unsorted-pages" in self.behaviours:
                indices = unsort(indices)
            with self._lock:
                self._cache[key] = indices
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        page = self._page(indices, query, key, "/v3.0/audit/logs")
        if page["items"] is not None:
            page["items"] = [self.tenant.records[i] for i in page["items"]]
        return page

    def _by_user(self) -> dict[str, list[int]]:
        """Record indices per lower-case ``loggedUser`` (rebuilt when records change)."""
        with self._lock:
            if self._user_index is None:
                index: dict[str, list[int]] = {}
                for i, item in enumerate(self.tenant.records):
                    index.setdefault(str(item.get("loggedUser", "")).lower(), []).append(i)
                self._user_index = index
            return self._user_index

    def change_account(self, method: str, account_id: str, payload: bytes) -> tuple[int, Any]:
        """``PATCH`` (``{"status": "disabled"}``) or ``DELETE`` one IAM account."""
        with self._lock:
            index = next((i for i, a in enumerate(self.accounts) if a["id"] == account_id), None)
            if index is None:
                raise _HttpError(404, "NotFound", "The account does not exist.")
            self._account_rows.clear()
            if method == "DELETE":
                del self.accounts[index]
                self.changes.append(("delete", account_id))
                return 204, None
            try:
                body = json.loads(payload or b"{}")
            except ValueError:
                raise _HttpError(400, "BadRequest", "The body is not JSON.") from None
            status = body.get("status") if isinstance(body, dict) else None
            if status not in ("enabled", "disabled"):
                raise _HttpError(400, "BadRequest", "status must be enabled or disabled")
            self.accounts[index] = {**self.accounts[index], "status": status}
            self.changes.append((f"status={status}", account_id))
            return 204, None

    def iam_accounts(self, query: dict[str, str], filter_text: str) -> dict[str, Any]:
        """``GET /v3.0/iam/accounts``."""
        if filter_text and "account-filters-refused" in self.behaviours:
            raise _HttpError(400, "BadRequest", "invalid TMV1-Filter: not supported here")
        try:
            predicate = parse_filter(filter_text, ACCOUNT_FIELDS)
        except FilterSyntaxError as exc:
            raise _HttpError(400, "BadRequest", f"invalid TMV1-Filter: {exc}") from None
        key = hashlib.sha256(json.dumps(["accounts", filter_text]).encode()).hexdigest()[:24]
        with self._lock:
            rows = self._account_rows.get(key) if filter_text else None
            if rows is None:
                rows = [a for a in self.accounts if predicate(a)]
                if filter_text:
                    self._account_rows[key] = rows
        return self._page(rows, query, key, "/v3.0/iam/accounts")

    # -- Cloud One ---------------------------------------------------------------------

    def _cursor_page(
        self, rows: list[Any], query: dict[str, str], key: str, list_key: str
    ) -> dict[str, Any]:
        limit_text = query.get("limit", "25")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= self.c1_max_limit:
            raise _HttpError(400, "BadRequest", f"limit must be between 1 and {self.c1_max_limit}")
        limit = int(limit_text)
        offset = 0
        if query.get("cursor"):
            try:
                state = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
                offset, token_key = int(state["o"]), str(state["k"])
            except (ValueError, KeyError, TypeError):
                raise _HttpError(400, "BadRequest", "cursor is not valid") from None
            if token_key != key:
                raise _HttpError(400, "BadRequest", "cursor belongs to another listing")
        body: dict[str, Any] = {list_key: rows[offset : offset + limit]}
        if offset + limit < len(rows):
            body["next"] = base64.urlsafe_b64encode(
                json.dumps({"o": offset + limit, "k": key}).encode()
            ).decode()
        return body

    def cloudone_route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        payload: bytes = b"",
    ) -> tuple[int, Any]:
        """Cloud One's audit, accounts and SAML services, all on this origin."""
        auth = headers.get("authorization", "")
        key = auth[len("ApiKey ") :] if auth.startswith("ApiKey ") else ""
        if key not in self.tokens:
            raise _HttpError(401, "Unauthorized", "Invalid API key.")
        if headers.get("api-version") != "v1":
            raise _HttpError(400, "BadRequest", "The Api-Version header must be v1.")
        tenant = self.cloudone
        if tenant is not None and method == "DELETE" and path.startswith("/api/users/"):
            # Not documented by the vendor; served as the project guesses it.
            self._require(self.tokens[key], PERM_ACCOUNTS_WRITE)
            user_id = path.rsplit("/", 1)[1]
            with self._lock:
                before = len(tenant.users)
                tenant.users = [u for u in tenant.users if u.saml or u.id != user_id]
                if len(tenant.users) == before:
                    raise _HttpError(404, "NotFound", "The user does not exist.")
                self.changes.append(("delete", user_id))
            return 204, None
        if tenant is None or method != "GET":
            raise _HttpError(404, "NotFound", "The requested resource does not exist.")
        if path == "/api/logs":
            self._require(self.tokens[key], PERM_AUDIT)
            oldest = self.clock() - timedelta(days=C1_RETENTION_DAYS)
            with self._lock:
                first = bisect.bisect_left(tenant.times, oldest)
                newest_first = tenant.logs[first:][::-1]
            return 200, self._cursor_page(newest_first, query, "logs", "logs")
        self._require(self.tokens[key], PERM_ACCOUNTS)
        with self._lock:
            if path == "/api/users":
                rows = [u.to_json() for u in tenant.users if not u.saml]
            elif path == "/api/saml-users":
                rows = [u.to_json() for u in tenant.users if u.saml]
            elif path == "/api/roles":
                rows = [dict(r) for r in tenant.roles]
            elif path == "/api/apikeys":
                rows = [dict(k) for k in tenant.apikeys]
            else:
                raise _HttpError(404, "NotFound", "The requested resource does not exist.")
        list_key = {"/api/roles": "roles", "/api/apikeys": "apikeys"}.get(path, "users")
        return 200, self._cursor_page(rows, query, path, list_key)

    def route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        payload: bytes = b"",
    ) -> tuple[int, Any]:
        """Dispatch an authenticated request; return ``(status, body)``."""
        if path.startswith("/api/"):
            return self.cloudone_route(method, path, query, headers, payload)
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        granted = self.tokens.get(token)
        if granted is None:
            raise _HttpError(401, "InvalidCredentials", "The token is invalid or expired.")
        filter_text = headers.get("tmv1-filter", "")
        if method == "GET" and path == "/v3.0/audit/logs":
            self._require(granted, PERM_AUDIT)
            return 200, self.audit_logs(query, filter_text)
        if method == "GET" and path == "/v3.0/iam/accounts":
            self._require(granted, PERM_ACCOUNTS)
            return 200, self.iam_accounts(query, filter_text)
        if method == "GET" and path == "/v3.0/iam/apiKeys":
            self._require(granted, PERM_ACCOUNTS)
            key = hashlib.sha256(json.dumps(["apikeys", filter_text]).encode()).hexdigest()[:24]
            with self._lock:
                keys = list(self.tenant.api_keys)
            return 200, self._page(keys, query, key, "/v3.0/iam/apiKeys")
        if path.startswith("/v3.0/iam/accounts/") and method in ("PATCH", "DELETE"):
            self._require(granted, PERM_ACCOUNTS_WRITE)
            return self.change_account(method, path.rsplit("/", 1)[1], payload)
        raise _HttpError(404, "NotFound", "The requested resource does not exist.")

    @staticmethod
    def _require(granted: frozenset[str], permission: str) -> None:
        if permission not in granted:
            raise _HttpError(403, "AccessDenied", "The role does not have this permission.")


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "login-audit-simulator"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every response on loopback.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default access log."""

        def _send(
            self, status: int, body: bytes, extra: dict[str, str] | None = None, cut: bool = False
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:
                self.wfile.flush()
                self.close_connection = True

        def _error(
            self,
            status: int,
            code: str,
            message: str,
            *,
            flat: bool = False,
            retry_after: str | None = None,
        ) -> None:
            hdr = {"Retry-After": retry_after} if retry_after is not None else {}
            payload = (
                {"code": code, "message": message}
                if flat
                else {"error": {"code": code, "message": message}}
            )
            self._send(status, json.dumps(payload).encode(), hdr)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            path = parts.path
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if sim.latency:
                time.sleep(sim.latency)
            reset = sim._count_and_limit(path)
            if reset is not None:
                retry: str | None = (
                    str(max(1, math.ceil(reset))) if sim.time_scale >= 1 else f"{reset:.3f}"
                )
                if "bare-429" in sim.behaviours:
                    retry = None  # the vendor does not promise Retry-After
                self._error(429, "TooManyRequests", "Too many requests.", retry_after=retry)
                return
            fault = sim._pick_fault(path)
            if fault == "slow":
                time.sleep(sim.faults.slow_seconds)
            if fault == "notjson":
                html = b"<html><body>502 Bad Gateway</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)
                return
            if fault == "drop":
                self.close_connection = True
                return
            if fault == "outage":
                self._error(503, "ServiceUnavailable", "Service unavailable.")
                return
            if fault in ("500", "502", "503", "504"):
                self._error(int(fault), "InternalServerError", "Something went wrong.")
                return
            if fault == "429":
                self._error(429, "TooManyRequests", "Too many requests.", retry_after="1")
                return
            if fault == "404":
                self._error(404, "NotFound", "The requested resource does not exist.")
                return
            if fault == "409":
                self._error(409, "Conflict", "The resource was changed by another request.")
                return
            if fault == "429-date":
                when = datetime.now(timezone.utc) + timedelta(seconds=1)
                date = email.utils.format_datetime(when, usegmt=True)
                self._error(429, "TooManyRequests", "Too many requests.", retry_after=date)
                return
            if fault == "429-bare":
                self._error(429, "TooManyRequests", "Too many requests.", flat=True)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fault == "shift-accounts" and "skipToken" in query:
                # An administrator deletes an account while the list is being paged.
                with sim._lock:
                    if sim.accounts:
                        sim.accounts.pop(0)
                        sim._account_rows.clear()
            if fault == "echo-token":
                # Some servers echo what they were sent: the client must scrub it.
                echoed = headers.get("authorization", "")
                self._error(500, "InternalServerError", f"could not process {echoed}")
                return
            try:
                status, body = sim.route(method, path, query, headers, payload)
            except _HttpError as exc:
                self._error(exc.status, exc.code, exc.message)
                return
            if fault == "lost-reply":
                # The change is made, but the gateway answers 502: the client cannot know.
                self._error(502, "BadGateway", "The upstream answer was lost.")
                return
            if fault == "noitems" and isinstance(body, dict):
                body = {k: v for k, v in body.items() if k != "items"}
            if fault == "nullitems" and isinstance(body, dict) and body.get("items") == []:
                body = {**body, "items": None}  # an empty result said another way
            if fault == "repeat-link" and isinstance(body, dict) and "skipToken" in query:
                body = {**body, "nextLink": f"{sim.base_url}{self.path}"}
            if fault == "echo-link" and isinstance(body, dict) and "nextLink" in body:
                token = headers.get("authorization", "").split(" ")[-1]
                body = {**body, "nextLink": body["nextLink"] + "&access_token=" + token}
            if fault == "foreign-link" and isinstance(body, dict) and "nextLink" in body:
                link = urlsplit(body["nextLink"])
                body = {**body, "nextLink": link._replace(netloc="evil.example:443").geturl()}
            data = json.dumps(body).encode() if status != 204 else b""
            if fault == "badjson":
                data = data[: max(1, len(data) // 2)]
            self._send(status, data, cut=fault == "truncate")

        def do_GET(self) -> None:
            """Serve GET."""
            self._handle("GET")

        def do_PATCH(self) -> None:
            """Serve PATCH."""
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            """Serve DELETE."""
            self._handle("DELETE")

    return Handler
