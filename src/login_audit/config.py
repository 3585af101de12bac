"""Settings and secrets: where the tenant is, how we may reach it, and the token.

Order of precedence is file < environment < flags; the CLI resolves flags and environment
(click's ``envvar``), this module validates the result. Secrets redact themselves.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from login_audit.errors import ConfigError, CredentialsError, LoginAuditError

log = logging.getLogger(__name__)

VISION_ONE_REGIONS: dict[str, str] = {
    "us": "api.xdr.trendmicro.com",
    "eu": "api.eu.xdr.trendmicro.com",
    "jp": "api.xdr.trendmicro.co.jp",
    "sg": "api.sg.xdr.trendmicro.com",
    "au": "api.au.xdr.trendmicro.com",
    "in": "api.in.xdr.trendmicro.com",
    "mea": "api.mea.xdr.trendmicro.com",
    "uk": "api.uk.xdr.trendmicro.com",
    "usgov": "api.usgov.xdr.trendmicro.com",
}

TOKEN_ENV = "TMV1_TOKEN"  # noqa: S105 - a variable name, not a secret
URL_ENV = "TMV1_URL"
C1_KEY_ENV = "C1_API_KEY"
PLATFORMS = ("visionone", "cloudone")


class Secret:
    """A credential that never shows itself in ``str``, ``repr``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret; only the HTTP auth object should call this."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def looks_like_token(value: str) -> bool:
    """True for a value that is probably a credential rather than a path or a name.

    Vision One tokens are JWTs (``eyJ...``); Cloud One keys and most others are long runs
    of mixed letters and digits. Paths (a ``/``) and short names are not. Used to keep a
    token typed in the wrong place out of every message.
    """
    text = value.strip()
    if len(text) < 24 or any(c in "/\\@" or c.isspace() for c in text):
        return False
    if text.startswith("eyJ"):
        return True
    kinds = sum(any(test(c) for c in text) for test in (str.isupper, str.islower, str.isdigit))
    return len(text) >= 32 and kinds == 3 and sum(c.isdigit() for c in text) >= 4


def is_loopback_host(host: str) -> bool:
    """True when ``host`` names this machine: ``localhost`` or a loopback address."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalise_base_url(url: str) -> str:
    """Validate a base URL and return it as ``scheme://host[:port]`` without a trailing slash.

    Plain ``http://`` is refused unless the host is loopback: the token would otherwise
    cross the network in clear text.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parsed only when read: a port out of range raises here
    except ValueError as exc:
        raise ConfigError(
            f"base URL {url!r} cannot be read ({exc}); give one like "
            "https://api.xdr.trendmicro.com or http://127.0.0.1:8080 (--base-url)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base URL {url!r} is not an http(s) URL; give one like https://api.xdr.trendmicro.com"
        )
    if parts.username or parts.password:
        raise ConfigError("base URL must not contain a user name or password")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: use https:// "
            "(plain http is allowed only for loopback hosts such as 127.0.0.1)"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v3.0"):
        path = path[: -len("/v3.0")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def vision_one_base_url(region: str | None, base_url: str | None) -> tuple[str, str]:
    """Return ``(region label, base URL)`` from a region name or an explicit URL.

    An explicit URL wins over the region, and its label is ``custom``.
    """
    if base_url:
        return ("custom", normalise_base_url(base_url))
    name = (region or "us").strip().lower()
    if name not in VISION_ONE_REGIONS:
        known = ", ".join(VISION_ONE_REGIONS)
        raise ConfigError(
            f"unknown Vision One region {region!r}: use one of {known}, or --base-url URL"
        )
    return name, f"https://{VISION_ONE_REGIONS[name]}"


#: The account types whose lack of logons ``--trust-empty-evidence`` can vouch for.
TRUSTABLE_TYPES = ("local", "saml", "all")


#: The largest file read as configuration (tenants, identity map, exclusions, a token):
#: far above any real one, and a stop for a path such as /dev/zero that never ends.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_config_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of a configuration file, read up to :data:`MAX_CONFIG_BYTES`.

    Raises :class:`OSError` (its ``strerror`` says why, also when the file is too large)
    or :class:`UnicodeDecodeError`, as :meth:`Path.read_text` does.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(
            errno.EFBIG,
            f"it is larger than {MAX_CONFIG_BYTES // 2**20} MiB, more than any such file "
            "holds; check the path",
        )
    return data.decode(encoding)


def read_identity_map(path: str) -> tuple[tuple[str, str], ...]:
    """Read an identity map: a CSV with the header ``Identity,UserId``.

    Each row pairs an identity as the audit log writes it (a display name such as
    ``Alice Smith``) with the email or id of the account it stands for.
    """
    import csv
    import io

    try:
        text = read_config_text(Path(path).expanduser(), "utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read identity map {path}: {reason}") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:2] != ["identity", "userid"]:
        raise ConfigError(
            f"identity map {path} must start with the header 'Identity,UserId' "
            "(the identity as the log writes it, then the account's email or id)"
        )
    pairs: list[tuple[str, str]] = []
    lines: dict[str, tuple[int, str]] = {}
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise ConfigError(f"identity map {path}, line {number}: needs an Identity and a UserId")
        identity, target = row[0].strip(), row[1].strip()
        earlier = lines.get(identity.casefold())
        if earlier is not None and earlier[1].casefold() != target.casefold():
            raise ConfigError(
                f"identity map {path}: {identity!r} stands for {earlier[1]!r} on line "
                f"{earlier[0]} and for {target!r} on line {number}; an identity is one "
                "account: keep one line"
            )
        lines[identity.casefold()] = (number, target)
        pairs.append((identity, target))
    return tuple(pairs)


