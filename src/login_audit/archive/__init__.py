"""The event store: one interface (``base.Archive``), SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from login_audit.archive.base import Archive, TenantKey
from login_audit.config import Secret
from login_audit.errors import ArchiveError, ConfigError
from login_audit.redaction import LIBPQ_PASSWORD, redact_dsn, redact_url

__all__ = [
    "Archive",
    "TenantKey",
    "archive_failure",
    "archive_secrets",
    "default_archive_path",
    "is_postgres",
    "open_archive",
]


def default_archive_path() -> Path:
    """``archive.sqlite3`` in the platform's user data directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("login-audit", appauthor=False)) / "archive.sqlite3"


#: The keywords a libpq connection string (``host=db dbname=audit user=la``) starts with.
_LIBPQ_START = re.compile(
    r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|sslrootcert|"
    r"connect_timeout|application_name|options|target_session_attrs)\s*=",
    re.IGNORECASE,
)


#: A URL whose ``//`` went missing (``postgresql:/user:pw@host/db``): not a file name.
_MANGLED_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!//)")


def _mangled_url(spec: str) -> str | None:
    """The scheme of a spec that reads as a URL without its ``//``, else None."""
    match = _MANGLED_URL.match(spec)
    if match and ("@" in spec or match.group(1).lower() in ("postgres", "postgresql")):
        return match.group(1)
    return None


def is_postgres(spec: str) -> bool:
    """True for a PostgreSQL URL or a libpq keyword string, as PostgreSQL users write them."""
    return spec.startswith(("postgresql://", "postgres://")) or bool(_LIBPQ_START.match(spec))


def archive_secrets(spec: str | None) -> list[str]:
    """What of an archive spec must never be shown: the whole PostgreSQL connection string,
    and the password of any URL or keyword form."""
    if spec and _mangled_url(spec):
        return [spec]  # no telling where its password is: it is refused, naming the scheme
    if not spec or not (is_postgres(spec) or "://" in spec):
        return []
    # Another scheme is refused unopened: hiding it whole would hide the typo too.
    found = [spec] if is_postgres(spec) else []
    if "://" in spec:
        password = urlsplit(spec).password
        if password:
            found += [password, unquote(password)]
    for match in LIBPQ_PASSWORD.finditer(spec):
        value = match.group(2)
        found.append(value)
        if value.startswith("'"):
            found.append(re.sub(r"\\(.)", r"\1", value[1:-1]))
    return [secret for secret in found if secret]


def open_archive(spec: str | None, *, existing: bool = False, read_only: bool = False) -> Archive:
    """Open the archive named by ``spec``: a file path, ``postgresql://…``, or the default.

    ``existing`` refuses a SQLite file that does not exist instead of creating an empty
    one (a mistyped path must not look like an empty archive); ``read_only`` (which
    implies it) opens it without needing write access to the file or its folder.
    """
    if spec and is_postgres(spec):
        from login_audit.archive.postgres import open_postgres

        return open_postgres(Secret(spec))
    if spec and "://" in spec:
        raise ConfigError(
            f"the archive {redact_url(redact_dsn(spec))} is neither a file path nor a PostgreSQL "
            "connection (postgresql://... or host=... dbname=...)"
        )
    scheme = _mangled_url(spec) if spec else None
    if scheme:
        raise ConfigError(
            f"the archive {scheme}:... reads as a URL without '//' after '{scheme}:' (not "
            f"shown, it may hold a password); write {scheme}://user@host/dbname, or a file path"
        )
    from login_audit.archive.sqlite import open_sqlite

    # The default folder is ours to create; a folder the user named that does not exist is
    # more likely a typo than a wish for a new, empty archive (and a full re-read).
    path = Path(spec) if spec else default_archive_path()
    return open_sqlite(
        path, existing=existing or read_only, read_only=read_only, create_folder=not spec
    )


def archive_failure(exc: BaseException, location: str) -> ArchiveError | None:
    """The expected failure behind a database driver's exception, in words; None if it is not one.

    Drivers raise from wherever a query happens to read a damaged page or lose its server,
    so the CLI translates at its boundary, naming the archive and what to do.
    """
    location = location or "(unnamed)"
    if isinstance(exc, sqlite3.DatabaseError):
        text = str(exc)
        lowered = text.lower()
        if "full" in lowered or "i/o error" in lowered or "too large" in lowered:
            return ArchiveError(
                f"cannot write the archive {location} ({text}): the disk is full or the "
                "file-size limit (ulimit -f) was reached; free space or raise the limit, then "
                "run again (every committed page is kept)"
            )
        if "readonly" in lowered or "read-only" in lowered:
            return ArchiveError(
                f"cannot write the archive {location} ({text}): it or its folder is read-only"
            )
        if "not a database" in lowered:
            return ArchiveError(
                f"the archive {location} is not a usable SQLite database ({text}); move it "
                "aside or choose another with --archive"
            )
        if isinstance(exc, sqlite3.OperationalError) and "locked" in lowered:
            return ArchiveError(
                f"the archive {location} is locked by another program ({text}); run again later"
            )
        return ArchiveError(
            f"the archive {location} is damaged ({text}): check it with "
            f"sqlite3 {location} 'PRAGMA integrity_check'; restore it from a backup, or move "
            "it aside and run 'sync' to start a new one from the vendor's retention"
        )
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, psycopg.OperationalError):
            return ArchiveError(
                f"lost the connection to the archive {location} ({first}); check that the "
                "server is up and reachable, then run again (every committed page is kept)"
            )
        return ArchiveError(f"the archive {location} refused a query ({first})")
    return None
