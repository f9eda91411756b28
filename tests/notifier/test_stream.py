"""The wake-up streams on a real redis-server, and the notifier living through its restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.cursor import CursorFile
from notifier.service import Notifier
from notifier.source import STREAM_START, RedisEventStream
from shared.errors import Unavailable
from shared.events import (
    AUTHORITIES,
    EVENTS_STREAM_MAXLEN,
    EventHeader,
    Wake,
    audience_stream_key,
)
from tests.conftest import RedisServer, start_redis, wait_until
from tests.notifier.fakes import ME, FakeDesktop, FakeQueries, event

pytestmark = pytest.mark.integration

PREFIX = "jobordre-test"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so it can be restarted."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def push(server: RedisServer, *headers: EventHeader, audience: str = AUTHORITIES) -> None:
    """What the relay does: XADD each event's wake-up onto its audience's stream."""
    client = server.client()
    for header in headers:
        client.xadd(
            audience_stream_key(PREFIX, audience),
            {"wake": Wake(header.id, header.seq, header.epoch).to_json()},
            maxlen=EVENTS_STREAM_MAXLEN,
            approximate=True,
        )
    client.close()


def test_tail_and_read_the_organisations_own_streams(private_redis: RedisServer) -> None:
    stream = RedisEventStream(private_redis.url, PREFIX, ME)
    try:
        assert stream.tail() == (f"{STREAM_START} {STREAM_START}", None, None)
        assert stream.read(STREAM_START, 1) == []
        push(private_redis, event(1), event(2))
        push(private_redis, event(3), audience=ME)
        push(private_redis, event(4), audience="jobcentre:101")  # not ours: never read
        private_redis.client().xadd(audience_stream_key(PREFIX, ME), {"something": "else"})
        entries = stream.read(STREAM_START, 1)
        assert sorted(str(w.seq) if w else "-" for _, w in entries) == ["-", "1", "2", "3"]
        push(private_redis, event(1))  # an old event pushed again
        tail, tail_seq, tail_epoch = stream.tail()
        assert tail_seq == 3  # the highest seq, not the last entry's
        assert tail_epoch is None  # events from before the log had an identity
        (again,) = stream.read(entries[-1][0], 1)
        assert again[0] == tail
        assert again[1] is not None and again[1].seq == 1
        assert stream.read(tail, 1) == []
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("principal", "audiences"),
    [
        pytest.param("jobcentre:101", ["jobcentre:101", AUTHORITIES], id="jobcentre"),
        pytest.param("akasse:3f", ["akasse:3f", AUTHORITIES], id="akasse"),
        pytest.param("employer:25313763", ["employer:25313763"], id="employer"),
    ],
)
def test_each_organisation_reads_only_its_audiences_streams(
    private_redis: RedisServer, principal: str, audiences: list[str]
) -> None:
    stream = RedisEventStream(private_redis.url, PREFIX, principal)
    try:
        assert stream.keys == [audience_stream_key(PREFIX, a) for a in audiences]
    finally:
        stream.close()


def test_a_restarted_redis_raises_unavailable_then_works_again(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    stream = RedisEventStream(private_redis.url, PREFIX, ME)
    try:
        push(private_redis, event(1))
        assert len(stream.read(STREAM_START, 1)) == 1
        private_redis.stop()
        with pytest.raises(Unavailable, match="event stream"):
            stream.read(STREAM_START, 1)
        restarted = start_redis(tmp_path / "redis", private_redis.port)
        try:
            # fresh, empty streams
            assert stream.tail() == (f"{STREAM_START} {STREAM_START}", None, None)
        finally:
            restarted.stop()
    finally:
        stream.close()


def test_the_notifier_reconnects_by_itself_when_redis_restarts(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    foundation = FakeQueries()
    desktop = FakeDesktop()
    stream = RedisEventStream(private_redis.url, PREFIX, ME)
    notifier = Notifier(
        foundation=foundation,
        stream=stream,
        desktop=desktop,
        cursor_file=CursorFile.for_caseworker(tmp_path, ME, "kf1"),
        principal=ME,
        caseworker="kf1",
        quiet_s=0.05,
        burst_s=0.1,
        reconnect_max_s=0.2,
    )
    stop = threading.Event()
    runner = threading.Thread(target=notifier.run, args=(stop.is_set,))
    runner.start()
    server = private_redis
    try:
        wait_until(lambda: notifier.received is not None, 20, "the notifier to start")
        first = event(1)
        foundation.commit(first)
        push(server, first)
        wait_until(lambda: len(desktop.shown) == 1, 20, "the first notification")

        server.stop()
        # Committed while Redis is down: its push never happens (lost with that Redis).
        foundation.commit(event(2, 99), event(3, 42, title="Truckfører"))
        server = start_redis(tmp_path / "redis", private_redis.port)
        wait_until(lambda: len(desktop.shown) == 2, 30, "the change made while Redis was down")
        assert desktop.shown[1][0] == "Jobordre 42: Truckfører"

        later = event(4, 42, title="Truckfører II")
        foundation.commit(later)
        push(server, later)
        wait_until(lambda: len(desktop.shown) == 3, 20, "a change after the restart")
        assert desktop.shown[2][0] == "Jobordre 42: Truckfører II"
    finally:
        stop.set()
        runner.join(30)
        stream.close()
        server.stop()
    assert not runner.is_alive()
    assert len(desktop.shown) == 3
