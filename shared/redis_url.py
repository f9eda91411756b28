"""The forms ``JOBORDRE_REDIS_URL`` takes, parsed without Redis itself.

``redis://``, ``rediss://`` (TLS) and ``unix://`` name one server; redis-py reads them.
``redis+sentinel://`` names a Redis Sentinel deployment instead::

    redis+sentinel://[[USER]:PASSWORD@]HOST1:PORT1,HOST2:PORT2/MASTER_NAME[/DB]
                     [?sentinel_password=SECRET][&ssl_ca_certs=/path/ca.crt...]

The sentinels are asked which server is the master of ``MASTER_NAME``; the user and
password authenticate to that master (and its replicas), as in ``redis://``. Sentinels
usually run without a password; ``sentinel_password`` gives theirs when they have one.
``rediss+sentinel://`` speaks TLS to the sentinels and to the master alike, and takes
redis-py's TLS options as query parameters as ``rediss://`` does (``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``). This module only parses;
``workers.transport.redis_connection`` turns a URL into a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from shared.errors import InvalidInput

#: Schemes that name one Redis server (redis-py parses the rest of the URL).
SERVER_SCHEMES = ("redis", "rediss", "unix")
#: Schemes that name a Sentinel deployment, plain and TLS.
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: Port of a sentinel whose address gives none (Redis Sentinel's own default).
DEFAULT_SENTINEL_PORT = 26379
#: TLS options of ``rediss+sentinel://`` (redis-py's names), for sentinels and master.
TLS_QUERY_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
#: The query parameters a Sentinel URL understands.
SENTINEL_QUERY_KEYS = ("sentinel_password", *TLS_QUERY_KEYS)
#: The form, for error messages.
SENTINEL_FORM = (
    "redis+sentinel://[[user]:password@]host1:port1,host2:port2/MASTER_NAME[/DB]"
    "[?sentinel_password=...] (rediss+sentinel:// for TLS)"
)


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    #: (host, port) of each sentinel, in the URL's order.
    sentinels: tuple[tuple[str, int], ...]
    #: The name the sentinels monitor the master under (``sentinel monitor NAME ...``).
    master_name: str
    #: Database number on the master.
    db: int
    #: ACL user and password for the master and replicas; None = none.
    username: str | None
    password: str | None
    #: Password of the sentinels themselves; None = they have none.
    sentinel_password: str | None
    #: TLS to the sentinels, master and replicas (``rediss+sentinel://``).
    tls: bool
    #: redis-py TLS options (name, value) from the query, for every connection.
    tls_options: tuple[tuple[str, str], ...] = ()


def _malformed(what: str) -> InvalidInput:
    return InvalidInput(
        f"JOBORDRE_REDIS_URL: {what}; a Sentinel URL has the form {SENTINEL_FORM}",
        field="redis_url",
    )


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case ('' when it has none)."""
    head, separator, _ = url.partition("://")
    return head.lower() if separator else ""


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names a Sentinel deployment rather than one server."""
    return scheme_of(url) in SENTINEL_SCHEMES


def _sentinel_address(text: str) -> tuple[str, int]:
    if text.startswith("["):  # IPv6: [::1]:26379
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise _malformed(f"sentinel address {text!r} is not [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
        if not host:
            raise _malformed(f"sentinel address {text!r} has no host")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _malformed(f"sentinel address {text!r} has no port number from 1 to 65535")
    return host, int(port_text)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; :class:`InvalidInput` says what is wrong."""
    scheme = scheme_of(url)
    if scheme not in SENTINEL_SCHEMES:
        raise _malformed(f"the scheme must be redis+sentinel or rediss+sentinel, not {scheme!r}")
    rest = url.split("://", 1)[1]
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user_text, colon, password_text = credentials.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    if not hosts:
        raise _malformed("no sentinel address (host:port) is given")
    sentinels = tuple(_sentinel_address(part.strip()) for part in hosts.split(","))
    segments = path.split("/") if slash else []
    if not segments or not segments[0]:
        raise _malformed("the master's name (the one the sentinels monitor) is missing")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        after = "/".join(segments[1:])
        raise _malformed(f"after the master's name comes a database number, not {after!r}")
    fields = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(fields) - set(SENTINEL_QUERY_KEYS))
    if unknown or fragment:
        raise _malformed(
            f"unknown query parameter {(unknown or ['#' + fragment])[0]!r} (known: "
            + ", ".join(SENTINEL_QUERY_KEYS)
            + ")"
        )
    sentinel_password = fields.get("sentinel_password", [None])[-1] or None
    tls_options = tuple((key, fields[key][-1]) for key in TLS_QUERY_KEYS if key in fields)
    if tls_options and scheme != "rediss+sentinel":
        raise _malformed(f"{tls_options[0][0]} needs TLS: use rediss+sentinel://")
    return SentinelUrl(
        sentinels=sentinels,
        master_name=unquote(segments[0]),
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=username,
        password=password,
        sentinel_password=sentinel_password,
        tls=scheme == "rediss+sentinel",
        tls_options=tls_options,
    )


def check_redis_url(url: str) -> str:
    """``url`` if it has a scheme jobordre can connect with (a Sentinel URL is parsed in
    full); :class:`InvalidInput` naming the problem and the forms otherwise."""
    scheme = scheme_of(url)
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
    elif scheme not in SERVER_SCHEMES:
        raise InvalidInput(
            f"JOBORDRE_REDIS_URL: unknown scheme {scheme!r}; use redis://[[user]:password@]"
            "host:port/db, rediss:// (TLS), unix:///path/to.sock, or " + SENTINEL_FORM,
            field="redis_url",
        )
    return url


def redact_redis_url(url: str) -> str:
    """A Redis URL fit for messages and logs: every password replaced by ``***``."""
    scheme = scheme_of(url)
    if scheme not in SENTINEL_SCHEMES:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@" + parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    if at:
        user_text, colon, _ = credentials.partition(":")
        credentials = f"{user_text}:***" if colon else user_text
    if query:
        pairs = []
        for pair in query.split("&"):
            key, equals, _ = pair.partition("=")
            secret = unquote(key) == "sentinel_password"
            pairs.append(f"{key}=***" if equals and secret else pair)
        query = "&".join(pairs)
    text = f"{scheme}://" + (f"{credentials}@" if at else "") + hosts + slash + path
    return text + (f"?{query}" if query else "")


def sentinel_url(
    sentinels: list[tuple[str, int]], master_name: str, db: int = 0, password: str | None = None
) -> str:
    """The URL of a Sentinel deployment (for tests and tools that build one)."""
    auth = f":{quote(password, safe='')}@" if password else ""
    hosts = ",".join(f"{host}:{port}" for host, port in sentinels)
    return f"redis+sentinel://{auth}{hosts}/{quote(master_name, safe='')}/{db}"
