"""Trend Cloud One's audit, accounts and SAML services as the simulator serves them.

``limit``/``cursor`` paging where the list sits under a key of its own (``users``,
``roles``, ``apikeys``, ``logs``) and ``next`` is an opaque cursor, ``ApiKey``
authentication with ``Api-Version: v1``; and the body faults those shapes can carry: a
missing or null list, a cursor that repeats or carries the key. Cloud One bodies have no
links, so a link to another host is a Vision One fault only.
"""

from __future__ import annotations

import base64
import bisect
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from login_audit.simulator.cloudone import RETENTION_DAYS
from login_audit.simulator.http import ApiError
from login_audit.simulator.visionone_api import (
    PERM_ACCOUNTS,
    PERM_ACCOUNTS_WRITE,
    PERM_AUDIT,
    require,
)

if TYPE_CHECKING:
    from login_audit.simulator.server import Simulator

#: The body faults a Cloud One answer can carry.
BODY_FAULTS = frozenset({"noitems", "nullitems", "repeat-link", "echo-link"})
_LIST_KEYS = {"/api/roles": "roles", "/api/apikeys": "apikeys", "/api/logs": "logs"}


class CloudOneApi:
    """The ``/api/`` endpoints of one simulated Cloud One account."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

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
        key = auth[len("ApiKey ") :] if auth.startswith("ApiKey ") else ""
        if key not in sim.tokens:
            raise ApiError(401, "Unauthorized", "Invalid API key.")
        if headers.get("api-version") != "v1":
            raise ApiError(400, "BadRequest", "The Api-Version header must be v1.")
        tenant = sim.cloudone
        if tenant is not None and method == "DELETE" and path.startswith("/api/users/"):
            # Not documented by the vendor; served as the project guesses it.
            require(sim.tokens[key], PERM_ACCOUNTS_WRITE)
            user_id = path.rsplit("/", 1)[1]
            with sim.lock:
                before = len(tenant.users)
                tenant.users = [u for u in tenant.users if u.saml or u.id != user_id]
                if len(tenant.users) == before:
                    raise ApiError(404, "NotFound", "The user does not exist.")
                sim.changes.append(("delete", user_id))
            return 204, None
        if tenant is None or method != "GET":
            raise ApiError(404, "NotFound", "The requested resource does not exist.")
        if path == "/api/logs":
            require(sim.tokens[key], PERM_AUDIT)
            oldest = sim.clock() - timedelta(days=RETENTION_DAYS)
            with sim.lock:
                first = bisect.bisect_left(tenant.times, oldest)
                rows: list[Any] = tenant.logs[first:][::-1]
        else:
            require(sim.tokens[key], PERM_ACCOUNTS)
            with sim.lock:
                if path == "/api/users":
                    rows = [u.to_json() for u in tenant.users if not u.saml]
                elif path == "/api/saml-users":
                    rows = [u.to_json() for u in tenant.users if u.saml]
                elif path == "/api/roles":
                    rows = [dict(r) for r in tenant.roles]
                elif path == "/api/apikeys":
                    rows = [dict(k) for k in tenant.apikeys]
                else:
                    raise ApiError(404, "NotFound", "The requested resource does not exist.")
        list_key = _LIST_KEYS.get(path, "users")
        return 200, self._page(rows, query, path, list_key, fault, key)

    def _page(
        self,
        rows: list[Any],
        query: dict[str, str],
        key: str,
        list_key: str,
        fault: str | None,
        api_key: str,
    ) -> dict[str, Any]:
        limit_text = query.get("limit", "25")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= self.sim.c1_max_limit:
            raise ApiError(
                400, "BadRequest", f"limit must be between 1 and {self.sim.c1_max_limit}"
            )
        limit = int(limit_text)
        offset = 0
        if query.get("cursor"):
            try:
                state = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
                offset, token_key = int(state["o"]), str(state["k"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "cursor is not valid") from None
            if token_key != key:
                raise ApiError(400, "BadRequest", "cursor belongs to another listing")
        page = rows[offset : offset + limit]
        body: dict[str, Any] = {list_key: page}
        following = offset + limit < len(rows)
        if fault == "nullitems" and not following and page:
            # The listing ends on an extra, empty page, which the vendor may answer null.
            following = True
        if following:
            body["next"] = _cursor(min(offset + limit, len(rows)), key)
        elif "empty-next" in self.sim.behaviours:
            body["next"] = ""
        if fault == "noitems":
            del body[list_key]
        elif fault == "nullitems" and not page:
            body[list_key] = None
        elif fault == "repeat-link" and query.get("cursor"):
            body["next"] = query["cursor"]
        elif fault == "echo-link" and "next" in body:
            body["next"] += api_key  # a cursor that carries the caller's key back to it
        return body


def _cursor(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "k": key}).encode()).decode()
