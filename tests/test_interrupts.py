"""Ctrl-C and SIGTERM are raised where the run can take them, never inside the import system.

An interrupt raised there can leave Python's import lock held: a thread importing in the
background then waits forever and the process never exits (an interrupted audit hung in CI
this way), or the interrupt is swallowed as "Exception ignored" and the run goes on.
These tests raise real signals in this process (the handlers run on the main thread) and
drive the retry timer by hand, so nothing waits for it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from login_audit import interrupts
from login_audit.errors import Terminated


def _in_import_system() -> Callable[[int], str]:
    """A step of the import system as the handler sees it: the signal lands in its frame."""

    def bookkeeping(signum: int) -> str:
        signal.raise_signal(signum)
        return "released"

    bookkeeping.__code__ = bookkeeping.__code__.replace(co_filename="<frozen importlib._bootstrap>")
    return bookkeeping


def _timer_armed() -> bool:
    return signal.getitimer(signal.ITIMER_REAL)[0] > 0


@pytest.fixture(autouse=True)
def _as_in_a_terminal() -> Iterator[None]:
    """Ctrl-C as a terminal's foreground command gets it: a suite started in the background
    of a script inherits SIGINT ignored, which the CLI rightly keeps ignoring."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_inside_the_import_system_waits_until_it_is_left() -> None:
    bookkeeping = _in_import_system()
    with interrupts.handled():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # anywhere else it is raised at once
        assert bookkeeping(signal.SIGINT) == "released", "the step must run to its end"
        assert _timer_armed(), "the interrupt must be retried, not forgotten"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGALRM)  # the retry, now outside the import system
        assert not _timer_armed()


def test_a_retry_that_still_finds_the_import_system_waits_again() -> None:
    bookkeeping = _in_import_system()
    with interrupts.handled():
        bookkeeping(signal.SIGINT)
        bookkeeping(signal.SIGALRM)
        assert _timer_armed()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGALRM)


def test_a_main_thread_stuck_in_the_import_system_still_stops(monkeypatch) -> None:
    monkeypatch.setattr(interrupts, "MAX_DEFERRALS", 3)
    bookkeeping = _in_import_system()
    with interrupts.handled():
        bookkeeping(signal.SIGINT)
        for _ in range(2):
            bookkeeping(signal.SIGALRM)
        with pytest.raises(KeyboardInterrupt):
            bookkeeping(signal.SIGALRM)


def test_sigterm_is_raised_once_and_waits_out_the_import_system_too() -> None:
    bookkeeping = _in_import_system()
    with interrupts.handled():
        bookkeeping(signal.SIGTERM)
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGALRM)
        signal.raise_signal(signal.SIGTERM)  # a second one must not break off the clean-up
    assert signal.getsignal(signal.SIGTERM) is not interrupts._on_terminate


def test_a_held_interrupt_is_raised_when_delivered_not_before() -> None:
    with interrupts.handled(hold=True):
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            interrupts.deliver_pending()
        interrupts.deliver_pending()  # once


def test_the_handlers_are_put_back_and_nothing_is_left_pending() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    with interrupts.handled(hold=True):
        signal.raise_signal(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before
    assert not _timer_armed()
    with interrupts.handled():
        interrupts.deliver_pending()  # the last block's interrupt is gone with it


def test_ctrl_c_ignored_by_the_parent_stays_ignored() -> None:
    """``nohup`` or a background job of a script starts the run with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.handled():
            signal.raise_signal(signal.SIGINT)
            interrupts.deliver_pending()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_on_another_thread_it_does_nothing() -> None:
    seen: list[object] = []

    def run() -> None:
        with interrupts.handled(hold=True):
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


#: Starts the console script as a terminal would, and presses Ctrl-C the moment the command
#: line begins to load: the earliest point after the handlers are in.
_CTRL_C_WHILE_LOADING = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)

class PressCtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "login_audit.cli":
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGINT)
        return None

sys.meta_path.insert(0, PressCtrlC())
sys.argv[1:] = ["--json", "audit"]
from login_audit.__main__ import main
main()
"""


def test_ctrl_c_while_the_command_line_loads_is_reported_not_a_traceback(
    process_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """A real process: the console script's start is the point."""
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_WHILE_LOADING],
        capture_output=True,
        env=process_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 130, proc.stderr
    assert b"login-audit: error: interrupted" in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b'"exitCode": 130' in proc.stdout  # --json still prints its one document


def test_the_console_script_is_the_entry_that_handles_them_from_the_start() -> None:
    import tomllib

    from tests.conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["login-audit"] == "login_audit.__main__:main"
