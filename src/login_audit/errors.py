"""The one exception tree of login-audit, grouped by what the caller does next.

::

    LoginAuditError                 anything we raise on purpose (exit 1 if not caught lower)
    ├── ConfigError                 fix the configuration or the command line   (exit 2)
    │   ├── UnsupportedActionError  the platform cannot make this change        (exit 2)
    │   ├── NotFoundError           the vendor answered 404                      (exit 2)
    │   └── ArchiveError            the archive is damaged, full or unreachable (exit 2)
    ├── CredentialsError            fix the token: missing, unreadable, refused  (exit 2)
    │   └── PermissionDeniedError   the token lacks a permission (403)           (exit 2)
    ├── RetryLaterError             the vendor failed after every retry          (exit 4)
    │   ├── UnreachableError        nothing at the address ever answered         (exit 4)
    │   ├── ProtocolError           the vendor answered something unusable       (exit 4)
    │   └── ArchiveBusyError        another process is syncing the same tenant   (exit 4)
    └── IncompleteDataError         some data could not be read completely       (exit 4)

Texts carry the HTTP status, the vendor's error code and a redacted URL; never a token
and never a whole response body.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_FINDINGS = 3
EXIT_INCOMPLETE = 4
#: 128 + SIGINT, as shells report a process that Ctrl-C ended (SIGTERM ends it with 143).
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM: a service manager or ``kill`` stopped the run; it ends as Ctrl-C does.
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so that it unwinds as Ctrl-C does: ``finally``
    blocks run, archives close (their -wal and -shm files go), scratch folders go."""

    exit_code = EXIT_TERMINATED


class Cancelled(KeyboardInterrupt):
    """The run was stopped (Ctrl-C, SIGTERM) while this thread waited to send a request: the
    threads still reading for it (time slices, account listings, tenants, pages read ahead)
    end at once instead of reading on, or waiting out the rate limit, before the process
    can exit. Raised only after the run's own interrupt, which is what the user is told."""

    exit_code = EXIT_INTERRUPTED


#: 128 + SIGPIPE: the reader of stdout went away (``export | head``); nothing is printed.
EXIT_BROKEN_PIPE = 141


class LoginAuditError(Exception):
    """Base of every error login-audit raises on purpose."""

    exit_code = EXIT_UNEXPECTED


class ConfigError(LoginAuditError):
    """The configuration or the command line is wrong; the message says how to fix it."""

    exit_code = EXIT_CONFIG


class UnsupportedActionError(ConfigError):
    """The platform offers no (documented) way to make this change to this account."""


class NotFoundError(ConfigError):
    """The vendor answered 404: a wrong origin, or an object that no longer exists."""


class ArchiveError(ConfigError):
    """The archive cannot be used: damaged, out of space, read-only or its server gone."""


class CredentialsError(LoginAuditError):
    """The token is missing, unreadable or refused by the vendor."""

    exit_code = EXIT_CONFIG


class PermissionDeniedError(CredentialsError):
    """The token is valid but lacks a permission the request needs."""


class RetryLaterError(LoginAuditError):
    """The vendor kept failing (5xx, 429, transport errors) after every retry."""

    exit_code = EXIT_INCOMPLETE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        #: The last answer's HTTP status (None when no answer came), the vendor's error
        #: code in it, and the seconds its ``Retry-After`` asked for: callers decide on
        #: these, never on the message's words.
        self.status = status
        self.code = code
        self.retry_after = retry_after


class UnreachableError(RetryLaterError):
    """Nothing at the address has ever answered: most likely a wrong region or base URL."""


class ProtocolError(RetryLaterError):
    """The vendor answered with something we cannot use (bad JSON, a looping page link)."""


class ArchiveBusyError(RetryLaterError):
    """Another process holds the sync lock of the same tenant."""


class IncompleteDataError(LoginAuditError):
    """Some of the data a decision needs could not be read completely."""

    exit_code = EXIT_INCOMPLETE
