"""``watch`` end to end: simulated tenants, both archives, loopback webhooks, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.archive.signals import SENT, SignalStore
from login_audit.archive.sql import SqlArchive
from login_audit.config import HttpSettings, Secret
from login_audit.delivery import FileSink, WebhookSink
from login_audit.http import BearerAuth, HttpClient, RetryPolicy
from login_audit.platforms.visionone import VisionOne
from login_audit.service import sync_tenant
from login_audit.simulator.takeover import build_takeover_cloudone, build_takeover_tenant
from login_audit.watch import WatchRules
from login_audit.watcher import find_signals, repeat, run_watch

Pair = tuple[str, str]


@pytest.fixture(scope="module")
def takeover():
    return build_takeover_tenant(seed=5, accounts=150)


@pytest.fixture(scope="module")
def takeover_c1():
    return build_takeover_cloudone(seed=5, users=60)


def planted(signals: list[dict[str, str]]) -> Counter[Pair]:
    return Counter((s["kind"], s["subject"]) for s in signals)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def reported(path: Path) -> Counter[Pair]:
    return Counter((s["kind"], s["subject"]) for s in lines(path))


def watch_args(sim, archive: str, *extra: str, platform: str = "visionone") -> list[str]:
    return [
        "watch",
        "--platform",
        platform,
        "--base-url",
        sim.base_url,
        "--archive",
        archive,
        *extra,
    ]


class Receiver:
    """A webhook receiver on loopback: records each request, answers from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answer: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (200, {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((dict(self.headers), body))
                status, headers = receiver.answer(len(receiver.requests))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0001/SECRET-TOKEN-42"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True
        )
        self.thread.start()

    def ids(self) -> list[str]:
        found = []
        for _, body in self.requests:
            for item in body.get("signals") or [body.get("signal")]:
                found.append(item["id"])
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def synced(sim, spec: str) -> tuple[SqlArchive, TenantKey]:
    """An archive holding the whole simulated Vision One tenant."""
    archive = open_archive(spec)
    assert isinstance(archive, SqlArchive)
    key = TenantKey("visionone", sim.base_url.split("//")[1], "default")
    with HttpClient(BearerAuth(Secret(sim.token)), HttpSettings()) as http:
        sync_tenant(archive, VisionOne(http, sim.base_url, "custom"), key, 30)
    return archive, key


# -- the planted signals, every one once ---------------------------------------------------


@pytest.mark.e2e
def test_every_planted_signal_once_none_on_normal_traffic(
    cli, start_sim, archive_url, tmp_path: Path
) -> None:
    tenant, expected = build_takeover_tenant(seed=6, accounts=150)  # new records are added
    sim = start_sim(tenant)
    out = tmp_path / "signals.jsonl"
    args = watch_args(sim, archive_url, "--jsonl", str(out))
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0, err
    # Recall 100% and no signal on the normal traffic around the planted ones.
    assert reported(out) == planted(expected)
    assert len(tenant.records) > 20 * len(expected)
    assert f"{len(expected)} new signals" in err
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    first = out.read_text()

    # Nothing new: nothing reported again, and only the records of the overlap are read.
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0 and out.read_text() == first
    assert " 0 new signals" in err

    # New activity: a dormant account wakes up, another is attacked; only those are new.
    dormant = [a for a in tenant.accounts if a.klass == "inactive"][-2:]
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=3)
    item = {
        "loggedUser": dormant[0].email,
        "category": "Logon and Logoff",
        "activity": "Log on",
        "result": "Successful",
    }
    new = [(now, {**item, "loggedDateTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})]
    for n in range(6):
        when = now + timedelta(seconds=20 * n)
        new.append(
            (
                when,
                {
                    **item,
                    "loggedUser": dormant[1].email,
                    "result": "Unsuccessful",
                    "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
        )
    sim.add_records(new)
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0, err
    assert reported(out) - planted(expected) == Counter(
        {
            ("dormant-reactivated", dormant[0].email.lower()): 1,
            ("failed-logon-burst", dormant[1].email.lower()): 1,
        }
    )


@pytest.mark.e2e
def test_cloud_one_signals_and_ocsf_findings(
    cli, takeover, takeover_c1, start_sim, tmp_path: Path
) -> None:
    c1, expected = takeover_c1
    sim = start_sim(takeover[0], cloudone=c1)
    ocsf = tmp_path / "findings.jsonl"
    args = watch_args(
        sim,
        str(tmp_path / "a.sqlite3"),
        "--ocsf",
        str(ocsf),
        "--jsonl",
        str(tmp_path / "s.jsonl"),
        platform="cloudone",
    )
    code, _, err = cli(args, {"C1_API_KEY": sim.token})
    assert code == 0, err
    assert reported(tmp_path / "s.jsonl") == planted(expected)
    findings = lines(ocsf)
    assert len(findings) == len(expected)
    for finding in findings:
        assert finding["class_uid"] == 2004 and finding["type_uid"] == 200401
        assert finding["category_uid"] == 2 and finding["metadata"]["version"].startswith("1.")
        assert finding["finding_info"]["types"][0] in {p["kind"] for p in expected}
        assert isinstance(finding["time"], int)
    ids = {s["id"] for s in lines(tmp_path / "s.jsonl")}
    assert {f["finding_info"]["uid"] for f in findings} == ids


@pytest.mark.e2e
def test_watch_all_tenants_of_the_config_file(
    cli, takeover, takeover_c1, start_sim, tmp_path: Path
) -> None:
    (v1, v1_expected), (c1, c1_expected) = takeover, takeover_c1
    sim = start_sim(v1, cloudone=c1)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[tenant]]\nname = "prod-v1"\nplatform = "visionone"\nbase_url = "{sim.base_url}"\n'
        f'token_env = "V1_PROD"\n\n[[tenant]]\nname = "prod-c1"\nplatform = "cloudone"\n'
        f'base_url = "{sim.base_url}"\ntoken_env = "C1_PROD"\n'
    )
    out = tmp_path / "s.jsonl"
    args = ["watch", "--all", "--config", str(config), "--archive", str(tmp_path / "a.sqlite3")]
    code, _, err = cli([*args, "--jsonl", str(out)], {"V1_PROD": sim.token, "C1_PROD": sim.token})
    assert code == 0, err
    by_tenant: dict[str, list[dict[str, str]]] = {}
    for item in lines(out):
        by_tenant.setdefault(item["tenant"]["name"], []).append(item)
    assert planted(by_tenant["prod-v1"]) == planted(v1_expected)
    assert planted(by_tenant["prod-c1"]) == planted(c1_expected)


# -- crashes ----------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for the process dying at that point."""


def test_a_crash_at_any_step_loses_nothing_and_duplicates_nothing(
    takeover, start_sim, archive_url: str, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    archive, key = synced(sim, archive_url)
    rules = WatchRules()
    out = tmp_path / "s.jsonl"
    sink = FileSink(str(out))
    total = archive._one("SELECT COUNT(*) FROM records")[0]
    # Die after each of the first batches of detection in turn.
    for crash_at in (1, 2, 3):

        def after(position: int, seen: list[int] = [], crash_at: int = crash_at) -> None:  # noqa: B006 - one list per crash
            seen.append(position)
            if len(seen) == crash_at:
                raise Crash

        with pytest.raises(Crash):
            find_signals(archive, key, rules, sinks=[sink], batch=400, after_batch=after)
    # Die after the file is written, before the archive hears of it; then mid-line.
    original = sink.deliver

    def write_then_die(signals, confirm):
        original(signals[:-1], lambda ids: None)
        with out.open("a") as handle:
            handle.write(sink.line(signals[-1])[:25])
        raise Crash

    sink.deliver = write_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run_watch(archive, key, rules, [sink], batch=400)
    sink.deliver = original  # type: ignore[method-assign]
    result = run_watch(archive, key, rules, [sink], batch=400)
    assert result.complete
    assert reported(out) == planted(expected)
    store = SignalStore(archive)
    tenant_id = archive.tenant_id(key)
    assert store.position(tenant_id) == total
    assert all(state == SENT for state, _ in store.delivery_states(tenant_id, sink.name).values())
    archive.close()


@pytest.mark.e2e
def test_sigkill_while_delivering_then_rerun(
    process_env, takeover, start_sim, receiver: Receiver, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    out = tmp_path / "s.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "login_audit",
        "watch",
        "--base-url",
        sim.base_url,
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--jsonl",
        str(out),
    ]
    env = process_env(TMV1_TOKEN=sim.token, LOGIN_AUDIT_WEBHOOK_URL=receiver.url)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The receiver kills the watcher while it waits for the answer to the third signal.
    receiver.answer = lambda n: (
        (os.kill(proc.pid, signal.SIGKILL), (200, {}))[1] if n == 3 else (200, {})
    )
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert reported(out) == planted(expected)
    ids = receiver.ids()
    assert set(ids) == {s["id"] for s in lines(out)}
    # Only the signal in flight when the watcher died was posted twice (same key).
    assert Counter(ids).most_common(1)[0][1] <= 2
    assert sum(n - 1 for n in Counter(ids).values()) == 1
    keys = [h.get("Idempotency-Key") for h, _ in receiver.requests]
    assert len(keys) - len(set(keys)) == 1
    assert receiver.url not in done.stderr + done.stdout


# -- webhooks ---------------------------------------------------------------------------------

ONE_SIGNAL = {
    "id": "s1",
    "kind": "api-key-created",
    "summary": "x",
    "occurredAt": "2026-11-22T10:00:00.000000Z",
}


@pytest.mark.e2e
def test_receiver_down_keeps_every_signal_for_the_next_run(
    cli, takeover, start_sim, receiver: Receiver, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    args = watch_args(
        sim, str(tmp_path / "a.sqlite3"), "--max-attempts", "2", "--backoff-base", "0"
    )
    env = {"TMV1_TOKEN": sim.token, "LOGIN_AUDIT_WEBHOOK_URL": receiver.url}
    receiver.answer = lambda n: (503, {})
    code, out, err = cli(args, env)
    assert code == 4
    assert "NOT DELIVERED" in err and "kept for the next run" in err
    assert "SECRET-TOKEN-42" not in out + err
    assert receiver.ids() and len(set(receiver.ids())) == 1  # stopped at the first signal
    # Down for longer: still nothing lost.
    code, _, err = cli(args, env)
    assert code == 4
    receiver.requests.clear()
    receiver.answer = lambda n: (200, {})
    code, _, err = cli(args, env)
    assert code == 0, err
    assert sorted(receiver.ids()) == sorted(set(receiver.ids()))
    assert len(receiver.ids()) == sum(planted(expected).values())
    receiver.requests.clear()
    code, _, _ = cli(args, env)
    assert code == 0 and receiver.requests == []


def test_webhook_retries_with_backoff_and_retry_after(receiver: Receiver) -> None:
    script = {1: (429, {"Retry-After": "7"}), 2: (500, {}), 3: (200, {})}
    receiver.answer = lambda n: script[n]
    slept: list[float] = []
    sink = WebhookSink(
        Secret(receiver.url), policy=RetryPolicy(max_attempts=4, backoff_base=2), sleep=slept.append
    )
    confirmed: list[str] = []
    body = dict(ONE_SIGNAL)
    assert sink.deliver([body], confirmed.extend) is None
    assert confirmed == ["s1"]
    assert slept[0] == 7 and 2 <= slept[1] <= 4  # Retry-After, then equal-jitter backoff
    assert len(receiver.requests) == 3
    assert {h["Idempotency-Key"] for h, _ in receiver.requests} == {"s1"}
    assert "SECRET" not in repr(sink) and "SECRET" not in sink.name
    sink.close()


def test_a_refusing_receiver_is_not_retried_and_nothing_is_confirmed(receiver: Receiver) -> None:
    receiver.answer = lambda n: (404, {})
    slept: list[float] = []
    sink = WebhookSink(Secret(receiver.url), sleep=slept.append)
    confirmed: list[str] = []
    body = dict(ONE_SIGNAL)
    problem = sink.deliver([body], confirmed.extend)
    assert problem is not None and "HTTP 404" in problem and "SECRET" not in problem
    assert confirmed == [] and slept == [] and len(receiver.requests) == 1
    sink.close()


@pytest.mark.e2e
@pytest.mark.parametrize("style", ["slack", "teams", "json"])
def test_slack_teams_and_digest_bodies(
    cli, style: str, takeover, start_sim, receiver: Receiver, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    hook = tmp_path / "hook.url"
    hook.write_text(receiver.url + "\n")
    args = watch_args(
        sim,
        str(tmp_path / "a.sqlite3"),
        "--webhook-file",
        str(hook),
        "--webhook-format",
        style,
        "--digest",
        "--jsonl",
        str(tmp_path / "s.jsonl"),
    )
    code, out, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0, err
    assert "webhook file" in err and "can be read by other users" in err  # it was 0644
    assert len(receiver.requests) == 1  # one digest
    _, body = receiver.requests[0]
    if style == "slack":
        assert set(body) == {"text"}
        assert f"{len(expected)} new takeover signals" in body["text"]
    elif style == "teams":
        card = body["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert len(card["content"]["body"]) == 1 + len(expected)
    else:
        assert len(body["signals"]) == len(expected)
    assert "SECRET-TOKEN-42" not in out + err


def test_slack_text_cannot_carry_links_or_mentions() -> None:
    from login_audit.delivery import webhook_body

    signal_body = {
        "id": "x",
        "kind": "account-created",
        "summary": "a created <https://evil.example|click> <!channel>",
        "occurredAt": "2026-11-22T10:00:00.000000Z",
    }
    text = webhook_body([signal_body], "slack")["text"]
    assert "<https://evil" not in text and "<!channel>" not in text
    assert "&lt;https://evil.example|click&gt;" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("http://hooks.example.com/x", "refusing the plain http:// webhook"),
        ("not a url", "does not hold one http(s) URL"),
        ("https://a.example/x https://b.example/y", "does not hold one http(s) URL"),
    ],
)
def test_bad_webhook_files_are_refused_in_one_line(
    cli, content: str, message: str, tmp_path: Path
) -> None:
    hook = tmp_path / "hook.url"
    hook.write_text(content)
    hook.chmod(0o600)
    args = [
        "watch",
        "--no-sync",
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--webhook-file",
        str(hook),
    ]
    code, _, err = cli(args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert "hooks.example.com/x" not in err


def test_a_missing_webhook_file_is_one_line(cli, tmp_path: Path) -> None:
    args = [
        "watch",
        "--no-sync",
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--webhook-file",
        str(tmp_path / "none"),
    ]
    code, _, err = cli(args)
    assert code == 2 and "cannot read webhook file" in err and "Traceback" not in err


# -- concurrency, state, loop -----------------------------------------------------------------


def test_a_second_watcher_of_the_tenant_refuses(
    cli, takeover, start_sim, archive_url: str, tmp_path: Path
) -> None:
    sim = start_sim(takeover[0])
    archive, key = synced(sim, archive_url)
    out = tmp_path / "s.jsonl"
    with archive.lock(archive.tenant_id(key), "watch"):
        code, _, err = cli(watch_args(sim, archive_url, "--no-sync", "--jsonl", str(out)))
    assert code == 4
    assert "another login-audit process is watching this tenant" in err
    assert not out.exists()
    archive.close()


def test_the_migration_numbers_records_stored_before_it(archive_url: str, monkeypatch) -> None:
    from login_audit.archive import sql

    monkeypatch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:2])
    old = open_archive(archive_url)
    assert isinstance(old, SqlArchive)
    tenant = old.tenant_id(TenantKey("visionone", "us"))
    keys = [hashlib.sha256(f"k{n}".encode()).hexdigest() for n in range(3)]
    for key, when in zip(keys, (300, 100, 200), strict=True):
        old._execute(
            "INSERT INTO records (tenant_id, key, logged_at, category, activity, result, kind,"
            " principal, account_id, raw)"
            " VALUES (?, ?, ?, 'c', 'a', 'r', 'other', 'p', NULL, '{}')",
            (tenant, key, when),
        )
    old.close()
    monkeypatch.undo()
    archive = open_archive(archive_url)
    assert isinstance(archive, SqlArchive)
    assert "0003_watch_signals" in archive.migrations()
    rows = archive._all("SELECT key, seq FROM records ORDER BY seq")
    assert [(bytes(key).hex(), seq) for key, seq in rows] == [
        (keys[1], 1),
        (keys[2], 2),
        (keys[0], 3),
    ]  # oldest first
    store = SignalStore(archive)
    assert [r.key for _, r in store.records_after(tenant, 1, 10)] == [keys[2], keys[0]]
    archive.close()


def test_repeat_runs_at_the_interval_without_sleeping_for_real() -> None:
    codes = iter([0, 4, 0])
    slept: list[float] = []
    assert repeat(lambda: next(codes), 900, sleep=slept.append, runs=3) == 0
    assert slept == [900, 900]


# -- audit --notify ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_audit_notify_tells_the_owners_what_became_stale(
    cli, start_sim, receiver: Receiver, tmp_path: Path
) -> None:
    from login_audit.simulator import build_tenant

    tenant = build_tenant(seed=21, accounts=60)
    sim = start_sim(tenant)
    args = [
        "audit",
        "--base-url",
        sim.base_url,
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--output-dir",
        str(tmp_path / "out"),
        "--notify",
        "--webhook-format",
        "json",
        "-q",
    ]
    env = {"TMV1_TOKEN": sim.token, "LOGIN_AUDIT_WEBHOOK_URL": receiver.url}
    code, out, err = cli(args, env)
    assert code == 0, err
    ((_, first),) = receiver.requests
    stale = {r["UserId"] for r in tenant.truth()["remove"]}
    assert set(first["audit"]["newlyStale"]) == stale and first["audit"]["complete"]
    # Nothing new: nobody is told again.
    code, _, err = cli(args, env)
    assert code == 0 and len(receiver.requests) == 1, err
    # An account appears that never logs on: only it is news.
    sim.add_account(
        {
            "id": "new-1",
            "email": "late.joiner@example.com",
            "role": "Operator",
            "authType": "local",
            "status": "enabled",
        }
    )
    code, _, err = cli([*args, "--grace-days", "0"], env)
    assert code == 0, err
    assert receiver.requests[-1][1]["audit"]["newlyStale"] == ["late.joiner@example.com"]
    # The receiver is down: the audit's reports are written, and the exit code says so.
    receiver.answer = lambda n: (503, {})
    sim.add_account(
        {
            "id": "new-2",
            "email": "later.joiner@example.com",
            "role": "Operator",
            "authType": "local",
            "status": "enabled",
        }
    )
    code, out, err = cli(
        [*args, "--grace-days", "0", "--max-attempts", "2", "--backoff-base", "0"], env
    )
    assert code == 4 and "the owners of default were not notified" in err
    assert "SECRET-TOKEN-42" not in out + err
    assert (tmp_path / "out" / "filtered_accounts_report.csv").exists()
    # Back up: the owners hear of the account they missed.
    receiver.answer = lambda n: (200, {})
    code, _, err = cli([*args, "--grace-days", "0"], env)
    assert code == 0, err
    assert receiver.requests[-1][1]["audit"]["newlyStale"] == ["later.joiner@example.com"]


@pytest.mark.e2e
def test_audit_all_notify_tells_each_tenants_owners(
    cli, start_sim, receiver: Receiver, tmp_path: Path
) -> None:
    """With --all, each tenant's owners hear of their own newly stale accounts, once."""
    from login_audit.simulator import build_tenant
    from tests.test_fleet import fleet_config

    token = "fleet-token-0123456789abcdef"
    tenants = {"eu": build_tenant(seed=21, accounts=40), "us": build_tenant(seed=22, accounts=40)}
    sims = {name: start_sim(tenant, token=token) for name, tenant in tenants.items()}
    config = fleet_config(tmp_path, *((name, "visionone", s.base_url) for name, s in sims.items()))
    args = ["audit", "--all", "--config", str(config), "--notify", "-q"]
    args += ["--archive", str(tmp_path / "a.sqlite3"), "--output-dir", str(tmp_path / "out")]
    env = {"TOKEN": token, "LOGIN_AUDIT_WEBHOOK_URL": receiver.url}
    code, _, err = cli(args, env)
    assert code == 0, err
    told = {body["audit"]["tenant"]: body["audit"] for _, body in receiver.requests}
    assert set(told) == {"eu", "us"} and len(receiver.requests) == 2
    for name, tenant in tenants.items():
        assert set(told[name]["newlyStale"]) == {r["UserId"] for r in tenant.truth()["remove"]}
    code, _, err = cli(args, env)  # nothing new for anyone: nobody is told again
    assert code == 0 and len(receiver.requests) == 2, err
    receiver.answer = lambda n: (503, {})  # down: the run says so, per tenant
    new = {"id": "n-1", "email": "new@example.com", "role": "Operator"}
    sims["eu"].add_account({**new, "authType": "local", "status": "enabled"})
    code, _, err = cli([*args, "--grace-days", "0", "--max-attempts", "1"], env)
    assert code == 4 and "the owners of eu were not notified" in err, err
    assert "SECRET-TOKEN-42" not in err


def test_audit_notify_without_a_webhook_is_refused_before_any_work(cli, tmp_path: Path) -> None:
    args = [
        "audit",
        "--base-url",
        "http://127.0.0.1:9",
        "--notify",
        "--archive",
        str(tmp_path / "a"),
    ]
    code, _, err = cli(args, {"TMV1_TOKEN": "t"})
    assert code == 2 and "--notify needs a webhook" in err


@pytest.mark.e2e
def test_the_html_report_shows_the_signals_of_the_period(
    cli, takeover, start_sim, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    archive = str(tmp_path / "a.sqlite3")
    audit = ["audit", "--base-url", sim.base_url, "--archive", archive, "-q"]
    out = tmp_path / "out"
    code, _, err = cli([*audit, "--output-dir", str(out)], {"TMV1_TOKEN": sim.token})
    assert code == 0, err
    assert "Takeover signals" not in (out / "audit_report.html").read_text()  # no watch yet
    code, _, err = cli(
        watch_args(sim, archive, "--jsonl", str(tmp_path / "s.jsonl")), {"TMV1_TOKEN": sim.token}
    )
    assert code == 0, err
    code, _, err = cli([*audit, "--output-dir", str(out)], {"TMV1_TOKEN": sim.token})
    page = (out / "audit_report.html").read_text()
    assert f"Takeover signals in the last 90 days: {len(expected)}</h2>" in page
    for item in expected:
        assert item["subject"] in page
    assert "Dormant account reactivated" in page


@pytest.mark.e2e
def test_the_takeover_demo_finds_what_was_planted(cli, tmp_path: Path) -> None:
    args = ["demo", "--scenario", "takeover", "--accounts", "60", "--output-dir", str(tmp_path)]
    code, out, err = cli(args)
    assert "takeover-signals.jsonl" in out
    assert code == 0, err
    assert "the signals match the" in err
    assert (tmp_path / "takeover-signals.jsonl").exists()


# -- careless use -----------------------------------------------------------------------------


def test_an_output_that_is_a_directory_is_refused_before_any_work(cli, tmp_path: Path) -> None:
    args = ["watch", "--no-sync", "--archive", str(tmp_path / "a"), "--jsonl", str(tmp_path)]
    code, _, err = cli(args)
    assert code == 2 and "is not a regular file" in err and "Traceback" not in err
    args[-1] = str(tmp_path / "missing" / "s.jsonl")
    code, _, err = cli(args)
    assert code == 2 and "does not exist" in err


def test_no_sync_on_a_mistyped_archive_is_refused_not_created(cli, tmp_path: Path) -> None:
    missing = tmp_path / "archvie.sqlite3"
    args = ["watch", "--no-sync", "--archive", str(missing), "--jsonl", str(tmp_path / "s")]
    code, _, err = cli(args)
    assert code == 2 and f"no archive at {missing}" in err and "Traceback" not in err
    assert not missing.exists()


@pytest.mark.e2e
def test_vendor_down_still_watches_what_is_stored(cli, takeover, start_sim, tmp_path: Path) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    archive, key = synced(sim, str(tmp_path / "a.sqlite3"))
    archive.close()
    out = tmp_path / "s.jsonl"
    # The same tenant, but its API no longer answers.
    args = [
        "watch",
        "--base-url",
        "http://" + key.region,
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--jsonl",
        str(out),
        "--max-attempts",
        "1",
    ]
    sim.stop()
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 4 and "INCOMPLETE sync" in err
    assert reported(out) == planted(expected)


@pytest.mark.e2e
def test_one_failing_tenant_does_not_stop_the_others(
    cli, takeover, start_sim, tmp_path: Path
) -> None:
    tenant, expected = takeover
    sim = start_sim(tenant)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[tenant]]\nname = "broken"\nplatform = "visionone"\nbase_url = "{sim.base_url}"\n'
        f'token_env = "MISSING_TOKEN"\n\n[[tenant]]\nname = "good"\nplatform = "visionone"\n'
        f'base_url = "{sim.base_url}"\ntoken_env = "GOOD_TOKEN"\n'
    )
    out = tmp_path / "s.jsonl"
    args = [
        "watch",
        "--all",
        "--config",
        str(config),
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--jsonl",
        str(out),
    ]
    code, _, err = cli(args, {"GOOD_TOKEN": sim.token})
    assert code == 2 and "watch broken: error:" in err and "MISSING_TOKEN" in err
    assert planted([s for s in lines(out) if s["tenant"]["name"] == "good"]) == planted(expected)


@pytest.mark.e2e
def test_skip_history_starts_from_now(cli, takeover, start_sim, tmp_path: Path):
    sim = start_sim(takeover[0])
    out = tmp_path / "s.jsonl"
    args = watch_args(sim, str(tmp_path / "a.sqlite3"), "--jsonl", str(out), "--skip-history")
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0 and " 0 new signals" in err
    assert not out.exists() or out.read_text() == ""


def test_chat_digests_stay_small() -> None:
    from login_audit.delivery import webhook_body

    many = [{**ONE_SIGNAL, "id": f"s{n}", "summary": f"signal {n}"} for n in range(500)]
    text = webhook_body(many, "slack")["text"]
    assert "500 new takeover signals" in text and "and 450 more" in text
    assert len(text) < 10_000
    card = webhook_body(many, "teams")["attachments"][0]["content"]
    assert len(card["body"]) == 1 + 51
    assert len(webhook_body(many, "json")["signals"]) == 500


@pytest.mark.parametrize(
    "option",
    [
        ["--failed-window", "99999999999"],
        ["--dormant-days", "0"],
        ["--failed-threshold", "0"],
        ["--webhook-format", "discord"],
    ],
)
def test_bad_thresholds_are_one_line(cli, option: list[str], tmp_path: Path):
    args = ["watch", "--no-sync", "--archive", str(tmp_path / "a"), *option]
    code, _, err = cli(args)
    assert code == 2 and option[0] in err and len(err.strip().splitlines()) == 1


@pytest.mark.e2e
def test_display_name_logons_are_not_attributed_silently(cli, start_sim, tmp_path: Path) -> None:
    """A vendor that names people by display name: without a map the watch says it cannot
    tell (exit 4); with the audit's identity map every planted signal is found again."""
    from login_audit.simulator.behaviours import identity_map

    tenant, expected = build_takeover_tenant(seed=7, accounts=150)
    sim = start_sim(tenant, behaviours=("display-names",))
    archive = str(tmp_path / "blind.sqlite3")
    out = tmp_path / "blind.jsonl"
    code, _, err = cli(watch_args(sim, archive, "--jsonl", str(out)), {"TMV1_TOKEN": sim.token})
    assert code == 4, err
    assert "NOT ATTRIBUTED" in err and "--identity-map" in err

    mapping = tmp_path / "identities.csv"
    mapping.write_text(
        "Identity,UserId\n" + "".join(f"{a},{b}\n" for a, b in identity_map(tenant)),
        encoding="utf-8",
    )
    archive = str(tmp_path / "mapped.sqlite3")
    out = tmp_path / "mapped.jsonl"
    args = watch_args(sim, archive, "--jsonl", str(out), "--identity-map", str(mapping))
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 0, err
    found = reported(out)
    for kind in ("dormant-reactivated", "failed-logon-burst"):
        assert {k for k in planted(expected) if k[0] == kind} <= set(found), kind


@pytest.mark.e2e
def test_a_signals_file_that_is_a_symbolic_link_is_refused(
    cli, takeover, start_sim, tmp_path: Path
) -> None:
    tenant, _ = takeover
    sim = start_sim(tenant)
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    link = tmp_path / "signals.jsonl"
    link.symlink_to(victim)
    args = watch_args(sim, str(tmp_path / "a.sqlite3"), "--jsonl", str(link))
    code, _, err = cli(args, {"TMV1_TOKEN": sim.token})
    assert code == 2 and "symbolic link" in err, err
    assert victim.read_text() == "precious\n"
