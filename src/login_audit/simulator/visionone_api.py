"""Trend Vision One's v3.0 API as the simulator serves it.

The documented shapes: ``items``/``nextLink`` paging with an opaque ``skipToken``, ``top``
of 50/100/200, the ``TMV1-Filter`` language, 180-day retention, error bodies; and the
body faults those shapes can carry (a missing or null ``items``, a ``nextLink`` that
repeats, points to another host or carries the token, an account deleted mid-listing).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from login_audit.simulator.behaviours import unsort
from login_audit.simulator.filters import FilterSyntaxError, parse_filter
from login_audit.simulator.http import ApiError
from login_audit.simulator.tenant import RETENTION_DAYS

if TYPE_CHECKING:
    from login_audit.simulator.server import Simulator

PERM_AUDIT = "audit"
PERM_ACCOUNTS = "accounts"
PERM_ACCOUNTS_WRITE = "accounts-write"
ALL_PERMISSIONS = frozenset({PERM_AUDIT, PERM_ACCOUNTS, PERM_ACCOUNTS_WRITE})

#: The body faults a Vision One answer can carry.
BODY_FAULTS = frozenset(
    {"noitems", "nullitems", "repeat-link", "foreign-link", "echo-link", "shift-accounts"}
)
AUDIT_FIELDS = ("loggedUser", "loggedRole", "accessType", "category", "activity", "result")
#: The documented fields, and ``role``: whether the vendor filters on it is a guess, which
#: the simulator answers yes to (``account-filter-ignored`` answers otherwise).
ACCOUNT_FIELDS = ("id", "email", "authType", "status", "role")
UNDOCUMENTED_ACCOUNT_FIELDS = ("role",)
PAGE_SIZES = (50, 100, 200)
_USER_TERM = re.compile(r"\(\s*loggedUser\s+eq\s+'((?:[^']|'')*)'\s*\)", re.IGNORECASE)
_STRICT_TIME = "%Y-%m-%dT%H:%M:%SZ"


def require(granted: frozenset[str], permission: str) -> None:
    """Refuse, as the vendor does, a token whose role lacks ``permission``."""
    if permission not in granted:
        raise ApiError(403, "AccessDenied", "The role does not have this permission.")


class VisionOneApi:
    """The ``/v3.0/`` endpoints of one simulated tenant (state shared with the simulator)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._user_index: dict[str, list[int]] | None = None

    def forget(self) -> None:
        """Drop what was computed from the records (they changed)."""
        self._cache.clear()
        self._user_index = None

    def route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        payload: bytes,
        fault: str | None,
    ) -> tuple[int, Any]:
        """Answer one request, with ``fault`` applied to its body when it can carry it."""
        sim = self.sim
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        granted = sim.tokens.get(token)
        if granted is None:
            raise ApiError(401, "InvalidCredentials", "The token is invalid or expired.")
        filter_text = headers.get("tmv1-filter", "")
        if fault == "shift-accounts" and "skipToken" in query:
            # An administrator deletes an account while the list is being paged.
            with sim.lock:
                if sim.accounts:
                    sim.accounts.pop(0)
                    sim.account_rows.clear()
        if method == "GET" and path == "/v3.0/audit/logs":
            require(granted, PERM_AUDIT)
            body = self.audit_logs(query, filter_text)
        elif method == "GET" and path == "/v3.0/iam/accounts":
            require(granted, PERM_ACCOUNTS)
            body = self.iam_accounts(query, filter_text)
        elif method == "GET" and path == "/v3.0/iam/apiKeys":
            require(granted, PERM_ACCOUNTS)
            key = hashlib.sha256(json.dumps(["apikeys", filter_text]).encode()).hexdigest()[:24]
            with sim.lock:
                keys = list(sim.tenant.api_keys)
            body = self._page(keys, query, key, "/v3.0/iam/apiKeys")
        elif path.startswith("/v3.0/iam/accounts/") and method in ("PATCH", "DELETE"):
            require(granted, PERM_ACCOUNTS_WRITE)
            return self.change_account(method, path.rsplit("/", 1)[1], payload)
        else:
            raise ApiError(404, "NotFound", "The requested resource does not exist.")
        return 200, self._corrupt(fault, body, path, query, token)

    def _corrupt(
        self, fault: str | None, body: dict[str, Any], path: str, query: dict[str, str], token: str
    ) -> dict[str, Any]:
        if fault == "noitems":
            return {k: v for k, v in body.items() if k != "items"}
        if fault == "nullitems" and body.get("items") == []:
            return {**body, "items": None}  # an empty result said another way
        if fault == "repeat-link" and "skipToken" in query:
            return {**body, "nextLink": f"{self.sim.base_url}{path}?{urlencode(query)}"}
        if fault == "echo-link" and "nextLink" in body:
            return {**body, "nextLink": body["nextLink"] + "&access_token=" + token}
        if fault == "foreign-link" and "nextLink" in body:
            link = urlsplit(body["nextLink"])
            return {**body, "nextLink": link._replace(netloc="evil.example:443").geturl()}
        return body

    def _page(
        self,
        rows: list[Any],
        query: dict[str, str],
        key: str,
        path: str,
    ) -> dict[str, Any]:
        top_text = query.get("top", "50")
        if not top_text.isdigit() or int(top_text) not in PAGE_SIZES:
            raise ApiError(400, "BadRequest", "top must be one of 50, 100, 200")
        top = int(top_text)
        offset = 0
        if "skipToken" in query:
            try:
                state = json.loads(base64.urlsafe_b64decode(query["skipToken"].encode()))
                offset, token_key = int(state["o"]), str(state["k"])
            except (ValueError, KeyError, TypeError):  # includes bad base64
                raise ApiError(400, "BadRequest", "skipToken is not valid") from None
            if token_key != key:
                raise ApiError(
                    400, "BadRequest", "skipToken does not match the query or TMV1-Filter"
                )
        body: dict[str, Any] = {"items": rows[offset : offset + top]}
        if not body["items"] and "null-items" in self.sim.behaviours:
            body["items"] = None  # how some vendors answer an empty result
        if offset + top < len(rows):
            token = base64.urlsafe_b64encode(
                json.dumps({"o": offset + top, "k": key}).encode()
            ).decode()
            params = {k: v for k, v in query.items() if k != "skipToken"}
            params["skipToken"] = token
            body["nextLink"] = f"{self.sim.base_url}{path}?{urlencode(params)}"
        elif "empty-next" in self.sim.behaviours:
            body["nextLink"] = ""
        return body

    def _parse_time(self, query: dict[str, str], name: str, default: datetime) -> datetime:
        if name not in query:
            return default
        try:
            return datetime.strptime(query[name], _STRICT_TIME).replace(tzinfo=timezone.utc)
        except ValueError:
            raise ApiError(400, "BadRequest", f"{name} must be YYYY-MM-DDTHH:MM:SSZ") from None

    def audit_logs(self, query: dict[str, str], filter_text: str) -> dict[str, Any]:
        """``GET /v3.0/audit/logs``."""
        sim = self.sim
        now = sim.clock()
        oldest = now - timedelta(days=RETENTION_DAYS)
        end = self._parse_time(query, "endDateTime", now)
        asked_start = self._parse_time(query, "startDateTime", oldest)
        if "reject-old-start" in sim.behaviours and asked_start < oldest:
            raise ApiError(
                400, "BadRequest", f"startDateTime must be within the last {RETENTION_DAYS} days"
            )
        start = max(asked_start, oldest)  # older records are not served
        order = query.get("orderBy", "loggedDateTime desc").strip().lower()
        if order not in ("loggedDateTime desc".lower(), "loggedDateTime asc".lower()):
            raise ApiError(400, "BadRequest", "orderBy must be 'loggedDateTime asc|desc'")
        try:
            predicate = parse_filter(filter_text, AUDIT_FIELDS)
        except FilterSyntaxError as exc:
            raise ApiError(400, "BadRequest", f"invalid TMV1-Filter: {exc}") from None
        key = hashlib.sha256(
            json.dumps([filter_text, asked_start.isoformat(), end.isoformat(), order]).encode()
        ).hexdigest()[:24]
        with sim.lock:
            indices = self._cache.get(key)
        if indices is None:
            times = sim.tenant.times
            lo = bisect.bisect_left(times, start)
            hi = bisect.bisect_left(times, end)
            records = sim.tenant.records
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
            if "unsorted-pages" in sim.behaviours:
                indices = unsort(indices)
            with sim.lock:
                self._cache[key] = indices
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        page = self._page(indices, query, key, "/v3.0/audit/logs")
        if page["items"] is not None:
            page["items"] = [sim.tenant.records[i] for i in page["items"]]
        return page

    def _by_user(self) -> dict[str, list[int]]:
        """Record indices per lower-case ``loggedUser`` (rebuilt when records change)."""
        with self.sim.lock:
            if self._user_index is None:
                index: dict[str, list[int]] = {}
                for i, item in enumerate(self.sim.tenant.records):
                    index.setdefault(str(item.get("loggedUser", "")).lower(), []).append(i)
                self._user_index = index
            return self._user_index

    def change_account(self, method: str, account_id: str, payload: bytes) -> tuple[int, Any]:
        """``PATCH`` (``{"status": "disabled"}``) or ``DELETE`` one IAM account."""
        sim = self.sim
        with sim.lock:
            index = next((i for i, a in enumerate(sim.accounts) if a["id"] == account_id), None)
            if index is None:
                raise ApiError(404, "NotFound", "The account does not exist.")
            sim.account_rows.clear()
            if method == "DELETE":
                del sim.accounts[index]
                sim.changes.append(("delete", account_id))
                return 204, None
            try:
                body = json.loads(payload or b"{}")
            except ValueError:
                raise ApiError(400, "BadRequest", "The body is not JSON.") from None
            status = body.get("status") if isinstance(body, dict) else None
            if status not in ("enabled", "disabled"):
                raise ApiError(400, "BadRequest", "status must be enabled or disabled")
            sim.accounts[index] = {**sim.accounts[index], "status": status}
            sim.changes.append((f"status={status}", account_id))
            return 204, None

    def iam_accounts(self, query: dict[str, str], filter_text: str) -> dict[str, Any]:
        """``GET /v3.0/iam/accounts``."""
        if filter_text and "account-filters-refused" in self.sim.behaviours:
            raise ApiError(400, "BadRequest", "invalid TMV1-Filter: not supported here")
        ignored = (
            UNDOCUMENTED_ACCOUNT_FIELDS if "account-filter-ignored" in self.sim.behaviours else ()
        )
        try:
            predicate = parse_filter(filter_text, ACCOUNT_FIELDS, ignored)
        except FilterSyntaxError as exc:
            raise ApiError(400, "BadRequest", f"invalid TMV1-Filter: {exc}") from None
        key = hashlib.sha256(json.dumps(["accounts", filter_text]).encode()).hexdigest()[:24]
        with self.sim.lock:
            # Filtered lists are kept until an account changes: a tenant of 50,000 accounts
            # read as parallel partitions would otherwise be filtered whole for every page
            # (the simulator's time, not the client's). The unfiltered list is never kept,
            # so tests may edit ``accounts`` in place.
            rows = self.sim.account_rows.get(key) if filter_text else None
            if rows is None:
                rows = [a for a in self.sim.accounts if predicate(a)]
                if filter_text:
                    self.sim.account_rows[key] = rows
        return self._page(rows, query, key, "/v3.0/iam/accounts")
