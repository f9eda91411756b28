"""The event stream on a real redis-server, and the notifier living through its restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.cursor import CursorFile
from notifier.service import Notifier
from notifier.source import STREAM_START, RedisEventStream
from shared.errors import Unavailable
from shared.events import EVENTS_STREAM_MAXLEN, EventHeader, stream_key
from tests.conftest import RedisServer, start_redis, wait_until
from tests.notifier.fakes import ME, FakeDesktop, FakeFoundation, event

pytestmark = pytest.mark.integration

PREFIX = "jobordre-test"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so it can be restarted."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def push(server: RedisServer, *headers: EventHeader) -> None:
    """What the relay does: XADD the header JSON under the field ``event``."""
    client = server.client()
    for header in headers:
        client.xadd(
            stream_key(PREFIX),
            {"event": header.model_dump_json()},
            maxlen=EVENTS_STREAM_MAXLEN,
            approximate=True,
        )
    client.close()


def test_tail_and_read(private_redis: RedisServer) -> None:
    stream = RedisEventStream(private_redis.url, PREFIX)
    try:
        assert stream.tail() == (STREAM_START, None, None)
        assert stream.read(STREAM_START, 1) == []
        push(private_redis, event(1), event(2))
        private_redis.client().xadd(stream_key(PREFIX), {"something": "else"})
        entries = stream.read(STREAM_START, 1)
        assert [header.seq if header else None for _, header in entries] == [1, 2, None]
        push(private_redis, event(1))  # an old header pushed again
        tail_id, tail_seq, tail_epoch = stream.tail()
        assert tail_id == stream.read(entries[-1][0], 1)[0][0]
        assert tail_seq == 2  # the highest seq, not the last entry's
        assert tail_epoch is None  # headers from before the log had an identity
        assert [e for e, _ in stream.read(entries[1][0], 1)] == [entries[2][0], tail_id]
    finally:
        stream.close()


def test_a_restarted_redis_raises_unavailable_then_works_again(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    stream = RedisEventStream(private_redis.url, PREFIX)
    try:
        push(private_redis, event(1))
        assert len(stream.read(STREAM_START, 1)) == 1
        private_redis.stop()
        with pytest.raises(Unavailable, match="event stream"):
            stream.read(STREAM_START, 1)
        restarted = start_redis(tmp_path / "redis", private_redis.port)
        try:
            assert stream.tail() == (STREAM_START, None, None)  # a fresh, empty stream
        finally:
            restarted.stop()
    finally:
        stream.close()


def test_the_notifier_reconnects_by_itself_when_redis_restarts(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    foundation = FakeFoundation()
    desktop = FakeDesktop()
    stream = RedisEventStream(private_redis.url, PREFIX)
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
