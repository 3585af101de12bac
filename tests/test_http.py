"""The HTTP layer: pacing, retry policy, status-to-error rules, redaction.

Time is fake here: the clock and the sleep are injected, so nothing waits for real.
"""

from __future__ import annotations

import random
import socket
import ssl
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from login_audit.config import HttpSettings, Secret
from login_audit.errors import (
    ConfigError,
    CredentialsError,
    PermissionDeniedError,
    ProtocolError,
    RetryLaterError,
)
from login_audit.http import (
    JITTER_MARGIN,
    USER_AGENT,
    BearerAuth,
    HttpClient,
    Pacer,
    RetryPolicy,
    parse_retry_after,
    same_origin,
)
from login_audit.redaction import redact_url

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc)
TOKEN = "tok-" + "s" * 30


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(handler, *, attempts: int = 4, fake: FakeTime | None = None) -> HttpClient:
    fake = fake or FakeTime()
    return HttpClient(
        BearerAuth(Secret(TOKEN)),
        HttpSettings(max_attempts=attempts, backoff_base=1.0),
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        monotonic=fake.monotonic,
        wall_clock=lambda: NOW,
        rng=random.Random(0),
    )


def test_pacer_allows_a_burst_then_spreads_requests() -> None:
    fake = FakeTime()
    pacer = Pacer(5, 60.0, monotonic=fake.monotonic, sleep=fake.sleep)
    for _ in range(5):
        pacer.acquire()
    assert fake.sleeps == []  # a small audit runs at full speed
    pacer.acquire()
    assert fake.sleeps == [pytest.approx(60.0 * (1 + JITTER_MARGIN))]
    starts = []
    for _ in range(20):
        pacer.acquire()
        starts.append(fake.now)
    # Never more than 5 starts in any 60-second window.
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= 60.0


def test_jittery_arrivals_never_make_one_request_too_many_in_the_vendors_window() -> None:
    """The vendor counts arrivals, which lag the starts by a varying delay (up to a second
    here: a slow network, a busy machine); the limit must hold in its window all the same."""
    fake = FakeTime()
    limit, window = 50, 60.0
    pacer = Pacer(limit, window, monotonic=fake.monotonic, sleep=fake.sleep)
    rng = random.Random(7)
    arrivals = []
    for _ in range(400):
        pacer.acquire()
        arrivals.append(fake.now + rng.uniform(0.0, 1.0))
    arrivals.sort()
    for i in range(len(arrivals) - limit):
        assert arrivals[i + limit] - arrivals[i] > window  # never limit + 1 in one window


