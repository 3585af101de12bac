"""The one HTTP client: authentication, timeouts, pacing, retries and redaction.

Every request login-audit makes goes through :class:`HttpClient`. It paces requests to stay
under the vendor's per-window limit (a sliding window shared by every thread), retries
429, 5xx, transport errors and unreadable bodies with ``Retry-After`` or capped exponential
backoff with jitter, and turns what is left into the exception tree of ``errors.py``.
Clock, sleep and randomness are injectable so tests never wait for real.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from login_audit import __version__, interrupts
from login_audit.config import HttpSettings, Secret
from login_audit.errors import (
    Cancelled,
    CredentialsError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RetryLaterError,
    UnreachableError,
)
from login_audit.printable import printable
from login_audit.redaction import Redactor, redact_url

log = logging.getLogger(__name__)

USER_AGENT = f"login-audit/{__version__}"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 200


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` (Vision One)."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header to each request."""
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never be written anywhere."""
        return (self._token.reveal(),)

    def __repr__(self) -> str:
        return "BearerAuth(token=Secret('********'))"


class ApiKeyAuth(httpx.Auth):
    """``Authorization: ApiKey <key>`` and ``Api-Version: v1`` (Cloud One)."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers to each request."""
        request.headers["Authorization"] = f"ApiKey {self._key.reveal()}"
        request.headers["Api-Version"] = "v1"
        yield request

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never be written anywhere."""
        return (self._key.reveal(),)

    def __repr__(self) -> str:
        return "ApiKeyAuth(key=Secret('********'))"


_TLS_LOCK = threading.Lock()
_TLS: list[ssl.SSLContext] = []


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of the process shares.

    Building one loads the whole CA bundle (about 30 ms); a run over many tenants builds
    a client per tenant, and a context is safe to share between clients and threads. A
    caller that comes while another thread builds it waits for that one.
    """
    with _TLS_LOCK:
        if not _TLS:
            _TLS.append(httpx.create_ssl_context())
        return _TLS[0]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


#: How much longer than the vendor's window the pacer spreads ``limit`` requests over. The
#: vendor counts a request when it arrives, and arrivals jitter (the network, a busy
#: machine): paced at exactly the limit, a request that arrives late and one that arrives
#: early make one too many in the vendor's window, and the 429 costs a pause and a slower
#: pace for the rest of the run. A 2% margin (1.2 s of a 60-s window) absorbs that jitter.
JITTER_MARGIN = 0.02


