"""The state every command shares, light enough to load before any command is chosen."""

from __future__ import annotations

from typing import Any

import click

from login_audit.redaction import Redactor

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
        # Imported here: the logging set-up belongs to the library, which a bare
        # ``login-audit --version`` must not load.
        from login_audit.service import LogFileError, configure_logging

        try:
            configure_logging(self.redactor, level, log_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--log-level") from None
        except LogFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--log-file") from None
