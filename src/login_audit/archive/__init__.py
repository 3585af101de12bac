"""The event store: one interface (``base.Archive``), SQLite by default, PostgreSQL for teams."""

from __future__ import annotations

from pathlib import Path

from login_audit.archive.base import Archive, TenantKey
from login_audit.config import Secret

__all__ = ["Archive", "TenantKey", "default_archive_path", "open_archive"]


def default_archive_path() -> Path:
    """``archive.sqlite3`` in the platform's user data directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("login-audit", appauthor=False)) / "archive.sqlite3"


def open_archive(spec: str | None, *, existing: bool = False, read_only: bool = False) -> Archive:
    """Open the archive named by ``spec``: a file path, ``postgresql://…``, or the default.

    ``existing`` refuses a SQLite file that does not exist instead of creating an empty
    one (a mistyped path must not look like an empty archive); ``read_only`` (which
    implies it) opens it without needing write access to the file or its folder.
    """
    if spec and spec.startswith(("postgresql://", "postgres://")):
        from login_audit.archive.postgres import open_postgres

        return open_postgres(Secret(spec))
    from login_audit.archive.sqlite import open_sqlite

    path = Path(spec) if spec else default_archive_path()
    return open_sqlite(path, existing=existing or read_only, read_only=read_only)
