"""Vendor API clients, one module per platform, behind the interface in ``base.py``.

:func:`connect` is the one place that turns a :class:`~login_audit.config.Target` into a
client (:func:`open_client` also opens its HTTP client from a token and settings), and
:func:`authenticate` the one that turns a token into the platform's way of sending it: no
caller compares platform names. :func:`retention_days` says how far back each vendor keeps
its audit log, :func:`undocumented_actions` whether its account changes are documented.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from login_audit.config import HttpSettings, Secret, Target
    from login_audit.http import ApiKeyAuth, BearerAuth, HttpClient
    from login_audit.platforms.base import Platform
    from login_audit.platforms.cloudone import CloudOne
    from login_audit.platforms.visionone import VisionOne


def client_class(platform: str) -> type[VisionOne] | type[CloudOne]:
    """The client class of ``platform`` (``visionone`` or ``cloudone``)."""
    # Imported on use: a command loads only the vendor module it talks to.
    if platform == "visionone":
        from login_audit.platforms.visionone import VisionOne

        return VisionOne
    if platform == "cloudone":
        from login_audit.platforms.cloudone import CloudOne

        return CloudOne
    raise ValueError(f"unknown platform {platform!r}")


def retention_days(platform: str) -> int:
    """How many days of audit log the vendor of ``platform`` keeps."""
    return client_class(platform).retention_days


def undocumented_actions(platform: str) -> str | None:
    """Why ``platform``'s account changes go through undocumented endpoints, or None."""
    return client_class(platform).undocumented_actions


def authenticate(platform: str, token: Secret) -> BearerAuth | ApiKeyAuth:
    """How ``platform`` is given ``token``: a bearer token or an ``ApiKey`` header."""
    return client_class(platform).authenticate(token)


def connect(target: Target, http: HttpClient) -> Platform:
    """The client of ``target``'s platform, speaking through ``http``."""
    return client_class(target.platform).connect(target, http)


@contextlib.contextmanager
def open_client(target: Target, token: Secret, settings: HttpSettings) -> Iterator[Platform]:
    """The client of ``target``, given ``token``, over its own HTTP client (closed after)."""
    from login_audit.http import HttpClient

    with HttpClient(authenticate(target.platform, token), settings) as http:
        yield connect(target, http)
