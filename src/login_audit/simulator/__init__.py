"""The fake vendor: synthetic tenants served over loopback HTTP, with faults on demand."""

from login_audit.simulator.server import ALL_FAULTS, DEFAULT_FAULTS, FaultConfig, Simulator
from login_audit.simulator.tenant import Tenant, build_tenant

__all__ = ["ALL_FAULTS", "DEFAULT_FAULTS", "FaultConfig", "Simulator", "Tenant", "build_tenant"]
