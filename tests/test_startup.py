"""Start-up: the version, the top-level help and one command's help load only what they need.

A fresh interpreter is the point here (what a module pulls in is decided at its first
import), so these run ``python -c`` in a child process; they check which modules were
imported, never how long it took.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

HEAVY = ("httpx", "rich", "psycopg", "login_audit.simulator", "login_audit.archive")

PROBE = """
import sys
from login_audit.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("LOADED", code, ",".join(heavy) or "-", file=sys.stderr)
"""


def loaded_by(*args: str) -> tuple[int, set[str], str]:
    """Exit code, heavy modules imported and output of ``login-audit ARGS`` in a child."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    line = proc.stderr.strip().splitlines()[-1].split()
    assert line[0] == "LOADED", proc.stderr
    heavy = set() if line[2] == "-" else set(line[2].split(","))
    return int(line[1]), heavy, proc.stdout + proc.stderr


def test_version_imports_no_command() -> None:
    code, heavy, out = loaded_by("--version")
    assert code == 0 and "login-audit, version" in out
    assert heavy == set()


@pytest.mark.parametrize("command", ["apply", "completion"])
def test_a_command_loads_what_it_needs_not_the_simulator(command: str) -> None:
    code, heavy, out = loaded_by(command, "--help")
    assert code == 0 and "Usage: login-audit" in out
    assert "login_audit.simulator" not in heavy


def test_top_level_help_lists_every_command() -> None:
    code, _, out = loaded_by("--help")
    assert code == 0
    names = ("audit", "apply", "sync", "export", "archive", "doctor", "demo", "completion", "watch")
    for name in names:
        assert f"  {name} " in out


def test_an_option_before_its_command_still_gets_the_hint() -> None:
    code, _, out = loaded_by("--days", "30", "audit")
    assert code == 2
    assert "--days is an option of 'audit'" in out and "login-audit audit --days 30" in out


def test_the_collector_is_relaxed_while_a_command_runs_and_restored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python's collector walked every live object each 700 allocations (40% of writing the
    reports of 50,000 accounts); a command runs with fewer collections, and a program that
    calls ``main`` in-process gets its own settings back."""
    import gc

    import login_audit.cli as cli_module

    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(cli_module, "_main", lambda argv: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    cli_module.main(["--version"])
    assert seen and seen[0][0] == cli_module.GC_THRESHOLD > before[0]
    assert seen[0][1:] == before[1:]
    assert gc.get_threshold() == before


def test_background_imports_are_waited_for_at_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails at once must not exit while a background thread still imports:
    the interpreter tears modules down under a daemon thread, which can end the process
    with SIGSEGV (seen once in `doctor --help`). Such threads are not daemons."""
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    from login_audit.reports import prepare_in_background

    prepare_in_background()()
    import login_audit.cli as cli_module

    monkeypatch.setattr(cli_module, "cli", _NoCommand())
    with pytest.raises(SystemExit):
        cli_module.main(["audit", "--region", "eu"])
    names = {t.name: t.daemon for t in started}
    assert names.get("reports-prepare") is False and names.get("tls-context") is False, names


class _NoCommand:
    """Stands for the click group: the test needs only what runs before a command."""

    def main(self, **kwargs: object) -> None:
        return None