class Pacer:
    """At most ``limit`` request starts in any ``window`` seconds (plus
    :data:`JITTER_MARGIN`), shared by all threads.

    A small audit runs at full speed; a large one is spread so the vendor's limit is never
    reached. :meth:`pause` makes every thread wait (used when the vendor answers 429).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.floor = max(1, limit // 10)
        self.vendor_window = window
        self.window = window * (1 + JITTER_MARGIN)
        self._monotonic = monotonic
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, wait: Callable[[float], None] | None = None) -> None:
        """Block until one more request may start, then record its start.

        ``wait`` sleeps instead of the pacer's own sleep (a client's, which its
        :meth:`HttpClient.cancel` interrupts: a pacer may be shared by several clients).
        """
        sleep = wait or self._sleep
        while True:
            with self._lock:
                now = self._monotonic()
                while self._starts and self._starts[0] <= now - self.window:
                    self._starts.popleft()
                if self._paused_until > now:
                    delay = self._paused_until - now
                elif len(self._starts) < self.limit:
                    self._starts.append(now)
                    return
                else:
                    delay = self._starts[0] + self.window - now
                self.waited += delay
            sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    def throttled(self) -> int:
        """Learn from a 429: the vendor's limit is below what was sent in the last window.

        The limit drops to four fifths of the requests started in the current window and
        stays there for the rest of the run, so a vendor whose real limit is lower than
        ours is met near its own pace instead of being hit again and again. It never
        drops below a tenth of the configured limit: a 429 caused by someone else's
        traffic on the same key must not slow a run to a crawl (retries still wait for
        it). Returns the limit in force.
        """
        with self._lock:
            now = self._monotonic()
            while self._starts and self._starts[0] <= now - self.window:
                self._starts.popleft()
            lowered = max(self.floor, len(self._starts) * 4 // 5)
            if lowered < self.limit:
                log.info(
                    "the vendor throttled at %d requests in %gs; pacing at %d from now on",
                    len(self._starts),
                    self.vendor_window,
                    lowered,
                )
                self.limit = lowered
            return self.limit


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried and how long to wait before the next attempt.

    Its defaults are :class:`~login_audit.config.HttpSettings`'s: they are declared there
    once, and :meth:`of` takes a policy from the settings a run was given.
    """

    max_attempts: int = HttpSettings.max_attempts
    backoff_base: float = HttpSettings.backoff_base
    backoff_cap: float = HttpSettings.backoff_cap
    retry_after_cap: float = HttpSettings.retry_after_cap

    @classmethod
    def of(cls, settings: HttpSettings) -> RetryPolicy:
        """The retry policy of ``settings``."""
        return cls(
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
            retry_after_cap=settings.retry_after_cap,
        )

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``; ``Retry-After`` wins when present."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        # "Equal jitter": never less than half the ceiling, so retries stay spread out.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class HttpStats:
    """Counters of one client's traffic, for the run summary and the benchmarks."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


def _vendor_error_of(content: bytes) -> tuple[str, str]:
    """Pull ``(code, message)`` from a Vision One or Cloud One error body, if any."""
    try:
        body = _decode_json(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    inner = body.get("error", body)
    if not isinstance(inner, dict):
        return "", printable(str(inner)[:_MAX_MESSAGE])
    code = inner.get("code", "")
    message = inner.get("message", "")
    return printable(str(code)[:64]), printable(str(message)[:_MAX_MESSAGE])


class _BodyTooLarge(Exception):
    """The response grew past ``max_response_bytes``."""


class _DeadlinePassed(Exception):
    """The response did not arrive whole within ``deadline`` seconds."""


def _decode_json(content: bytes) -> Any:
    """Decode a body (``RecursionError`` when it is nested too deep to read).

    orjson reads a page several times faster; what it refuses (``NaN``, escaped lone
    surrogates, UTF-16, nesting past 1024) is read as the standard library reads it, and
    so is a body with a run of 19 digits or more, an integer orjson might turn into a
    float. A body therefore means what it meant before, and a record's key is unchanged.
    """
    if _LONG_DIGITS not in content.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)


# A run of 19 ASCII digits, found as a run of zeros once every digit is a zero and every
# other byte a dot: ten times faster than a regular expression on a page of 30 KB.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_DIGITS = b"0" * 19


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe_transport_error(exc: httpx.TransportError, url: str | httpx.URL) -> tuple[str, bool]:
    """Say in words what went wrong on the way to ``url``, and whether it is "unreachable".

    Unreachable (refused, unresolvable, TLS refused) means the host or the set-up is wrong
    rather than busy: retrying it for half a minute on the first request helps nobody.
    """
    parts = urlsplit(str(url))
    where = parts.hostname or "the host"
    if parts.port:
        where += f":{parts.port}"
    chain = _causes(exc)
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection to {where} within the timeout (a firewall or proxy?)", False
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} sent no answer within the timeout", False
    if any(isinstance(e, ssl.SSLError) for e in chain) or "[ssl" in text or "certificate" in text:
        reason = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
        detail = getattr(reason, "reason", None) or "handshake failed"
        return f"TLS with {where} failed ({str(detail).lower().replace('_', ' ')})", True
    if (
        any(isinstance(e, socket.gaierror) for e in chain)
        or "name or service" in text
        or ("name resolution" in text or "nodename nor servname" in text)
    ):
        return f"the host name {parts.hostname} could not be resolved (DNS)", True
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return f"connection refused by {where} (nothing listens there)", True
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{where} closed the connection without a complete answer", False
    if isinstance(exc, httpx.NetworkError):
        return f"the connection to {where} failed ({type(exc).__name__})", False
    return f"request to {where} failed ({type(exc).__name__})", False


#: How often a client that waits looks whether the run was interrupted meanwhile.
STOP_POLL = 0.1
#: Every client alive in the process, for :func:`cancel_all`.
_LIVE: weakref.WeakSet[HttpClient] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def cancel_all() -> None:
    """Cancel every client of the process (see :meth:`HttpClient.cancel`).

    Called when a run is interrupted: the threads working for it (time slices, account
    listings, tenants, pages read ahead) stop within a request instead of reading on, or
    waiting out the rate limit, while the process waits for them to end.
    """
    with _LIVE_LOCK:
        clients = list(_LIVE)
    for client in clients:
        client.cancel()


class HttpClient:
    """A paced, retrying JSON client bound to one tenant and one credential.

    ``sleep`` is how it waits (for the pacer, before a retry); by default real time that
    :meth:`cancel` cuts short.
    """

    def __init__(
        self,
        auth: BearerAuth | ApiKeyAuth,
        settings: HttpSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self._auth = auth
        self._redactor = Redactor(*auth.secrets())
        self._cancelled = threading.Event()
        self._given_sleep = sleep
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self.pacer = pacer or Pacer(
            self.settings.rate_limit,
            self.settings.rate_window,
            monotonic=monotonic,
            sleep=self._sleep,
        )
        self.policy = RetryPolicy.of(self.settings)
        self.stats = HttpStats()
        #: The server's ``Date`` of the last response, for clock-skew checks.
        self.last_server_date: datetime | None = None
        #: Whether any response at all came back yet (see :func:`describe_transport_error`).
        self._answered = False
        self._stats_lock = threading.Lock()
        timeout = httpx.Timeout(self.settings.timeout, connect=min(10.0, self.settings.timeout))
        self._client = httpx.Client(
            auth=auth,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
            transport=transport,
            verify=tls_context(),
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    def __repr__(self) -> str:
        return f"HttpClient(auth={self._auth!r}, settings={self.settings!r})"

    def close(self) -> None:
        """Close the connection pool, unless the run was interrupted.

        An interrupt raised inside the pool's own locking can leave its lock held; closing
        would then wait for it forever (a second Ctrl-C hung a run this way). The process
        is ending: its connections close with it.
        """
        if self._cancelled.is_set() or interrupts.stopping() is not None:
            return
        self._client.close()

    def cancel(self) -> None:
        """Stop this client for good: a request waiting for the pacer or for its next
        attempt, and every request after, raises :class:`~login_audit.errors.Cancelled`
        (one already sent ends as it ends). Safe from any thread."""
        self._cancelled.set()

    def _check_cancelled(self) -> None:
        # The command line's handlers flag an interrupt at once, without a lock (a signal
        # handler must not take one); the clients it stops are then cancelled explicitly.
        if self._cancelled.is_set() or interrupts.stopping() is not None:
            raise Cancelled("the run was stopped")

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the client is cancelled meanwhile (then raise)."""
        self._check_cancelled()
        if self._given_sleep is not None:
            self._given_sleep(seconds)
        else:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                self._cancelled.wait(min(left, STOP_POLL))
                self._check_cancelled()
        self._check_cancelled()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        """Remove every secret of this client from ``text``."""
        return self._redactor.scrub(text)

    def credential(self) -> str:
        """A SHA-256 digest of this client's credential: the same for the same token or key,
        and telling nothing about it (tokens are long and random)."""
        joined = "\0".join(self._auth.secrets()).encode("utf-8")
        return "sha256:" + hashlib.sha256(joined).hexdigest()

    def _count(self, *, retry: bool = False, throttled: bool = False) -> None:
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.retries += int(retry)
            self.stats.throttled += int(throttled)

    def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        permission: str = "",
        expect: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Send one request with pacing and retries; return the decoded JSON (``{}`` on 204).

        ``permission`` names what a 403 means the token lacks, for the error message.
        ``expect`` checks the decoded body and returns a problem or None; a body with a
        problem (a truncated page, a missing list) is retried like a 5xx.
        """
        where = self.scrub(f"{method} {redact_url(url)}")
        last_problem = ""
        attempt = throttles = sent = 0
        throttled_since: float | None = None
        first_sent = self._monotonic()
        while True:
            attempt += 1
            sent += 1
            self._check_cancelled()
            self.pacer.acquire(self._sleep)
            retry_after: float | None = None
            throttled = False
            # What the last failure was, typed, for the error raised when retries run out.
            last_status: int | None = None
            last_code: str | None = None
            try:
                status, response_headers, content = self._send(
                    method, url, params=params, headers=headers, json_body=json_body
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise ProtocolError(
                    f"{where}: the URL cannot be requested ({type(exc).__name__}); the vendor "
                    "sent a link that is too long or malformed"
                ) from None
            except httpx.TransportError as exc:
                self._count(retry=sent > 1)
                last_problem, unreachable = describe_transport_error(exc, url)
                log.debug("%s: transport error: %s (attempt %d)", where, last_problem, sent)
                if unreachable and not self._answered:
                    # Nothing has ever answered: a wrong address, not a passing outage.
                    raise UnreachableError(
                        self.scrub(f"{where} failed: {last_problem}; check --region/--base-url")
                    ) from None
            except _BodyTooLarge:
                self._count(retry=sent > 1)
                limit = self.settings.max_response_bytes
                last_problem = f"a response larger than {limit // (1024 * 1024)} MiB"
            except _DeadlinePassed:
                self._count(retry=sent > 1)
                last_problem = f"a response not complete within {self.settings.deadline:g}s"
            else:
                self._answered = True
                last_status = status
                throttled = status == 429
                self._count(retry=sent > 1, throttled=throttled)
                self._note_date(response_headers.get("Date"))
                log.debug("%s -> HTTP %d (attempt %d)", where, status, sent)
                if 200 <= status < 300:
                    if status == 204 or not content:
                        return {}
                    try:
                        body = _decode_json(content)
                    except (ValueError, UnicodeDecodeError):
                        last_problem = f"HTTP {status} with a body that is not valid JSON"
                    except RecursionError:
                        last_problem = f"HTTP {status} with JSON nested too deep to read"
                    else:
                        problem = expect(body) if expect else None
                        if problem is None:
                            return body
                        last_problem = f"HTTP {status} with {problem}"
                elif status in RETRY_STATUSES:
                    code, _ = _vendor_error_of(content)
                    last_code = code or None
                    last_problem = f"HTTP {status}" + (f" {code}" if code else "")
                    retry_after = parse_retry_after(
                        response_headers.get("Retry-After"), self._wall_clock()
                    )
                else:
                    self._raise_for_status(status, content, where, permission)
            if throttled:
                # A 429 is the vendor asking us to slow down, not a failure of the request:
                # it is retried for a time longer than the vendor's window, not a count.
                attempt -= 1
                throttles += 1
                now = self._monotonic()
                throttled_since = now if throttled_since is None else throttled_since
                if now - throttled_since >= self.settings.throttle_budget:
                    break
                if retry_after is None:
                    # With no Retry-After, only a slower pace keeps the next 429 away.
                    self.pacer.throttled()
            elif attempt >= self.policy.max_attempts:
                break
            if self._monotonic() - first_sent >= self.settings.request_deadline:
                last_problem += f" (still failing after {self.settings.request_deadline:g}s)"
                break
            delay = self.policy.delay(throttles if throttled else attempt, retry_after, self._rng)
            if throttled or retry_after is not None:
                # The limit is shared: every worker holds back, not only this one.
                self.pacer.pause(delay)
            else:
                self._sleep(delay)
            log.info("%s: %s; retrying in %.1fs", where, last_problem, delay)
        spent = (
            f"throttled for {self.settings.throttle_budget:g}s"
            if throttled
            else f"failed after {self.policy.max_attempts} attempts"
        )
        raise RetryLaterError(
            self.scrub(f"{where} {spent}: {last_problem}"),
            status=last_status,
            code=last_code,
            retry_after=retry_after,
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
    ) -> tuple[int, httpx.Headers, bytes]:
        """One exchange: ``(status, headers, body)``, the body capped in size and time."""
        started = self._monotonic()
        limit = self.settings.max_response_bytes
        with self._client.stream(
            method, url, params=params, headers=headers, json=json_body
        ) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _BodyTooLarge
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _BodyTooLarge
                if self._monotonic() - started > self.settings.deadline:
                    raise _DeadlinePassed
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _note_date(self, value: str | None) -> None:
        if not value:
            return
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return
        self.last_server_date = when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def _raise_for_status(self, status: int, content: bytes, where: str, permission: str) -> None:
        code, message = _vendor_error_of(content)
        detail = self.scrub(f"HTTP {status}" + (f" {code}" if code else ""))
        if message:
            detail += f" ({self.scrub(message)})"
        if status == 401:
            raise CredentialsError(
                f"{where}: the token was refused: {detail}; check that it is current and "
                "belongs to this region"
            )
        if status == 403:
            need = f"the permission {permission!r}" if permission else "a permission"
            raise PermissionDeniedError(
                f"{where}: access denied: {detail}; the token's role lacks {need}"
            )
        if status == 404:
            raise NotFoundError(f"{where}: not found: {detail}; check --region or --base-url")
        raise ProtocolError(f"{where}: request rejected: {detail}", status=status, code=code)

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        permission: str = "",
        expect: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """``GET`` shortcut for :meth:`request_json`."""
        return self.request_json(
            "GET", url, params=params, headers=headers, permission=permission, expect=expect
        )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str) -> tuple[str, str | None, int | None]:
    """The scheme, host and port of ``url``; the port is the scheme's default when none is
    written out, and -1 when it cannot be read."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return (scheme, parts.hostname, -1)
    return (scheme, parts.hostname, port or _DEFAULT_PORTS.get(scheme))


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base_url``.

    A port written out that is the scheme's default (``https://host:443``) is the same
    origin as none at all.
    """
    a, b = url_origin(url), url_origin(base_url)
    return a == b and a[2] != -1
