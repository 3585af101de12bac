"""Ctrl-C and SIGTERM, raised where the run can take them.

Python raises :class:`KeyboardInterrupt` at whatever line the main thread is running when
the signal comes. Two places cannot take it:

- the import system's own bookkeeping (``<frozen importlib._bootstrap>``): an interrupt
  raised between taking and releasing the global import lock leaves the lock held, and
  every other thread that imports afterwards waits forever (the process then hangs at
  exit, waiting for that thread); raised inside a weak-reference callback there, it is
  printed as "Exception ignored" and the run goes on as if Ctrl-C had not been pressed;
- the start of the process, before the command line can report anything.

While :func:`handled` is in force, an interrupt that comes in the import system is raised a
few milliseconds later, once the main thread has left it; one that comes while the
handlers hold it (``handled(hold=True)``: while the console script imports the command
line) is raised by :func:`deliver_pending`. SIGTERM raises
:class:`~login_audit.errors.Terminated` the same way, once: a second SIGTERM must not break
off the clean-up the first one started.

It imports nothing but :mod:`signal`: the console script installs it before anything else,
so that the moments in which Ctrl-C prints a traceback are as few as they can be.
"""

from __future__ import annotations

import signal

from login_audit.errors import Terminated

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType, TracebackType

__all__ = [
    "MAX_DEFERRALS",
    "RETRY_SECONDS",
    "deliver_pending",
    "finishing",
    "handled",
    "spare_this_thread",
    "stopping",
]

#: How long an interrupt that came in the import system waits before it is tried again.
RETRY_SECONDS = 0.005
#: How many times it waits (a second in all): a main thread stuck inside the import
#: system (waiting for a module another thread imports) still stops on Ctrl-C.
MAX_DEFERRALS = 200

_IMPORT_SYSTEM = "<frozen importlib._bootstrap"


class _Delivery:
    """What the handlers share; they run on the main thread only, one at a time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.installed = False
        self.holding = False
        self.pending: type[KeyboardInterrupt] | None = None
        self.deferrals = 0
        self.stopping: type[KeyboardInterrupt] | None = None


_delivery = _Delivery()


def _in_import_system(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code.co_filename.startswith(_IMPORT_SYSTEM)


def _deliver(frame: FrameType | None) -> None:
    exc = _delivery.pending
    if exc is None or _delivery.holding:
        return
    if _in_import_system(frame) and _delivery.deferrals < MAX_DEFERRALS:
        _delivery.deferrals += 1
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    if _delivery.deferrals:
        signal.setitimer(signal.ITIMER_REAL, 0)  # delivered: the retry has nothing to do
    _delivery.pending = None
    _delivery.deferrals = 0
    raise exc


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _delivery.stopping = _delivery.stopping or KeyboardInterrupt
    if _delivery.pending is None:
        _delivery.pending = KeyboardInterrupt
    _deliver(frame)


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _delivery.stopping = Terminated
    _delivery.pending = Terminated
    _deliver(frame)


def _on_retry(signum: int, frame: FrameType | None) -> None:
    _deliver(frame)


class handled:  # a context manager named as the function it stands for
    """Install the handlers for the block; with ``hold``, record interrupts until
    :func:`deliver_pending`.

    On a thread other than the main one, and when they are already installed, it does
    nothing. With ``process`` (the console script), the block is the rest of the process:
    at its end Ctrl-C and SIGTERM get their default action back (the process ends at once)
    instead of the handlers found at the start. Ctrl-C is taken over only where Python's
    own handler is in place: a run started with SIGINT ignored (``nohup``, a background
    job of a script) keeps ignoring it.
    """

    def __init__(self, *, hold: bool = False, process: bool = False) -> None:
        self._hold = hold
        self._process = process
        self._previous: dict[int, object] = {}

    def __enter__(self) -> None:
        if _delivery.installed:
            return
        _delivery.holding = self._hold  # before the first handler: nothing slips through
        try:
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_terminate)
        except ValueError:  # not the main thread: only the main thread handles signals
            _delivery.holding = False
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_interrupt)
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _on_retry)
        _delivery.installed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._previous:
            return
        _delivery.holding = True  # a signal now is only recorded: the run has ended
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            if self._process and signum in (signal.SIGINT, signal.SIGTERM):
                # The process only exits now: another Ctrl-C or SIGTERM ends it at once,
                # as the signal's default does, not with a traceback from the interpreter's
                # last steps (which wait for background threads).
                handler = signal.SIG_IGN if handler == signal.SIG_IGN else signal.SIG_DFL
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        _delivery.reset()


#: The signals that stop a run: only the main thread may receive them.
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGALRM})


def spare_this_thread() -> None:
    """Leave Ctrl-C and SIGTERM to the main thread: called first by every thread a run
    starts (slices, listings, tenants, read-ahead, background copies).

    The kernel hands a signal sent to the process to any thread that does not block it.
    Python runs the handler on the main thread only, and only once that thread runs again:
    a main thread waiting for a lock or a future (the slices, the tenants) is not woken,
    and the run went on as if the signal had never come (it waited out the rate limit).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def stopping() -> type[KeyboardInterrupt] | None:
    """What stopped the run (:class:`KeyboardInterrupt` for Ctrl-C,
    :class:`~login_audit.errors.Terminated` for SIGTERM) since the handlers were installed,
    or None: threads working for the run should stop at their next step. A plain
    attribute, set by the handler without taking a lock, read without one."""
    return _delivery.stopping


def finishing() -> None:
    """The run's outcome is being reported: from now on a signal is only recorded (the
    process ends anyway; raised now, it would cut the report short with a traceback).
    Without the handlers installed (a program using the library) it does nothing."""
    if _delivery.installed:
        _delivery.holding = True


def deliver_pending() -> None:
    """End the hold; raise the interrupt that came during it, if one did."""
    _delivery.holding = False
    _deliver(None)