@dataclass(frozen=True)
class Target:
    """One tenant's platform, region and origin, resolved and validated."""

    platform: str
    region: str
    base_url: str | None
    token_env: str

    @property
    def key_region(self) -> str:
        """How the archive names the region: the region, or the host of a custom URL."""
        if self.region == "custom" and self.base_url:
            return urlsplit(self.base_url).netloc
        return self.region


def resolve_target(
    platform: str,
    region: str | None,
    base_url: str | None,
    env: dict[str, str] | None = None,
) -> Target:
    """Validate where a tenant lives. Vision One also reads ``TMV1_URL`` like the vendor's
    samples; Cloud One accepts any region name of the vendor's form (``us-1``, ``trend-us-1``).
    """
    # Imported here: each platform module describes its own targets, and imports this one.
    from login_audit.platforms import client_class

    try:
        client = client_class(platform)
    except ValueError:
        raise ConfigError(f"unknown platform {platform!r}: use visionone or cloudone") from None
    return client.resolve(region, base_url, os.environ if env is None else env)


def _warn_if_world_readable(path: Path, what: str = "token file") -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "%s %s can be read by other users; restrict it with: chmod 600 %s",
            what,
            path,
            path,
        )


def read_secret_file(path: Path, what: str, error: type[LoginAuditError]) -> str:
    """The text of a file holding a secret; a file others can read is warned about."""
    _warn_if_world_readable(path, what)
    try:
        return read_config_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise error(
            f"cannot read {what} {path}: {reason}; check the path and its permissions"
        ) from None


def load_token(
    token_file: str | None,
    env: dict[str, str] | None = None,
    env_var: str = TOKEN_ENV,
    stdin: IO[str] | None = None,
) -> Secret:
    """Read the API token from ``token_file`` (``-`` for stdin), else from ``env_var``.

    The token is never taken from a command-line argument: those are visible to every
    user of the machine.
    """
    environ = os.environ if env is None else env
    if token_file:
        if token_file == "-":  # noqa: S105 - "-" means stdin
            stream = stdin if stdin is not None else sys.stdin
            value = stream.readline()
            source = "standard input"
        else:
            if looks_like_token(token_file) and not Path(token_file).exists():
                raise CredentialsError(
                    "--token-file got a value that looks like the token itself (not shown): "
                    f"it takes the path of a file holding the token; or set {env_var}"
                )
            path = Path(token_file).expanduser()
            value = read_secret_file(path, "token file", CredentialsError)
            source = f"token file {path}"
    else:
        value = environ.get(env_var, "")
        source = f"environment variable {env_var}"
        if not value.strip():
            raise CredentialsError(
                f"no API token: set {env_var} or pass --token-file PATH (use - for stdin)"
            )
    token = value.strip()
    if not token:
        raise CredentialsError(f"the API token from {source} is empty")
    if any(ch.isspace() for ch in token) or not token.isprintable():
        raise CredentialsError(
            f"the API token from {source} contains spaces or control characters; "
            "the file must hold the token alone"
        )
    return Secret(token)


