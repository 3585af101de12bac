"""Files are written whole or not at all, and readable only by their owner."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from login_audit.errors import ConfigError

#: Flags for appending to a file of ours: never through a symbolic link, which someone
#: could plant where a scheduled run writes (``/tmp/login-audit.log``) to have it append
#: to, and chmod, the file it points to.
APPEND_FLAGS = os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


LINK_REFUSED = "it is a symbolic link, which is refused; give the path of the file itself"


#: Why a device, pipe, socket or folder is refused where we write a file of ours.
NOT_REGULAR = "it is not a regular file (a device, pipe, socket or folder); name a file"


def open_failure(exc: OSError) -> str:
    """Why opening with :data:`APPEND_FLAGS` failed, in words."""
    return LINK_REFUSED if exc.errno == errno.ELOOP else str(exc.strerror or exc)


def is_unusual(path: Path) -> bool:
    """True when ``path`` exists as something other than a regular file (links followed)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


#: The first bytes of every SQLite database.
SQLITE_HEADER = b"SQLite format 3\x00"


def looks_binary(fd: int) -> bool:
    """True when the file's first 4 KiB hold a NUL byte (a SQLite header has one): no text."""
    head = os.pread(fd, 4096, 0)
    return head.startswith(SQLITE_HEADER) or b"\x00" in head


def open_private_append(
    path: Path, flags: int, vet: Callable[[int], None], *, tighten: bool
) -> tuple[int, bool]:
    """Open a file for appending (:data:`APPEND_FLAGS` plus ``flags``); is it new?

    Only a regular file is opened: opening a pipe could block, and a device such as
    ``/dev/null`` is not ours to chmod. It is checked before opening, and again on the
    opened file, in case it was swapped meanwhile. A file this call creates is made 0600.
    An existing one is first handed to ``vet``, which raises for a file that is not ours,
    and is made 0600 only when ``tighten``. Raises :class:`OSError`, whose ``strerror``
    says why (see :func:`open_failure`), or what ``vet`` raises.
    """
    if is_unusual(path) or os.path.isdir(path):
        raise OSError(errno.EINVAL, NOT_REGULAR)
    wanted = flags | APPEND_FLAGS | os.O_NONBLOCK
    try:
        fd, created = os.open(path, wanted | os.O_EXCL, 0o600), True
    except FileExistsError:
        fd, created = os.open(path, wanted & ~os.O_CREAT), False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR)
        if not created:
            vet(fd)
        if created or tighten:
            os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def check_output_dir(path: Path) -> Path:
    """Fail now, leaving nothing behind, if ``path`` could not be created or written later.

    A run that fails before it writes (a refused token, a dry run) must not leave an empty
    folder behind, and one that could never write must fail before its network work: the
    missing folders are created to prove it, then removed again.
    """
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.insert(0, folder)
    created: list[Path] = []
    try:
        for folder in missing:
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                if not folder.is_dir():
                    raise
                continue  # another run made it meanwhile: it is not ours to remove
            created.append(folder)
        return ensure_dir(path)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {path}: {_why(path, exc)}") from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _why(path: Path, exc: OSError) -> str:
    """What stops a folder from being created, in words; a dangling link names its target."""
    for folder in (path, *path.parents):
        if folder.is_symlink() and not folder.exists():
            return (
                f"{folder} is a symbolic link to {os.readlink(folder)}, which does not exist; "
                "choose another with --output-dir"
            )
    return f"{exc.strerror or exc}; choose another with --output-dir"


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and check that we can write into it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {path}: {_why(path, exc)}") from None
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
    _fsync_dir(directory)


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


STAGING_PREFIX = ".login-audit-run-"


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    """Hold an ``flock`` on ``directory`` itself (waiting: moving a set takes moments)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_abandoned_staging(directory: Path) -> None:
    """Remove staging folders of runs that died; a live run holds a lock on its own."""
    for candidate in directory.glob(f"{STAGING_PREFIX}*"):
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a run in progress
        else:
            shutil.rmtree(candidate, ignore_errors=True)
        finally:
            os.close(fd)


def replace_set(directory: Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Write a set of files into a private staging folder, then move them into ``directory``.

    Writing takes the time (a kill then leaves only the staging folder, removed by the next
    run, and the previous set whole); the moves are renames within one file system. They
    run in the order ``write`` returns the files: the cleanup CSV first and the JSON report
    last, so an interruption between two renames pairs a new CSV with an older
    ``windowEnd``, which makes ``apply`` re-check more logons, never fewer.
    """
    _remove_abandoned_staging(directory)
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
    except OSError as exc:
        raise ConfigError(
            f"cannot write into {directory}: {exc.strerror}; choose another with --output-dir"
        ) from None
    lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staged = write(staging)
        # Two runs writing one folder move their sets one after the other: the folder then
        # holds one run's whole set (whichever came last), never a mix of both.
        with _folder_lock(directory):
            try:
                for path in sorted(staged, key=lambda p: p.suffix == ".json"):
                    os.replace(path, directory / path.name)
            except OSError as exc:
                raise ConfigError(
                    f"cannot move the reports into {directory}: {exc.strerror}; check permissions"
                ) from None
            _fsync_dir(directory)
        return [directory / path.name for path in staged]
    finally:
        os.close(lock)
        shutil.rmtree(staging, ignore_errors=True)


def remove_files(directory: Path, names: list[str]) -> None:
    """Remove the files ``names`` of ``directory``, and the folder when nothing else is left."""
    if not directory.is_dir():
        return
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()
