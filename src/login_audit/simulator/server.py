"""A loopback HTTP server that behaves like Trend Vision One's and Cloud One's APIs.

One :class:`Simulator` holds the tenant's state (records, accounts, changes, statistics)
and routes each request to the API that serves its path: ``/v3.0/`` to
:mod:`~login_audit.simulator.visionone_api`, ``/api/`` to
:mod:`~login_audit.simulator.cloudone_api`. The HTTP plumbing is in
:mod:`~login_audit.simulator.http`, the faults in :mod:`~login_audit.simulator.faults`.
Tests and benchmarks run the real client against it; nothing leaves the machine.
"""

from __future__ import annotations

import bisect
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from login_audit import interrupts
from login_audit.simulator.behaviours import BEHAVIOURS, apply_to_cloudone, apply_to_tenant
from login_audit.simulator.cloudone import CloudOneTenant
from login_audit.simulator.cloudone_api import BODY_FAULTS as C1_BODY_FAULTS
from login_audit.simulator.cloudone_api import CloudOneApi
from login_audit.simulator.faults import (
    ALL_FAULTS,
    BODY_FAULTS,
    CHANGE_FAULTS,
    DEFAULT_FAULTS,
    FaultConfig,
    FaultPicker,
)
from login_audit.simulator.http import QuietServer, RateLimit, SimStats, make_handler
from login_audit.simulator.tenant import Tenant
from login_audit.simulator.visionone_api import ALL_PERMISSIONS, VisionOneApi

__all__ = [
    "ALL_FAULTS",
    "BODY_FAULTS",
    "C1_BODY_FAULTS",
    "CHANGE_FAULTS",
    "DEFAULT_FAULTS",
    "FaultConfig",
    "SimStats",
    "Simulator",
]


class Simulator:
    """Serves one :class:`Tenant` (and a Cloud One account) on ``http://127.0.0.1:<port>``.

    ``clock`` is the vendor's idea of now (retention, default end of a query); ``monotonic``
    times the rate-limit windows; both can be injected.
    """

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
        monotonic: Callable[[], float] = time.monotonic,
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
        # A letter first, as in the vendor's keys: a token that starts with '-' would be
        # read as an option by a command line that takes it as an argument (the old script).
        self.token = token or "sim" + secrets.token_urlsafe(24)
        self.tokens = dict(tokens or {})
        self.tokens.setdefault(self.token, ALL_PERMISSIONS)
        self.stats = SimStats()
        self.faults = faults or FaultConfig()
        self.rate_limit = rate_limit
        self.window_seconds = rate_window * time_scale
        self.rate = RateLimit(rate_limit, self.window_seconds, self.stats, monotonic)
        self.time_scale = time_scale
        self.latency = latency_ms / 1000.0
        self.c1_max_limit = c1_max_limit
        self.clock = clock
        self.accounts = [a.to_json() for a in tenant.accounts]
        self.changes: list[tuple[str, str]] = []
        #: Called with each request's path before it is answered, in the serving thread: a
        #: test's hook to act at an exact point of a client's run (kill it, change the data).
        self.on_request: Callable[[str], None] | None = None
        self.lock = threading.Lock()
        #: Filtered account lists by filter (see ``VisionOneApi.iam_accounts``).
        self.account_rows: dict[str, list[Any]] = {}
        self.visionone = VisionOneApi(self)
        self.cloudone_api = CloudOneApi(self)
        self._server = QuietServer((host, port), make_handler(self))
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

    def _serve(self) -> None:
        # Ctrl-C belongs to the main thread (the demo's audit); the threads that answer
        # requests are started from this one and keep its signal mask.
        interrupts.spare_this_thread()
        # stop() waits until the loop looks at its flag again: a short interval keeps
        # stopping cheap for the test suite, which starts hundreds of simulators.
        self._server.serve_forever(poll_interval=0.005)

    def start(self) -> Simulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._serve, name="login-audit-simulator", daemon=True
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
        with self.lock:
            for when, item in items:
                index = bisect.bisect_right(self.tenant.times, when)
                self.tenant.times.insert(index, when)
                self.tenant.records.insert(index, item)
            self.visionone.forget()

    def add_account(self, account: dict[str, Any]) -> None:
        """Create an account in the tenant."""
        with self.lock:
            self.accounts.append(account)
            self.account_rows.clear()

    @property
    def faults(self) -> FaultConfig:
        """The faults injected from now on (assign a new :class:`FaultConfig` to change them)."""
        return self.picker.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self.picker = FaultPicker(config, self.stats.faults)

    def route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        payload: bytes = b"",
        fault: str | None = None,
    ) -> tuple[int, Any]:
        """Answer an authenticated request with its API: ``(status, body)``."""
        api = self.cloudone_api if path.startswith("/api/") else self.visionone
        return api.route(method, path, query, headers, payload, fault)
