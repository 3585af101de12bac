"""The apply workflow of one tenant as a library call: plan, then carry out, safely.

:mod:`login_audit.actions` holds the rules (which rows may change, the journal, how each
change is made); this module runs them in the one order that keeps them true:

1. check the request: the platform documents its account changes (or the caller allows
   undocumented ones), and there is a source of rows (a cleanup CSV, else the tenant's
   last complete audit in the archive);
2. read the rows to act on;
3. when changes are to be made, take the journal's lock and the tenant's archive lock,
   before anything is listed, so two runs can never both count the same administrator
   as the one that remains;
4. list the accounts and read every logon of the last ``days`` again, then plan;
5. :meth:`Cleanup.carry_out` refuses a plan of which nothing can be done or that makes
   more than ``max_changes`` changes, then journals and executes it, stopping at the
   first failure.

A program calls :func:`prepare` (a context manager holding the locks) and, after looking
at :attr:`Cleanup.plan`, :meth:`Cleanup.carry_out`; :func:`run_cleanup` does both at once.
The command line adds only its flags, the plan on the terminal, and the confirmation of a
deletion.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from login_audit.actions import (
    ACTIONS,
    CANNOT,
    DONE,
    FAILED,
    JOURNAL_FILENAME,
    PLANNED,
    REPORT_FILENAME,
    Change,
    Journal,
    Recheck,
    Requests,
    ages_from_archive,
    apply_json,
    execute,
    plan,
    recheck,
    requests_from_archive,
    requests_from_csv,
)
from login_audit.archive.base import Archive, TenantKey
from login_audit.errors import EXIT_OK, ConfigError
from login_audit.locks import default_state_dir, file_lock, private_dir, tenant_lock_path
from login_audit.models import Policy
from login_audit.platforms import undocumented_actions
from login_audit.platforms.base import Platform
from login_audit.printable import printable
from login_audit.reports.atomic import check_output_dir, ensure_dir
from login_audit.timeutil import Clock, utcnow

#: Opens the tenant's platform client (after the locks are held) and closes it after.
Connect = Callable[[], contextlib.AbstractContextManager[Platform]]

DEFAULT_MAX_CHANGES = 25
#: The audit's default ``--days``: the least ``apply`` accepts when the audit's is unknown.
DEFAULT_DAYS = Policy().days


@dataclass(frozen=True)
class ApplyRequest:
    """What to change on which tenant, under which policy.

    ``source`` is a cleanup CSV (``filtered_accounts_report.csv``, joined to the
    ``audit_report.json`` beside it); None acts on the tenant's last complete audit in
    the archive. The policy's ``days`` is the threshold proven again before acting, and
    its exclusions are accounts never changed.
    """

    tenant: TenantKey
    policy: Policy
    action: str = "disable"
    source: Path | None = None
    output_dir: Path = Path(".")
    max_changes: int = DEFAULT_MAX_CHANGES
    #: Act even where the platform documents no API for the change (Cloud One).
    allow_undocumented: bool = False
    #: The per-user folder of the tenant's lock; None is :func:`default_state_dir`.
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"unknown action {self.action!r}: use disable or delete")
        if self.max_changes < 1:
            raise ConfigError(f"--max-changes must be 1 or more (got {self.max_changes})")

    @property
    def label(self) -> str:
        """How the journal names the tenant: ``platform/region/name``."""
        return f"{self.tenant.platform}/{self.tenant.region}/{self.tenant.name}"

    @property
    def journal_path(self) -> Path:
        """Where the journal of this request is kept."""
        return self.output_dir / JOURNAL_FILENAME


@dataclass(frozen=True)
class ApplyPlan:
    """What a run would do: the rows, the evidence read again, and each row's change."""

    request: ApplyRequest
    requests: Requests
    found: Recheck
    changes: list[Change]

    @property
    def planned(self) -> int:
        """How many changes the plan would make."""
        return sum(1 for c in self.changes if c.outcome == PLANNED)

    @property
    def impossible(self) -> str | None:
        """Why nothing of the plan can be carried out on this platform, or None."""
        cannot = [c for c in self.changes if c.outcome == CANNOT]
        if cannot and not self.planned:
            return f"nothing in this plan can be carried out: {printable(cannot[0].reason)}"
        return None

    @property
    def over_limit(self) -> str | None:
        """Why the plan makes more changes than the request allows, or None."""
        planned, limit = self.planned, self.request.max_changes
        if planned <= limit:
            return None
        return (
            f"{planned} changes planned, more than --max-changes {limit}; review the "
            f"plan, then --max-changes {planned} would allow it"
        )

    def refusal(self, carrying_out: bool = True) -> str | None:
        """Why the plan may not go ahead: nothing of it can be done, or (when it is to be
        carried out) it makes more changes than allowed; None when it may."""
        return self.impossible or (self.over_limit if carrying_out else None)

    def document(
        self,
        *,
        refused: str | None = None,
        results: list[Change] | None = None,
        exit_code: int = EXIT_OK,
        error: str | None = None,
    ) -> dict[str, object]:
        """The plan (with why it was ``refused``), or its ``results`` once carried out, and
        the evidence, as JSON values (``apply --json``), with the run's exit code and
        error."""
        return apply_json(
            self.request.label,
            self.requests,
            self.found,
            self.changes if results is None else results,
            carried_out=results is not None,
            refused=refused,
            max_changes=self.request.max_changes,
            exit_code=exit_code,
            error=error if error is not None else refused,
        )


