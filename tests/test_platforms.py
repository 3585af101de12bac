"""The platform seam: one place turns a target into a client and a token into its auth."""

from __future__ import annotations

import pytest

from login_audit.config import Secret, Target
from login_audit.http import ApiKeyAuth, BearerAuth, HttpClient
from login_audit.platforms import authenticate, connect, retention_days
from login_audit.platforms.cloudone import CloudOne
from login_audit.platforms.visionone import VisionOne

V1 = Target("visionone", "eu", "https://api.eu.xdr.trendmicro.com", "TMV1_TOKEN")
C1 = Target("cloudone", "us-1", None, "C1_API_KEY")


@pytest.mark.parametrize(
    ("target", "client", "auth", "days"),
    [(V1, VisionOne, BearerAuth, 180), (C1, CloudOne, ApiKeyAuth, 365)],
)
def test_connect_builds_the_client_of_the_target(target, client, auth, days) -> None:
    token = Secret("a-token-that-is-never-sent-0123")
    with HttpClient(authenticate(target.platform, token)) as http:
        platform = connect(target, http)
    assert type(platform) is client and platform.region == target.region
    assert isinstance(authenticate(target.platform, token), auth)
    assert retention_days(target.platform) == days == client.retention_days
    assert "never-sent" not in repr(platform)


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown platform 'aws'"):
        retention_days("aws")
