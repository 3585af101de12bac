"""The state every command shares, light enough to load before any command is chosen."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from login_audit.config import Secret
from login_audit.printable import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Redactor(logging.Filter):
    """Replaces every registered secret in log records before any handler sees them, and
    every control character (vendor values are logged: see :mod:`login_audit.printable`)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []

    def add(self, secret: Secret) -> None:
        """Register a secret to scrub from now on."""
        value = secret.reveal()
        if value and value not in self._secrets:
            self._secrets.append(value)

    def scrub(self, text: str) -> str:
        """``text`` without any registered secret."""
        for value in self._secrets:
            text = text.replace(value, "********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets and control characters removed."""
        message = record.getMessage()
        record.msg, record.args = printable(self.scrub(message)), None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = printable(self.scrub(formatted), keep_newlines=True)
        return True


class AppState:
    """Per-invocation state the commands share: logging set-up and the redactor."""

    def __init__(self) -> None:
        self.redactor = Redactor()
        self.quiet = False
        #: Set by commands given ``--json``: every way out then prints one JSON document.
        self.json_mode = False
        #: The archive this run opened, named in messages about its failures.
        self.archive_location = ""

    def configure_logging(self, level: str, log_file: str | None) -> None:
        """Send logs to stderr (and ``log_file``, created 0600), secrets scrubbed."""
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise click.BadParameter(f"unknown log level {level!r}", param_hint="--log-level")
        root = logging.getLogger("login_audit")
        root.handlers.clear()
        root.setLevel(numeric)
        root.propagate = False
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("login-audit: %(levelname)s: %(message)s"))
        console.addFilter(self.redactor)
        root.addHandler(console)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        if log_file:
            path = Path(log_file).expanduser()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.fchmod(fd, 0o600)
                stream = os.fdopen(fd, "a", encoding="utf-8")
            except OSError as exc:
                raise click.BadParameter(
                    f"cannot open log file {path}: {exc.strerror}", param_hint="--log-file"
                ) from None
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            handler.addFilter(self.redactor)
            root.addHandler(handler)