@dataclass(frozen=True)
class ApplyResult:
    """What a run did: every row's outcome, in the order of the plan, and the journal."""

    plan: ApplyPlan
    changes: list[Change]
    journal: Path

    @property
    def done(self) -> list[Change]:
        """The changes made."""
        return [c for c in self.changes if c.outcome == DONE]

    @property
    def failed(self) -> list[Change]:
        """The change that failed and stopped the run (at most one)."""
        return [c for c in self.changes if c.outcome == FAILED]

    @property
    def complete(self) -> bool:
        """True when no change failed, so the tenant's state is known."""
        return not self.failed


class PlanRefused(ConfigError):
    """The plan may not be carried out; :attr:`plan` says what it was."""

    def __init__(self, message: str, plan: ApplyPlan) -> None:
        super().__init__(message)
        self.plan = plan


class Cleanup:
    """A prepared run: its plan and, when prepared to change, the locks held until closed."""

    def __init__(
        self,
        plan: ApplyPlan,
        platform: Platform,
        archive: Archive | None,
        tenant: int | None,
        *,
        locked: bool,
        clock: Clock,
    ) -> None:
        self.plan = plan
        self._platform, self._archive, self._tenant = platform, archive, tenant
        self._locked, self._clock = locked, clock
        self._carried_out = False
        #: False once :func:`prepare`'s context ended: the locks and the client are gone.
        self.open = True

    def carry_out(self, on_change: Callable[[Change], None] | None = None) -> ApplyResult:
        """Journal and make the planned changes in order, stopping at the first failure.

        Raises :class:`PlanRefused` for a plan of :meth:`ApplyPlan.refusal`; a change that
        fails is an outcome of the result, not an exception.
        """
        if not self._locked:
            raise ConfigError("a dry run cannot carry out its plan: prepare it with dry_run=False")
        if not self.open:
            raise ConfigError("the plan's locks were released: prepare it again to carry it out")
        if self._carried_out:
            raise ConfigError("this plan was carried out already: prepare a new one")
        refused = self.plan.refusal()
        if refused:
            raise PlanRefused(refused, self.plan)
        self._carried_out = True
        request = self.plan.request
        journal = Journal(
            request.journal_path, request.label, clock=self._clock, mirror=self._mirror()
        )
        try:
            results = execute(
                self._platform, self.plan.changes, journal, on_change or (lambda change: None)
            )
        finally:
            journal.close()
        return ApplyResult(self.plan, results, request.journal_path)

    def _mirror(self) -> Callable[[Change, datetime], None] | None:
        """Journal each change in the archive too, when there is one."""
        archive, tenant = self._archive, self._tenant
        if archive is None or tenant is None:
            return None

        def mirror(change: Change, at: datetime) -> None:
            archive.journal(
                tenant,
                at,
                change.action,
                change.user_id,
                change.account_id,
                change.outcome,
                change.reason,
            )

        return mirror


def check_request(request: ApplyRequest, *, has_archive: bool) -> None:
    """Refuse a request that cannot be acted on, before anything is opened, read or locked."""
    undocumented = undocumented_actions(request.tenant.platform)
    if undocumented and not request.allow_undocumented:
        raise ConfigError(
            f"{undocumented}; apply refuses unless --unverified-cloudone-actions is given "
            "(see the README)"
        )
    if not has_archive and request.source is None:
        raise ConfigError("--no-archive needs --from CSV: there is no last audit to act on")
    if request.source is not None:
        _check_source(request.source)


def _check_source(path: Path) -> None:
    """Refuse a ``--from`` that is not a readable regular file (a pipe would block)."""
    problem = ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        problem = exc.strerror or str(exc)
    else:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                problem = "not a regular file"
        finally:
            os.close(fd)
    if problem:
        raise ConfigError(f"cannot read --from {path}: {problem}; nothing was opened or changed")


