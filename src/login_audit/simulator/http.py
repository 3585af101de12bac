"""The simulator's HTTP plumbing: the loopback server, the request handler, the rate limit.

Nothing here knows a vendor: the handler reads a request, asks the :class:`Simulator` for
the fault and the answer, and writes what it gets back, cut short or malformed when the
fault says so.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from login_audit.simulator.faults import ErrorAnswer, error_after, error_instead

if TYPE_CHECKING:
    from login_audit.simulator.server import Simulator


class ApiError(Exception):
    """An error answer of the API: status, the vendor's error code, and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class SimStats:
    """What the simulator served, for tests and benchmarks."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0


class RateLimit:
    """At most ``limit`` requests per window of ``window`` seconds, as the vendor counts.

    ``monotonic`` is the clock of the windows: injectable, so a test can drive it.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        stats: SimStats,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.stats, self.monotonic = limit, window, stats, monotonic
        self._lock = threading.Lock()
        self._index = -1
        self._count = 0

    def count(self, path: str) -> float | None:
        """Count the request; return seconds until the window resets if over the limit."""
        now = self.monotonic()
        with self._lock:
            self.stats.requests += 1
            self.stats.by_path[path] += 1
            index = math.floor(now / self.window)
            if index != self._index:
                self._index, self._count = index, 0
            self._count += 1
            if self._count > self.limit:
                self.stats.rate_limited += 1
                return (index + 1) * self.window - now
        return None


class QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a traceback when a client goes away."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (killed processes, abandoned retries)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a server that serves ``sim``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "login-audit-simulator"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every response on loopback.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default access log."""

        def _send(
            self,
            status: int,
            body: bytes,
            extra: dict[str, str] | None = None,
            *,
            cut: bool = False,
            content_type: str = "application/json; charset=utf-8",
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:
                self.wfile.flush()
                self.close_connection = True

        def _error(self, answer: ErrorAnswer) -> None:
            hdr = {"Retry-After": answer.retry_after} if answer.retry_after is not None else {}
            inner = {"code": answer.code, "message": answer.message}
            payload = inner if answer.flat else {"error": inner}
            self._send(answer.status, json.dumps(payload).encode(), hdr)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            path = parts.path
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if sim.on_request is not None:
                sim.on_request(path)
            if sim.latency:
                time.sleep(sim.latency)
            reset = sim.rate.count(path)
            if reset is not None:
                retry: str | None = (
                    str(max(1, math.ceil(reset))) if sim.time_scale >= 1 else f"{reset:.3f}"
                )
                if "bare-429" in sim.behaviours:
                    retry = None  # the vendor does not promise Retry-After
                self._error(ErrorAnswer(429, "TooManyRequests", "Too many requests.", retry))
                return
            fault = sim.picker.pick(path)
            if fault == "slow":
                time.sleep(sim.faults.slow_seconds)
            if fault == "notjson":
                html = b"<html><body>502 Bad Gateway</body></html>"
                self._send(200, html, content_type="text/html")
                return
            if fault == "drop":
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            early = error_instead(fault, headers.get("authorization", ""))
            if early is not None:
                self._error(early)
                return
            try:
                status, body = sim.route(method, path, query, headers, payload, fault)
            except ApiError as exc:
                self._error(ErrorAnswer(exc.status, exc.code, exc.message))
                return
            late = error_after(fault)
            if late is not None:
                self._error(late)
                return
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
