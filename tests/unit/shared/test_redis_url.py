"""JOBORDRE_REDIS_URL: the Sentinel form is parsed in full, and a malformed URL is refused
at start with a message that says what is wrong and what the form is."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.errors import InvalidInput
from shared.models import invalid_input_from
from shared.redis_url import (
    SentinelUrl,
    check_redis_url,
    parse_sentinel_url,
    redact_redis_url,
)
from shared.settings import Settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "redis+sentinel://s1:26380,s2:26381,s3:26382/mymaster/2",
            SentinelUrl(
                sentinels=(("s1", 26380), ("s2", 26381), ("s3", 26382)),
                master_name="mymaster",
                db=2,
                username=None,
                password=None,
                sentinel_password=None,
                tls=False,
            ),
            id="three-sentinels-with-db",
        ),
        pytest.param(
            "redis+sentinel://s1,s2/mymaster",
            SentinelUrl((("s1", 26379), ("s2", 26379)), "mymaster", 0, None, None, None, False),
            id="default-port-and-db",
        ),
        pytest.param(
            "rediss+sentinel://app:p%40ss@[::1]:26379,10.0.0.2:26379/jobs/0"
            "?sentinel_password=s3cret",
            SentinelUrl(
                (("::1", 26379), ("10.0.0.2", 26379)), "jobs", 0, "app", "p@ss", "s3cret", True
            ),
            id="tls-acl-user-ipv6-sentinel-password",
        ),
        pytest.param(
            "rediss+sentinel://h:1/m/0?ssl_ca_certs=/etc/ca.crt&ssl_cert_reqs=required",
            SentinelUrl(
                (("h", 1),),
                "m",
                0,
                None,
                None,
                None,
                True,
                (("ssl_ca_certs", "/etc/ca.crt"), ("ssl_cert_reqs", "required")),
            ),
            id="tls-options",
        ),
        pytest.param(
            "redis+sentinel://:secret@h:1/m/0",
            SentinelUrl((("h", 1),), "m", 0, None, "secret", None, False),
            id="password-only",
        ),
    ],
)
def test_a_sentinel_url_names_the_sentinels_the_master_and_the_credentials(
    url: str, expected: SentinelUrl
) -> None:
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        pytest.param("redis+sentinel:///mymaster/0", "no sentinel address", id="no-hosts"),
        pytest.param("redis+sentinel://h1:26379,h2:26379", "master's name", id="no-master"),
        pytest.param("redis+sentinel://h1:26379/", "master's name", id="empty-master"),
        pytest.param("redis+sentinel://h1:port/m/0", "port number", id="port-not-a-number"),
        pytest.param("redis+sentinel://h1:70000/m/0", "port number", id="port-out-of-range"),
        pytest.param("redis+sentinel://h1:1,/m/0", "has no host", id="empty-host"),
        pytest.param("redis+sentinel://h1/m/zero", "database number", id="db-not-a-number"),
        pytest.param("redis+sentinel://h1/m/0/x", "database number", id="path-too-long"),
        pytest.param("redis+sentinel://h1/m/0?db=3", "unknown query parameter 'db'", id="query"),
        pytest.param(
            "redis+sentinel://h1/m/0?ssl_ca_certs=/ca.crt", "needs TLS", id="tls-option-no-tls"
        ),
        pytest.param("http://h1:6379/0", "unknown scheme 'http'", id="foreign-scheme"),
        pytest.param("localhost:6379", "unknown scheme ''", id="no-scheme"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_fault_and_the_form(url: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_redis_url(url)
    assert complaint in refused.value.message
    assert "redis+sentinel://[[user]:password@]host1:port1,host2:port2/MASTER_NAME" in (
        refused.value.message
    )
    assert refused.value.field == "redis_url"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://:pw@127.0.0.1:6390/0", id="redis"),
        pytest.param("rediss://user:pw@redis.example:6380/1", id="rediss"),
        pytest.param("unix:///run/redis.sock?db=0", id="unix"),
        pytest.param("redis+sentinel://a:1,b:2/m/0", id="sentinel"),
    ],
)
def test_the_known_forms_pass_the_settings(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


def test_the_settings_refuse_a_malformed_sentinel_url_without_echoing_its_password() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url="redis+sentinel://:topsecret@h1:26379")
    # What the CLI prints (workers/cli/__init__.py turns the settings' error into this).
    shown = invalid_input_from(refused.value)
    assert shown.field == "redis_url"
    assert "master's name" in shown.message
    assert "topsecret" not in shown.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:pw@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0", id="redis"),
        pytest.param("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0", id="no-password"),
        pytest.param(
            "redis+sentinel://app:pw@a:1,b:2/m/0?sentinel_password=sp",
            "redis+sentinel://app:***@a:1,b:2/m/0?sentinel_password=***",
            id="sentinel-both-passwords",
        ),
        pytest.param("redis+sentinel://a:1,b:2/m/0", "redis+sentinel://a:1,b:2/m/0", id="plain"),
    ],
)
def test_redaction_hides_every_password(url: str, shown: str) -> None:
    assert redact_redis_url(url) == shown