def check_days(requests: Requests, policy: Policy) -> None:
    """Refuse a ``--days`` shorter than the audit's: staleness would be proven over less
    time than the audit judged it. When the audit's days are unknown, the default is the
    least accepted."""
    audit_days = requests.days
    if audit_days is None:
        if policy.days < DEFAULT_DAYS:
            raise ConfigError(
                f"--days {policy.days} (or LOGIN_AUDIT_DAYS) is shorter than the default "
                f"{DEFAULT_DAYS} and the audit's --days is unknown (no {REPORT_FILENAME} "
                f"beside the CSV): keep the report beside the CSV, or use --days {DEFAULT_DAYS} "
                "or more"
            )
    elif policy.days < audit_days:
        raise ConfigError(
            f"--days {policy.days} (or LOGIN_AUDIT_DAYS) is shorter than the {audit_days} "
            f"days of the audit that made {printable(requests.source)}: use --days "
            f"{audit_days} or more"
        )


@contextlib.contextmanager
def prepare(
    request: ApplyRequest,
    connect: Connect,
    archive: Archive | None = None,
    *,
    dry_run: bool = True,
    clock: Clock = utcnow,
) -> Iterator[Cleanup]:
    """Plan ``request`` against a fresh listing and a fresh read of the logons.

    Without ``dry_run`` the journal's lock (beside the journal) and the tenant's archive
    lock are taken before anything is listed and held until the context ends, so the
    plan stays true while it is carried out. ``archive`` (optional with a ``source``)
    supplies the last audit and mirrors the journal.
    """
    check_request(request, has_archive=archive is not None)
    with contextlib.ExitStack() as stack:
        if request.source is not None:
            requests = requests_from_csv(request.source)
        tenant = archive.tenant_id(request.tenant) if archive is not None else None
        if request.source is None:
            assert archive is not None and tenant is not None  # see check_request
            requests = requests_from_archive(archive, tenant)
        if requests.days is None and archive is not None and tenant is not None:
            last = archive.last_audit(tenant)
            requests = replace(requests, days=last[2] if last else None)
        check_days(requests, request.policy)
        out = check_output_dir(request.output_dir)
        if not dry_run:
            ensure_dir(out)  # a dry run writes nothing, so it creates no folder
            busy = f"another login-audit apply keeps its journal in {out}; wait for it to finish"
            stack.enter_context(file_lock(out / f"{JOURNAL_FILENAME}.lock", busy))
            if archive is not None and tenant is not None:
                stack.enter_context(archive.lock(tenant))
        platform = stack.enter_context(connect())
        if platform.name != request.tenant.platform:
            raise ConfigError(
                f"the request names a {request.tenant.platform} tenant but the connection is "
                f"to {platform.name}; nothing was read or changed"
            )
        wrong = requests.run and requests.run.mismatch(
            request.tenant.name, platform.name, platform.base_url
        )
        if wrong:
            raise ConfigError(
                f"the report beside {requests.source} does not belong to this tenant: {wrong}; "
                "nothing was read or changed"
            )
        if not dry_run:
            stack.enter_context(_tenant_lock(request, platform))
        ages = ages_from_archive(archive, tenant) if archive and tenant is not None else None
        found = recheck(platform, request.policy, clock())
        changes = plan(requests, found, request.policy, request.action, platform, ages)
        cleanup = Cleanup(
            ApplyPlan(request, requests, found, changes),
            platform,
            archive,
            tenant,
            locked=not dry_run,
            clock=clock,
        )
        try:
            yield cleanup
        finally:
            cleanup.open = False


def _tenant_lock(
    request: ApplyRequest, platform: Platform
) -> contextlib.AbstractContextManager[None]:
    """The lock of the tenant itself, whatever the journal's folder and the archive.

    Kept in the user's state folder (0700) and named by the platform, the API's origin
    and a digest of the credential, which belongs to one tenant: two applies of one user
    on one machine never overlap on a tenant, whatever their ``--tenant`` names, folders
    and archives. Other users and other machines do not see it.
    """
    folder = private_dir(request.state_dir or default_state_dir())
    path = tenant_lock_path(folder, platform.name, platform.base_url, platform.http.credential())
    busy = (
        "another login-audit apply is changing this tenant (it holds "
        f"{path}); wait for it to finish"
    )
    return file_lock(path, busy)


def run_cleanup(
    request: ApplyRequest,
    connect: Connect,
    archive: Archive | None = None,
    *,
    clock: Clock = utcnow,
    on_change: Callable[[Change], None] | None = None,
) -> ApplyResult:
    """Plan ``request`` under the locks and carry it out (see :func:`prepare`)."""
    with prepare(request, connect, archive, dry_run=False, clock=clock) as cleanup:
        return cleanup.carry_out(on_change)