def test_pacer_pause_holds_everyone_back() -> None:
    fake = FakeTime()
    pacer = Pacer(100, 60.0, monotonic=fake.monotonic, sleep=fake.sleep)
    pacer.pause(7.5)
    pacer.acquire()
    assert sum(fake.sleeps) == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (" 2.5 ", 2.5),
        (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
        (format_datetime(NOW - timedelta(seconds=42), usegmt=True), 0.0),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0, retry_after_cap=30.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {policy.delay(attempt, None, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter
    assert policy.delay(1, 12.0, rng) == 12.0
    assert policy.delay(1, 1000.0, rng) == 30.0


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_retries_then_succeeds_and_honours_retry_after() -> None:
    answers = [
        json_response(429, {"code": "TooManyRequests"}, **{"Retry-After": "7"}),
        json_response(503, {"error": {"code": "ServiceUnavailable"}}),
        httpx.Response(200, content=b'{"items": [1, 2'),  # truncated JSON
        json_response(200, {"items": [1]}),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    fake = FakeTime()
    client = make_client(handler, fake=fake)
    assert client.get_json("https://api.example/v3.0/x") == {"items": [1]}
    assert client.stats.requests == 4 and client.stats.retries == 3
    assert fake.sleeps[0] == 7.0  # Retry-After, then two backoffs
    assert len(fake.sleeps) == 3
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["User-Agent"] == USER_AGENT


def test_transport_errors_are_retried_then_reported() -> None:
    answers = iter([httpx.Response(200, json={"ok": 1})])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if answer is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return answer

    client = make_client(handler, attempts=3)
    client.get_json("https://api.example/v3.0/x")
    # Once the host has answered, a refused connection is a passing outage: retried.
    with pytest.raises(
        RetryLaterError,
        match=r"failed after 3 attempts: connection refused by api\.example",
    ):
        client.get_json("https://api.example/v3.0/x")
    assert client.stats.requests == 4


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        (
            ConnectionRefusedError(111, "Connection refused"),
            "connection refused by api.example:8443",
        ),
        (socket.gaierror(-2, "Name or service not known"), "api.example could not be resolved"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "TLS with api.example:8443"),
    ],
)
def test_an_unreachable_host_on_the_first_request_fails_at_once_in_words(
    cause: OSError, words: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    fake = FakeTime()
    client = make_client(handler, attempts=6, fake=fake)
    with pytest.raises(RetryLaterError, match="check --region/--base-url") as info:
        client.get_json("https://api.example:8443/v3.0/x")
    assert words in str(info.value) and "ConnectError" not in str(info.value)
    assert client.stats.requests == 1 and fake.sleeps == []


def test_body_check_failure_is_retried() -> None:
    bodies = [{"nextLink": "x"}, {"items": None}, {"items": []}]

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, bodies.pop(0))

    client = make_client(handler)
    body = client.get_json(
        "https://api.example/x",
        expect=lambda b: None if isinstance(b.get("items"), list) else "no items",
    )
    assert body == {"items": []}


@pytest.mark.parametrize(
    ("status", "error", "needle"),
    [
        (400, ProtocolError, "request rejected: HTTP 400 BadRequest"),
        (401, CredentialsError, "token was refused"),
        (403, PermissionDeniedError, "lacks the permission 'Audit Logs: View'"),
        (404, ConfigError, "check --region or --base-url"),
        (413, ProtocolError, "HTTP 413"),
        (429, RetryLaterError, "throttled for 180s: HTTP 429"),
        (500, RetryLaterError, "HTTP 500"),
        (502, RetryLaterError, "HTTP 502"),
        (503, RetryLaterError, "HTTP 503"),
        (504, RetryLaterError, "HTTP 504"),
    ],
)
def test_status_to_error_table(status: int, error: type[Exception], needle: str) -> None:
    codes = {400: "BadRequest", 401: "InvalidCredentials", 403: "AccessDenied"}
    body = {"error": {"code": codes.get(status, "X"), "message": f"echo {TOKEN}"}}
    client = make_client(lambda r: json_response(status, body), attempts=2)
    with pytest.raises(error) as info:
        client.get_json(
            f"https://api.example/v3.0/x?skipToken={TOKEN}", permission="Audit Logs: View"
        )
    assert needle in str(info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    if status == 429:  # retried for a time, not a count of attempts
        assert 2 < client.stats.requests < 20
    else:
        assert client.stats.requests == (2 if status in (500, 502, 503, 504) else 1)


def test_no_redirects_are_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.example/"})

    with pytest.raises(ProtocolError, match="HTTP 302"):
        make_client(handler).get_json("https://api.example/x")


def test_client_repr_hides_the_token() -> None:
    client = make_client(lambda r: json_response(200, {}))
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client._auth)


def test_redact_url_hides_secret_looking_parameters() -> None:
    url = "https://h/v3.0/audit/logs?top=200&skipToken=abc&api_key=k&labels=all"
    redacted = redact_url(url)
    assert "abc" not in redacted and "=k" not in redacted
    assert "top=200" in redacted and "labels=all" in redacted


@pytest.mark.parametrize(
    "command",
    [["audit", "--no-archive"], ["sync"], ["export", "-o", "out.json"], ["watch"], ["apply"]],
)
def test_every_command_talks_with_the_libraries_http_settings(
    cli, monkeypatch, tmp_path, command: list[str]
) -> None:
    import login_audit.cli.common as common

    seen: list[HttpSettings] = []

    def record(target, token, settings):
        seen.append(settings)
        raise ConnectionRefusedError("recorded")

    monkeypatch.setattr(common, "open_client", record)
    monkeypatch.chdir(tmp_path)
    base = [*command, "--base-url", "http://127.0.0.1:9", "--archive", str(tmp_path / "a.db")]
    if command == ["apply"]:
        (tmp_path / "f.csv").write_text("UserId,RoleName,RequestType\r\n")
        base += ["--from", str(tmp_path / "f.csv")]
    env = {"TMV1_TOKEN": TOKEN}
    cli(base, env=env)
    cli([*base, "--max-attempts", "3", "--timeout", "5", "--rate-limit", "7"], env=env)
    assert seen == [
        HttpSettings(),
        HttpSettings(max_attempts=3, timeout=5.0, rate_limit=7),
    ]


def test_tls_is_always_verified_and_no_option_turns_it_off() -> None:
    import ssl

    import click

    from login_audit.cli import cli

    client = HttpClient(BearerAuth(Secret(TOKEN)))
    pool = client._client._transport._pool  # type: ignore[attr-defined]
    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert pool._ssl_context.check_hostname is True
    client.close()
    names = {
        opt
        for command in cli.loaded_commands().values()
        for param in getattr(command, "params", [])
        if isinstance(param, click.Option)
        for opt in param.opts
    }
    assert not {n for n in names if "insecure" in n or "verify" in n or "no-tls" in n}


# -- the vendor's limits: what the real API may do that the simulator does by default not --


def test_429_without_retry_after_is_retried_past_the_vendors_window() -> None:
    """Vision One promises no Retry-After: 6 quick attempts (~31 s) would give up inside
    one 60 s window; a throttled request keeps trying for longer than the window."""
    fake = FakeTime()
    started = fake.now

    def handler(request: httpx.Request) -> httpx.Response:
        if fake.now - started < 95:  # the vendor's window resets after 95 s
            return json_response(429, {"code": "TooManyRequests"})
        return json_response(200, {"items": [1]})

    client = make_client(handler, attempts=6, fake=fake)
    assert client.get_json("https://api.example/v3.0/x") == {"items": [1]}
    assert client.stats.throttled >= 6  # more 429s than --max-attempts allows for 5xx
    assert fake.now - started >= 95


def test_a_throttled_request_gives_up_after_its_time_budget() -> None:
    fake = FakeTime()
    client = make_client(lambda r: json_response(429, {"code": "TooManyRequests"}), fake=fake)
    with pytest.raises(RetryLaterError, match="throttled for 180s"):
        client.get_json("https://api.example/v3.0/x")
    assert 180 <= fake.now - 1000.0 < 180 + 61  # the budget, plus at most one capped backoff


def test_the_pacer_learns_a_lower_limit_from_a_429() -> None:
    fake = FakeTime()
    pacer = Pacer(500, 60.0, monotonic=fake.monotonic, sleep=fake.sleep)
    for _ in range(100):
        pacer.acquire()
    assert pacer.throttled() == 80  # four fifths of what the vendor let through
    assert pacer.throttled() == 80  # the same window again: no further fall
    starts = []
    for _ in range(200):
        pacer.acquire()
        starts.append(fake.now)
    for i in range(len(starts) - 80):
        assert starts[i + 80] - starts[i] >= 60.0


def test_one_stray_429_does_not_slow_a_run_to_a_crawl() -> None:
    fake = FakeTime()
    pacer = Pacer(500, 60.0, monotonic=fake.monotonic, sleep=fake.sleep)
    pacer.acquire()
    assert pacer.throttled() == 50  # a tenth of the configured limit at the least


def test_a_response_larger_than_the_cap_is_a_failed_request() -> None:
    client = HttpClient(
        BearerAuth(Secret(TOKEN)),
        HttpSettings(max_attempts=2, max_response_bytes=1000),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"[" * 5000)),
        sleep=FakeTime().sleep,
    )
    with pytest.raises(RetryLaterError, match="larger than"):
        client.get_json("https://api.example/v3.0/x")


