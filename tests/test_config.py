"""Settings: where the token comes from, which URLs are allowed, what --days may be."""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import pytest

from login_audit.config import (
    HttpSettings,
    Secret,
    load_token,
    normalise_base_url,
    read_exclude_file,
    validate_days,
    vision_one_base_url,
)
from login_audit.errors import ConfigError, CredentialsError


def test_secret_never_shows_itself() -> None:
    secret = Secret("abc123-very-secret")
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"t": secret})):
        assert "abc123" not in text
    assert secret.reveal() == "abc123-very-secret"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_token_from_environment() -> None:
    assert load_token(None, env={"TMV1_TOKEN": " tok \n"}).reveal() == "tok"


@pytest.mark.parametrize("env", [{}, {"TMV1_TOKEN": ""}, {"TMV1_TOKEN": "   "}])
def test_missing_token_names_both_sources(env: dict[str, str]) -> None:
    with pytest.raises(CredentialsError, match="set TMV1_TOKEN or pass --token-file"):
        load_token(None, env=env)


def test_token_from_stdin() -> None:
    assert load_token("-", env={}, stdin=io.StringIO("from-stdin\n")).reveal() == "from-stdin"


def test_token_file_wins_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "tok"
    path.write_text("file-token\n")
    path.chmod(0o600)
    assert load_token(str(path), env={"TMV1_TOKEN": "env"}).reveal() == "file-token"


def test_world_readable_token_file_warns(tmp_path: Path, caplog) -> None:
    path = tmp_path / "tok"
    path.write_text("file-token")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_token(str(path), env={})
    assert "chmod 600" in caplog.text
    assert "file-token" not in caplog.text


def test_unreadable_and_empty_token_files(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read token file"):
        load_token(str(tmp_path / "missing"), env={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(CredentialsError, match="is empty"):
        load_token(str(empty), env={})
    two = tmp_path / "two"
    two.write_text("first line\nsecond")
    with pytest.raises(CredentialsError, match="the file must hold the token alone") as info:
        load_token(str(two), env={})
    assert "first line" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.eu.xdr.trendmicro.com/", "https://api.eu.xdr.trendmicro.com"),
        ("https://api.xdr.trendmicro.com/v3.0", "https://api.xdr.trendmicro.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.8.9.10:1", "http://127.8.9.10:1"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_base_urls_accepted(url: str, expected: str) -> None:
    assert normalise_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://api.xdr.trendmicro.com",
        "http://10.0.0.1",
        "http://127.0.0.1.nip.io",
        "ftp://127.0.0.1",
        "api.xdr.trendmicro.com",
        "https://user:pw@api.xdr.trendmicro.com",
    ],
)
def test_base_urls_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        normalise_base_url(url)


def test_regions() -> None:
    assert vision_one_base_url("EU", None) == ("eu", "https://api.eu.xdr.trendmicro.com")
    assert vision_one_base_url(None, None)[1] == "https://api.xdr.trendmicro.com"
    assert vision_one_base_url("us", "https://custom.example")[1] == "https://custom.example"
    with pytest.raises(ConfigError, match="use one of us, eu"):
        vision_one_base_url("mars", None)


def test_days_bounds() -> None:
    assert validate_days(1, 180) == 1
    assert validate_days(180, 180) == 180
    for bad in (0, -1, 181):
        with pytest.raises(ConfigError):
            validate_days(bad, 180)


def test_exclude_file_comments_and_blanks(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("# comment\nsvc-*  # trailing\n\n  admin@example.com\n")
    assert read_exclude_file(str(path)) == ("svc-*", "admin@example.com")


def test_http_settings_validate() -> None:
    with pytest.raises(ConfigError):
        HttpSettings(rate_limit=0)
    with pytest.raises(ConfigError):
        HttpSettings(max_attempts=0)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", True),
        ("tmc12Ab3Cd4Ef5Gh6Ij7Kl8Mn9Op0QrStUvWxYz", True),
        ("/etc/login-audit/tmv1.token", False),
        ("reports", False),
        ("Firstname.Lastname1234@Example-Corp2.com", False),
        ("TMV1_TOKEN_PROD_EU", False),
        ("archive.sqlite3", False),
    ],
)
def test_what_looks_like_a_token(value: str, token: bool) -> None:
    from login_audit.config import looks_like_token

    assert looks_like_token(value) is token