def validate_days(days: int, max_days: int, *, what: str = "--days") -> int:
    """Check the inactivity threshold against what the data can cover."""
    if days < 1:
        raise ConfigError(f"{what} must be at least 1 (got {days})")
    if days > max_days:
        raise ConfigError(
            f"{what} {days} is beyond the {max_days} days the data can cover; "
            f"use at most {max_days}"
        )
    return days


#: The longest grace for new accounts: a century, far beyond any archive.
MAX_GRACE_DAYS = 36500


def validate_grace_days(grace_days: int, *, what: str = "--grace-days") -> int:
    """Check the grace for new accounts: 0 (none) up to :data:`MAX_GRACE_DAYS`."""
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise ConfigError(f"{what} must be 0 to {MAX_GRACE_DAYS} (got {grace_days})")
    return grace_days


def read_exclude_file(path: str) -> tuple[str, ...]:
    """Read exclusion patterns: one per line, blank lines and ``#`` comments ignored."""
    try:
        text = read_config_text(Path(path).expanduser())
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read exclusion file {path}: {reason}") from None
    patterns = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            patterns.append(entry)
    return tuple(patterns)


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP layer behaves: timeouts, pacing and retries.

    ``timeout`` is the wait for each read and covers Vision One's gateway, which answers
    504 after 60 s; ``deadline`` bounds one whole response, however slowly it trickles in,
    and ``max_response_bytes`` its size; ``request_deadline`` bounds one request with all
    its retries. ``throttle_budget`` is how long a request answered 429 keeps being
    retried: longer than the vendor's rate window, so a limit lower than our pace slows
    the run down instead of ending it incomplete.
    """

    timeout: float = 75.0
    rate_limit: int = 500
    rate_window: float = 60.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    retry_after_cap: float = 300.0
    deadline: float = 90.0
    max_response_bytes: int = 32 * 1024 * 1024
    throttle_budget: float = 180.0
    request_deadline: float = 600.0

    def __post_init__(self) -> None:
        for name in ("rate_window", "timeout", "backoff_base", "backoff_cap", "deadline"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number of seconds")
        if self.rate_limit < 1:
            raise ConfigError("--rate-limit must be at least 1 request")
        if self.rate_window <= 0:
            raise ConfigError("--rate-window must be a positive number of seconds")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be a positive number of seconds")
        if self.backoff_base < 0:
            raise ConfigError("--backoff-base must not be negative")


_TENANT_KEYS = {
    "name",
    "platform",
    "region",
    "base_url",
    "token_env",
    "token_file",
    "days",
    "grace_days",
    "include_disabled",
    "exclude",
    "exclude_roles",
    "identity_map",
    "ignore_identities",
    "trust_empty_evidence",
}
_DEFAULT_KEYS = _TENANT_KEYS - {"name", "token_env", "token_file", "base_url", "region"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_KEYS = {"token", "api_key", "apikey", "key", "secret", "password"}


@dataclass(frozen=True)
class TenantConfig:
    """One tenant of the configuration file; the secret is named, never included."""

    name: str
    target: Target
    token_env: str | None = None
    token_file: str | None = None
    days: int | None = None
    grace_days: int | None = None
    include_disabled: bool | None = None
    exclude: tuple[str, ...] = ()
    exclude_roles: tuple[str, ...] = ()
    identity_map: tuple[tuple[str, str], ...] = ()
    ignore_identities: tuple[str, ...] = ()
    trust_empty_evidence: tuple[str, ...] = ()

    def load_token(self) -> Secret:
        """The tenant's secret, from its file or its environment variable."""
        return load_token(self.token_file, env_var=self.token_env or self.target.token_env)


def default_config_path() -> Path:
    """``config.toml`` in the platform's user configuration directory."""
    import platformdirs

    return Path(platformdirs.user_config_dir("login-audit", appauthor=False)) / "config.toml"


def _check_keys(table: dict[str, object], allowed: set[str], where: str, path: Path) -> None:
    for key in table:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(
                f"{path}: {where} has a '{key}' entry: never put a secret in the configuration "
                "file; name it with token_env (an environment variable) or token_file"
            )
        if key not in allowed:
            raise ConfigError(
                f"{path}: {where} has an unknown key '{key}'; allowed: {', '.join(sorted(allowed))}"
            )


