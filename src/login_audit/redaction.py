"""Keeping secrets out of everything login-audit writes: one redactor and its helpers.

Secrets are removed by value (:class:`Redactor`: tokens, API keys, webhook URLs, archive
passwords, wherever they turn up, even echoed back by a vendor) and by place
(:func:`redact_url` for secret-looking query parameters, :func:`redact_dsn` for the
password of a database connection). The HTTP client, the log handlers and the archive all
use these, so a secret is masked the same way everywhere.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from login_audit.config import Secret
from login_audit.printable import printable

#: What a secret is replaced with.
MASK = "********"
_SENSITIVE_PARAM = re.compile(r"token|key|secret|sig|password|auth", re.IGNORECASE)
#: A libpq ``password=`` keyword and its value, quoted or not.
LIBPQ_PASSWORD = re.compile(r"(password\s*=\s*)('(?:\\.|[^'\\])*'|\S+)", re.IGNORECASE)


class Redactor(logging.Filter):
    """Removes every registered secret from text; as a log filter, from every record
    before any handler sees it, with control characters removed too (vendor values are
    logged: see :mod:`login_audit.printable`)."""

    def __init__(self, *secrets: Secret | str) -> None:
        super().__init__()
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Secret | str) -> None:
        """Register a secret to scrub from now on."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and value not in self._secrets:
            # Longest first, so a secret that contains another is masked whole.
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` without any registered secret."""
        for value in self._secrets:
            text = text.replace(value, MASK)
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


def redact_url(url: object) -> str:
    """Return ``url`` with the values of secret-looking query parameters replaced."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [
        (name, "REDACTED" if _SENSITIVE_PARAM.search(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="' ")))


def redact_dsn(dsn: str) -> str:
    """The DSN (URL or libpq keywords) with any password removed, for messages."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@")
            return parts._replace(netloc=netloc).geturl()
        return dsn
    return LIBPQ_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
