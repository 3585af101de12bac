"""Exclusions that excluded nothing: a mistyped pattern or role must not pass in silence.

A typo in ``--exclude-role 'Master Admin'`` leaves every Master Administrator on the
removal list, so each exclusion that matches no account of the tenant becomes a warning
in the summary and the reports, and an unknown role lists the roles that do exist.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from login_audit.models import Account, Policy


def unmatched_exclusions(accounts: Iterable[Account], policy: Policy) -> tuple[str, ...]:
    """One warning per exclusion pattern or role of ``policy`` that names no account."""
    accounts = list(accounts)
    values = [v.lower() for a in accounts for v in (a.email, a.id) if v]
    roles = {a.role.casefold(): a.role for a in accounts if a.role}
    warnings: list[str] = []
    for pattern in dict.fromkeys(policy.exclude_patterns):
        if not any(fnmatch.fnmatchcase(value, pattern.lower()) for value in values):
            warnings.append(
                f"exclusion {pattern!r} (--exclude or --exclude-file) matched no account; "
                "check its spelling"
            )
    for role in dict.fromkeys(policy.exclude_roles):
        if role.casefold() not in roles:
            known = ", ".join(repr(name) for name in sorted(roles.values())) or "none"
            warnings.append(
                f"--exclude-role {role!r} matched no account's role; the roles of this "
                f"tenant are: {known}"
            )
    return tuple(warnings)