def _typed(value: object, kind: type, key: str, where: str, path: Path) -> object:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{path}: {where}: '{key}' must be a whole number")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: {where}: '{key}' must be true or false")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{path}: {where}: '{key}' must be a string")
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{path}: {where}: '{key}' must be a list of strings")
    return value


_TYPES: dict[str, type] = {
    "name": str,
    "platform": str,
    "region": str,
    "base_url": str,
    "token_env": str,
    "token_file": str,
    "days": int,
    "grace_days": int,
    "include_disabled": bool,
    "exclude": list,
    "exclude_roles": list,
    "identity_map": str,
    "ignore_identities": list,
    "trust_empty_evidence": list,
}


def _trusted_types(values: list[str], path: Path, where: str) -> tuple[str, ...]:
    """``trust_empty_evidence`` of the tenants file, each one of :data:`TRUSTABLE_TYPES`."""
    chosen = tuple(value.strip().lower() for value in values)
    for value in chosen:
        if value not in TRUSTABLE_TYPES:
            raise ConfigError(
                f"{path}: {where}: trust_empty_evidence {value!r} is not an account type; "
                f"use {', '.join(TRUSTABLE_TYPES)}"
            )
    return chosen


def _tenant_identity_map(value: str | None, path: Path, where: str) -> tuple[tuple[str, str], ...]:
    """The identity map a tenant names, relative to the tenants file's folder."""
    if not value:
        return ()
    try:
        return read_identity_map(str(path.parent / Path(value).expanduser()))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {where}: {exc}") from None


def load_tenants(path: Path) -> list[TenantConfig]:
    """Read and validate the tenants of a TOML configuration file.

    ``[defaults]`` holds policy values shared by every tenant; each ``[[tenant]]`` names
    its platform, region or base URL, where its secret is (``token_env`` or
    ``token_file``) and its own policy overrides.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data = tomllib.loads(read_config_text(path))
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}; create it (see the README) or pass --config"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read configuration file {path}: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    _check_keys(data, {"defaults", "tenant"}, "the file", path)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: [defaults] must be a table")
    _check_keys(defaults, _DEFAULT_KEYS, "[defaults]", path)
    entries = data.get("tenant", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[tenant]] entries; add one per tenant to audit")
    tenants: list[TenantConfig] = []
    for number, entry in enumerate(entries, 1):
        where = f"tenant #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {where} must be a table")
        _check_keys(entry, _TENANT_KEYS, where, path)
        merged = {**defaults, **entry}
        for key, value in merged.items():
            _typed(value, _TYPES[key], key, where, path)
        name = merged.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{path}: {where} has no 'name'")
        where = f"tenant {name!r}"
        if any(t.name == name for t in tenants):
            raise ConfigError(f"{path}: two tenants are named {name!r}; names must be unique")
        if "token_env" in merged and "token_file" in merged:
            raise ConfigError(f"{path}: {where} has both token_env and token_file; keep one")
        token_env = merged.get("token_env")
        if token_env is not None and (
            not _ENV_NAME.match(token_env) or looks_like_token(token_env)
        ):
            raise ConfigError(
                f"{path}: {where}: token_env must be the NAME of an environment variable, "
                "such as TMV1_TOKEN_PROD; it holds something else (not shown: it may be the "
                "token itself, which must never be in this file)"
            )
        if merged.get("grace_days") is not None:
            try:
                validate_grace_days(merged["grace_days"], what="grace_days")
            except ConfigError as exc:
                raise ConfigError(f"{path}: {where}: {exc}") from None
        platform = str(merged.get("platform", "visionone"))
        try:
            target = resolve_target(
                platform,
                merged.get("region"),
                merged.get("base_url"),
                env={},
            )
        except ConfigError as exc:
            raise ConfigError(f"{path}: {where}: {exc}") from None
        tenants.append(
            TenantConfig(
                name=name,
                target=target,
                token_env=merged.get("token_env"),
                token_file=merged.get("token_file"),
                days=merged.get("days"),
                grace_days=merged.get("grace_days"),
                include_disabled=merged.get("include_disabled"),
                exclude=tuple(merged.get("exclude", ())),
                exclude_roles=tuple(merged.get("exclude_roles", ())),
                identity_map=_tenant_identity_map(merged.get("identity_map"), path, where),
                ignore_identities=tuple(merged.get("ignore_identities", ())),
                trust_empty_evidence=_trusted_types(
                    merged.get("trust_empty_evidence", ()), path, where
                ),
            )
        )
    return tenants