class _Drip(httpx.SyncByteStream):
    """A body that arrives one byte at a time, each after two (fake) seconds."""

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake

    def __iter__(self):
        for byte in b'{"items": [' + b"1, " * 200 + b"1]}":
            self.fake.now += 2.0
            yield bytes([byte])


def test_a_response_that_trickles_in_is_cut_at_the_deadline() -> None:
    fake = FakeTime()
    client = HttpClient(
        BearerAuth(Secret(TOKEN)),
        HttpSettings(max_attempts=2, backoff_base=0.0),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=_Drip(fake))),
        sleep=fake.sleep,
        monotonic=fake.monotonic,
    )
    with pytest.raises(RetryLaterError, match="not complete within 90s"):
        client.get_json("https://api.example/v3.0/x")
    assert fake.now - 1000.0 < 2 * 95  # two attempts, each cut at its deadline


def test_one_request_with_all_its_retries_has_a_deadline() -> None:
    """Six attempts that each trickle for 90 s would keep a run alive 9 minutes."""
    fake = FakeTime()
    client = HttpClient(
        BearerAuth(Secret(TOKEN)),
        HttpSettings(max_attempts=20, backoff_base=0.0, request_deadline=200.0),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=_Drip(fake))),
        sleep=fake.sleep,
        monotonic=fake.monotonic,
    )
    with pytest.raises(RetryLaterError, match="still failing after 200s"):
        client.get_json("https://api.example/v3.0/x")
    assert fake.now - 1000.0 < 200 + 95


