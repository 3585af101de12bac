"""Exclusive, non-waiting file locks that the operating system releases if we die."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from login_audit.errors import ArchiveBusyError, ConfigError
from login_audit.http import url_origin


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


def default_state_dir() -> Path:
    """The per-user folder of login-audit's state (``~/.local/state/login-audit`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("login-audit", appauthor=False))


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can enter: created 0700, never a symbolic link.

    An existing folder must be this user's own (a folder of another user could hold a lock
    file that user keeps open forever, or swap it for a link); it is narrowed to 0700.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create the state folder {path}: {exc.strerror}") from None
    problem = ""
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "it is not a folder (a symbolic link is refused)"
    elif info.st_uid != os.geteuid():
        problem = "it belongs to another user"
    if problem:
        raise ConfigError(f"cannot use the state folder {path}: {problem}; move it aside")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def tenant_lock_path(state_dir: Path, platform: str, base_url: str, credential: str) -> Path:
    """The lock file of one tenant: platform, API origin and credential digest, hashed
    into one name.

    The origin is the scheme, host and port of ``base_url`` (a default port written out is
    the same origin), so ``--region eu`` and the same URL given by ``--base-url`` meet at
    one lock. A token or API key belongs to one tenant, so it tells tenants apart where
    the local ``--tenant`` name cannot (two names can label one tenant).
    """
    scheme, host, port = url_origin(base_url.strip())
    origin = f"{scheme}://{host or ''}:{port}"
    parts = (platform, origin, credential)
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return state_dir / f"apply-{digest[:32]}.lock"
