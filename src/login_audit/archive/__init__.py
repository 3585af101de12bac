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


def open_archive(spec: str | None) -> Archive:
    """Open the archive named by ``spec``: a file path, ``postgresql://…``, or the default."""
    if spec and spec.startswith(("postgresql://", "postgres://")):
        from login_audit.archive.postgres import open_postgres

        return open_postgres(Secret(spec))
    from login_audit.archive.sqlite import open_sqlite

    return open_sqlite(Path(spec) if spec else default_archive_path())
