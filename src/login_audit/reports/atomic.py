"""Files are written whole or not at all, and readable only by their owner."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from login_audit.errors import ConfigError


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and check that we can write into it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output directory {path}: {exc.strerror}; choose another with "
            "--output-dir"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write to output directory {path}: permission denied; choose another "
            "with --output-dir"
        )
    return path


@contextlib.contextmanager
def atomic_text(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """Open a private temporary file beside ``path``; rename it over ``path`` on success.

    The temporary file is created with mode 0600 from the start (no window in which it is
    readable by others), flushed and fsynced before the rename, and removed on failure.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomic(
    path: Path, write: Callable[[IO[str]], object], *, newline: str | None = None
) -> Path:
    """Write ``path`` atomically with ``write(handle)``; turn disk errors into one clear line."""
    try:
        with atomic_text(path, newline=newline) as handle:
            write(handle)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}; check free space and permissions"
        ) from None
    return path