def test_json_nested_too_deep_is_a_bad_page_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    client = make_client(lambda r: httpx.Response(200, content=deep), attempts=2)
    with pytest.raises(RetryLaterError, match="nested too deep"):
        client.get_json("https://api.example/v3.0/x")


@pytest.mark.parametrize(
    ("link", "same"),
    [
        ("https://api.xdr.trendmicro.com:443/v3.0/audit/logs?skipToken=x", True),
        ("https://API.xdr.trendmicro.com/v3.0/audit/logs", True),
        ("https://api.xdr.trendmicro.com:8443/v3.0/audit/logs", False),
        ("http://api.xdr.trendmicro.com:443/v3.0/audit/logs", False),
        ("https://api.xdr.trendmicro.com.evil.example/v3.0", False),
        ("https://api.xdr.trendmicro.com:99999/v3.0", False),
    ],
)
def test_an_explicit_default_port_is_the_same_origin(link: str, same: bool) -> None:
    assert same_origin(link, "https://api.xdr.trendmicro.com") is same


def test_a_failure_after_every_retry_is_typed_not_written_in_words() -> None:
    """The caller reads status, vendor code and Retry-After as values, not from the message."""
    body = {"error": {"code": "ServiceUnavailable", "message": "down"}}
    client = make_client(
        lambda r: httpx.Response(503, json=body, headers={"Retry-After": "7"}), attempts=2
    )
    with pytest.raises(RetryLaterError) as info:
        client.get_json("https://api.example/v3.0/x")
    assert (info.value.status, info.value.code, info.value.retry_after) == (
        503,
        "ServiceUnavailable",
        7.0,
    )


def test_a_transport_failure_has_no_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RetryLaterError) as info:
        make_client(handler, attempts=2).get_json("https://api.example/v3.0/x")
    assert info.value.status is None and info.value.code is None


def test_an_address_that_never_answered_is_unreachable_not_a_passing_outage() -> None:
    from login_audit.errors import UnreachableError

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = make_client(handler, attempts=3)
    with pytest.raises(UnreachableError) as info:
        client.get_json("https://api.example/v3.0/x")
    assert "check --region/--base-url" in str(info.value)
    assert client.stats.requests == 1  # not retried: nothing there has ever answered


def test_one_tls_context_for_every_thread_that_asks_at_once() -> None:
    """The CLI starts building it on a thread of its own; a client that asks meanwhile
    waits for that one instead of loading the CA bundle a second time."""
    from concurrent.futures import ThreadPoolExecutor

    from login_audit.http import tls_context

    with ThreadPoolExecutor(max_workers=8) as pool:
        contexts = list(pool.map(lambda _: tls_context(), range(32)))
    assert all(c is contexts[0] for c in contexts)
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED
