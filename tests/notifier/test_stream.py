"""The event stream on a real redis-server, and the notifier living through its restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier import source
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


def test_the_tail_and_the_read_back_keep_to_the_newest_headers_log(
    private_redis: RedisServer,
) -> None:
    old = [event(seq).model_copy(update={"epoch": "e1"}) for seq in range(1, 11)]
    new = [event(seq).model_copy(update={"epoch": "e2"}) for seq in (7, 8)]
    push(private_redis, *old, *new)  # a store restored to event 6 began epoch e2
    stream = RedisEventStream(private_redis.url, PREFIX)
    try:
        tail_id, tail_seq, tail_epoch = stream.tail()
        assert (tail_seq, tail_epoch) == (8, "e2")
        headers = stream.headers_after(6, 8, tail_id, "e2")
        assert headers is not None
        assert [(h.seq, h.epoch) for h in headers] == [(7, "e2"), (8, "e2")]
        assert stream.headers_after(0, 8, tail_id, "e2") is None  # 1-6 were of e1
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("pushed", "since", "expected"),
    [
        pytest.param([1, 2, 3, 4, 5], 2, [3, 4, 5], id="contiguous"),
        pytest.param([1, 2, 3, 4, 5], 0, [1, 2, 3, 4, 5], id="from-the-start"),
        pytest.param([1, 2, 4, 5], 2, None, id="one-missing"),
        pytest.param([3, 4, 5], 1, None, id="trimmed"),
        pytest.param([1, 2, 3, 5, 4, 3], 3, [4, 5], id="reordered-and-pushed-again"),
        pytest.param([1, 2, 4, 3, 5], 2, [3, 4, 5], id="older-seq-after-newer"),
    ],
)
def test_headers_after_reads_back_until_every_seq_is_found(
    private_redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    pushed: list[int],
    since: int,
    expected: list[int] | None,
) -> None:
    monkeypatch.setattr(source, "STREAM_BATCH", 2)  # several pages
    push(private_redis, *[event(seq) for seq in pushed])
    stream = RedisEventStream(private_redis.url, PREFIX)
    try:
        tail_id, tail_seq, tail_epoch = stream.tail()
        assert tail_seq == max(pushed)
        headers = stream.headers_after(since, max(pushed), tail_id, tail_epoch)
    finally:
        stream.close()
    assert (None if headers is None else [h.seq for h in headers]) == expected


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
