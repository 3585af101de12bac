"""Exclusive, non-waiting file locks that the operating system releases if we die."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from login_audit.errors import ArchiveBusyError, ConfigError


@contextlib.contextmanager
def file_lock(path: Path | str, busy: str) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (created 0600, never through a symlink).

    Raises ``ArchiveBusyError(busy)`` at once when another process holds it: waiting
    would only act later on what the other process is changing now. The file is left in
    place, since removing a lock file races with the next process that opens it.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveBusyError(busy) from None
        yield
    finally:
        os.close(fd)
