"""The fake vendor: synthetic tenants served over loopback HTTP, with faults on demand."""

from login_audit.simulator.cloudone import CloudOneTenant, build_cloudone_tenant
from login_audit.simulator.faults import DEMO_HTTP
from login_audit.simulator.server import (
    ALL_FAULTS,
    CHANGE_FAULTS,
    DEFAULT_FAULTS,
    FaultConfig,
    Simulator,
)
from login_audit.simulator.tenant import Tenant, build_tenant

__all__ = [
    "ALL_FAULTS",
    "CHANGE_FAULTS",
    "DEFAULT_FAULTS",
    "DEMO_HTTP",
    "CloudOneTenant",
    "FaultConfig",
    "Simulator",
    "Tenant",
    "build_cloudone_tenant",
    "build_tenant",
]
