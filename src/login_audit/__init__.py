"""login-audit: find stale Trend Micro platform accounts from the platforms' own audit logs."""

__version__ = "0.1.0"
