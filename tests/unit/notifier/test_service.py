"""The notifier's behaviour with fake parts: catch-up, live changes, bursts, duplicates,
gaps, restarts of the notifier and of Redis, and a desktop without a notification service."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from notifier.backend import FallbackDesktop, TerminalDesktop
from notifier.cursor import CursorFile
from notifier.service import Notifier
from shared.errors import InvalidInput, JobordreError, Unavailable
from shared.events import Cursor, EventHeader
from shared.models import OrderStatus
from tests.notifier.fakes import (
    ME,
    FakeClock,
    FakeDesktop,
    FakeQueries,
    FakeStream,
    event,
    placed,
)

QUIET = 0.3
BURST = 3.0


class World:
    """A foundation, its stream, a desktop, a clock and a cursor file for one notifier."""

    def __init__(self, home: Path) -> None:
        self.foundation = FakeQueries()
        self.stream = FakeStream()
        self.desktop = FakeDesktop()
        self.clock = FakeClock()
        self.cursor = CursorFile.for_caseworker(home, ME, "kf1")
        self.seq = 0

    def notifier(self, desktop=None, **parts) -> Notifier:
        return Notifier(
            foundation=self.foundation,
            stream=self.stream,
            desktop=desktop or self.desktop,
            cursor_file=self.cursor,
            principal=ME,
            caseworker="kf1",
            quiet_s=QUIET,
            burst_s=BURST,
            follows_refresh_s=30.0,
            reconnect_max_s=2.0,
            clock=self.clock,
            sleep=self.clock.sleep,
            **parts,
        )

    def change(self, *events, push: bool = True) -> None:
        """Commit events in the foundation and (normally) push their headers."""
        stamped = self.foundation.commit(*events)
        if push:
            self.stream.push(*stamped)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def status(self, order_id: int = 42, status=OrderStatus.INACTIVATED, **kw):
        return event(self.next_seq(), order_id, status=status, **kw)

    def placement(self, order_id: int = 42, **kw):
        return placed(self.next_seq(), order_id, **kw)

    def settle(self, notifier: Notifier, seconds: float = 5.0) -> None:
        """Let ``seconds`` pass in small steps, as the live loop would."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            notifier.step()
            self.clock.now += 0.05


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def saved(world: World) -> int | None:
    """The seq of the stored cursor."""
    cursor = world.cursor.load()
    return None if cursor is None else cursor.seq


def test_the_first_run_starts_from_now_and_shows_nothing_old(world: World) -> None:
    world.change(world.status(), world.placement())
    notifier = world.notifier()
    notifier.start()
    world.settle(notifier)
    assert world.desktop.shown == []
    assert saved(world) == 2


def test_a_followed_change_is_shown_once_with_its_texts(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.placement(by="jobcentre:751"))
    world.settle(notifier)
    assert world.desktop.shown == [
        (
            "Jobordre 42: Lagermedarbejder",
            "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus",
        )
    ]
    assert saved(world) == 1


def test_changes_of_unfollowed_orders_are_not_shown_but_move_the_cursor(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99), world.placement(order_id=42, by="akasse:3f"))
    world.settle(notifier)
    assert world.desktop.shown == []
    assert saved(world) == 2


def test_a_burst_of_twenty_changes_is_one_summary(world: World) -> None:
    world.foundation.follows["orders"] = [42, 43, 44]
    notifier = world.notifier()
    notifier.start()
    world.change(*[world.status(order_id=42 + i % 3) for i in range(20)])
    world.settle(notifier)
    assert len(world.desktop.shown) == 1
    title, body = world.desktop.shown[0]
    assert title == "20 ændringer på 3 jobordrer"
    assert len(body.splitlines()) == 3


def test_duplicated_headers_are_shown_once(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    first = world.status(status=OrderStatus.INACTIVATED)
    world.change(first)
    world.settle(notifier)
    world.stream.push(first)  # the relay pushed it again (at-least-once)
    world.settle(notifier)
    assert len(world.desktop.shown) == 1


def test_a_lost_push_is_filled_from_the_inbox(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    lost = world.status(status=OrderStatus.INACTIVATED)
    world.change(lost, push=False)
    world.change(world.status(order_id=99))  # unfollowed; its seq reveals the gap
    world.settle(notifier)
    assert [body for _, body in world.desktop.shown] == [
        "Ny status: Inaktiveret – tilstrækkelige henvisninger"
    ]
    assert world.foundation.inbox_calls[1] == 0  # the fill asked for everything after 0


def test_changes_while_off_are_one_catch_up_summary_and_never_shown_again(
    world: World,
) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status())
    world.settle(notifier)
    assert len(world.desktop.shown) == 1
    # Off: three changes happen, two of them to followed orders.
    world.change(world.placement(), world.status(order_id=99))
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    restarted = world.notifier()
    restarted.start()
    world.settle(restarted)
    assert len(world.desktop.shown) == 2
    title, body = world.desktop.shown[1]
    assert title == "Mens du var væk: 2 ændringer på 1 jobordre"
    assert "Afsluttet – behovet er dækket" in body
    assert "1 ny formidling fra Jobcenter Aarhus" in body
    # Started once more, with the stream still holding every header: nothing new.
    again = world.notifier()
    again.start()
    world.settle(again)
    assert len(world.desktop.shown) == 2


def test_the_catch_up_is_read_from_the_inbox_even_when_the_stream_holds_every_change(
    world: World,
) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(), world.status(order_id=99), world.placement(by="akasse:3f"))
    calls = len(world.foundation.inbox_calls)
    restarted = world.notifier()
    restarted.start()
    # A header on the stream is not the foundation's word: the catch-up asks the inbox,
    # page by page (from the cursor, then after this organisation's last event).
    assert world.foundation.inbox_calls[calls:] == [0, 2]
    assert [title for title, _ in world.desktop.shown] == [
        "Mens du var væk: 1 ændring på 1 jobordre"
    ]
    assert restarted.received == 3


def forged(seq: int, status: OrderStatus = OrderStatus.CLOSED_FILLED) -> EventHeader:
    """A header someone who can write to Redis made up: never committed by the foundation."""
    return event(seq, status=status, previous_status=OrderStatus.PROCESSING)


def test_a_forged_header_is_not_shown_and_does_not_hide_the_real_change(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.stream.push(forged(1))  # seq = cursor + 1: what the real change will have
    world.settle(notifier)
    assert world.desktop.shown == []
    assert notifier.received == 0
    world.change(world.status(status=OrderStatus.INACTIVATED))
    world.settle(notifier)
    assert world.desktop.shown == [
        ("Jobordre 42: Lagermedarbejder", "Ny status: Inaktiveret – tilstrækkelige henvisninger")
    ]


def test_a_forged_header_far_ahead_does_not_move_the_cursor(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.stream.push(forged(10_000))
    world.settle(notifier)
    world.change(world.status())
    world.settle(notifier)
    assert saved(world) == 1
    assert len(world.desktop.shown) == 1


def test_a_forged_header_on_the_stream_is_not_in_the_catch_up(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99))
    world.stream.push(forged(2))
    restarted = world.notifier()
    restarted.start()
    world.settle(restarted)
    assert world.desktop.shown == []
    assert saved(world) == 1


def test_the_catch_up_asks_the_inbox_when_the_stream_misses_a_change(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99))
    world.change(world.status(), push=False)  # lost with a Redis restart
    world.change(world.status(order_id=99))
    restarted = world.notifier()
    restarted.start()
    assert world.foundation.inbox_calls[-2:] == [0, 3]  # from the cursor, to the end
    assert [body for _, body in world.desktop.shown] == [
        "Jobordre 42: Lagermedarbejder – Ny status: Inaktiveret – tilstrækkelige henvisninger"
    ]


def test_a_change_right_after_the_catch_up_waits_for_the_burst_window(world: World) -> None:
    world.cursor.save(Cursor(0))
    world.change(world.status())
    notifier = world.notifier()
    notifier.start()
    assert len(world.desktop.shown) == 1  # the catch-up
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    world.settle(notifier, BURST - 0.5)
    assert len(world.desktop.shown) == 1
    world.settle(notifier, 1.0)
    assert world.desktop.shown[-1][1] == "Ny status: Afsluttet – behovet er dækket"


def test_a_change_still_held_is_not_past_the_stored_cursor(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99), world.status(), world.status(order_id=99))
    world.clock.now += 5  # so the cursor may be saved
    notifier.step()  # reads the three; the followed one waits for the quiet time
    notifier.step()  # and stores the cursor
    assert world.desktop.shown == []
    assert saved(world) == 1
    # Killed now: the next start shows it as a catch-up.
    restarted = world.notifier()
    restarted.start()
    assert [title for title, _ in world.desktop.shown] == [
        "Mens du var væk: 1 ændring på 1 jobordre"
    ]


def test_an_old_header_pushed_again_last_is_no_reason_to_show_anything_again(
    world: World,
) -> None:
    notifier = world.notifier()
    notifier.start()
    first = world.status(order_id=99)
    world.change(first, world.status(), world.status(order_id=99))
    world.settle(notifier)
    assert len(world.desktop.shown) == 1
    world.stream.push(first)  # a relay pushes seq 1 again, after seq 3
    restarted = world.notifier()
    restarted.start()
    world.settle(restarted)
    assert len(world.desktop.shown) == 1


def test_a_new_store_behind_the_stored_cursor_is_followed_from_its_end(world: World) -> None:
    world.cursor.save(Cursor(500))  # from an earlier foundation
    world.change(world.status(order_id=99), world.status(order_id=99))
    notifier = world.notifier()
    notifier.start()
    assert notifier.received == 2
    world.change(world.status())
    world.settle(notifier)
    assert [title for title, _ in world.desktop.shown] == ["Jobordre 42: Lagermedarbejder"]


def test_reconnects_after_redis_restarts_and_misses_nothing(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.change(world.status())
    world.settle(notifier)
    stops = iter([False] * 40 + [True])

    # Redis goes away; while it is gone, a followed change is committed but its push
    # is lost with the old Redis. Then Redis is back, empty.
    world.stream.down = True
    world.foundation.down = True
    world.change(world.placement(), push=False)

    def stop() -> bool:
        done = next(stops, True)
        if len(world.clock.slept) == 3:
            world.stream.down = world.foundation.down = False
            world.stream.reset()
        world.clock.now += 0.05
        return done

    notifier.run(stop)
    assert world.clock.slept[:3] == [0.1, 0.2, 0.4]  # backs off while Redis is away
    assert [body for _, body in world.desktop.shown] == [
        "Ny status: Inaktiveret – tilstrækkelige henvisninger",
        "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus",
    ]
    # And the new, empty stream is read from its start: a later push is seen.
    world.change(world.status(status=OrderStatus.PROCESSING))
    world.clock.now += BURST
    world.settle(notifier)
    assert world.desktop.shown[-1][1] == "Ny status: Under behandling"


def test_a_read_the_workers_refuse_is_asked_again_and_nothing_is_missed(world: World) -> None:
    """After a broker failover a lost reply's read is redelivered and refused as a replay
    of its id: the notifier asks the inbox again (a new id) instead of stopping."""
    notifier = world.notifier()
    notifier.start()
    world.foundation.refusals.append(
        InvalidInput("command_id was used before (fake)", field="command_id")
    )
    world.change(world.status())
    stops = iter([False] * 20 + [True])

    def stop() -> bool:
        world.clock.now += 0.05
        return next(stops, True)

    notifier.run(stop)
    assert world.foundation.refusals == [], "the refused read happened"
    assert [body for _, body in world.desktop.shown] == [
        "Ny status: Inaktiveret – tilstrækkelige henvisninger"
    ]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(
            InvalidInput("command_id was used before (fake)", field="command_id"), id="refused"
        ),
        pytest.param(Unavailable("the connection was lost (fake)"), id="lost"),
    ],
)
def test_a_read_that_fails_after_a_page_of_changes_shows_none_of_them_twice(
    world: World, failure: JobordreError, caplog: pytest.LogCaptureFixture
) -> None:
    """A wake-up reads the inbox until a page comes back empty. When the read after a page
    of changes fails (a broker failover's refused replay, a lost connection), the changes
    already held are not held again when the notifier catches up."""
    notifier = world.notifier()
    notifier.start()
    world.foundation.refusals += [None, failure]
    world.change(world.status())
    stops = iter([False] * 40 + [True])

    def stop() -> bool:
        world.clock.now += 0.05
        return next(stops, True)

    with caplog.at_level(logging.INFO, logger="notifier.service"):
        notifier.run(stop)
    assert world.foundation.refusals == [], "the failed read happened"
    assert [body for _, body in world.desktop.shown] == [
        "Ny status: Inaktiveret – tilstrækkelige henvisninger"
    ]
    notified = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notified")]
    assert notified == ["notified 1 change(s) on 1 order(s)"]


def test_the_backoff_is_capped(world: World) -> None:
    world.stream.down = True
    stops = iter([False] * 8 + [True])
    world.notifier().run(lambda: next(stops, True))
    assert world.clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert world.desktop.shown == []


def test_follows_are_refreshed_while_running(world: World) -> None:
    notifier = world.notifier()
    notifier.start()
    world.foundation.follows["orders"] = [7]
    world.clock.now += 31
    notifier.step()
    world.change(world.status(order_id=7))
    world.settle(notifier)
    assert world.desktop.shown[0][0] == "Jobordre 7: Lagermedarbejder"


def test_without_a_notification_service_it_says_so_once_and_prints(world: World) -> None:
    world.desktop.broken = True
    out, warn = io.StringIO(), io.StringIO()
    notifier = world.notifier(FallbackDesktop(world.desktop, TerminalDesktop(out), warn))
    notifier.start()
    world.change(world.status())
    world.settle(notifier)
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    world.settle(notifier)
    assert warn.getvalue().count("cannot show desktop notifications") == 1
    assert out.getvalue().splitlines() == [
        "Jobordre 42: Lagermedarbejder: Ny status: Inaktiveret – tilstrækkelige henvisninger",
        "Jobordre 42: Lagermedarbejder: Ny status: Afsluttet – behovet er dækket",
    ]


def test_the_first_start_on_an_empty_stream_reads_no_event(world: World) -> None:
    world.change(*[world.status() for _ in range(50)], push=False)  # Redis was emptied
    notifier = world.notifier()
    notifier.start()
    assert world.foundation.listed <= 1
    assert (notifier.received, notifier.epoch) == (50, "e1")
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    world.settle(notifier)
    assert [body for _, body in world.desktop.shown] == ["Ny status: Afsluttet – behovet er dækket"]


def test_a_redis_that_comes_back_with_an_older_stream_shows_nothing_twice(world: World) -> None:
    world.foundation.follows["orders"] = [42, 43, 44]
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99), world.status(order_id=99), world.status(order_id=99))
    world.change(world.status(order_id=43), world.status(order_id=44))
    world.settle(notifier)
    assert [title for title, _ in world.desktop.shown] == ["2 ændringer på 2 jobordrer"]
    # Redis reloads an older snapshot (RDB, or AOF everysec losing its last second): its
    # stream ends at event 3, below the stored cursor. Then the notifier restarts.
    world.stream.entries = world.stream.entries[:3]
    restarted = world.notifier()
    restarted.start()
    assert saved(world) == 5
    world.change(world.status(order_id=42))
    world.settle(restarted)
    assert [title for title, _ in world.desktop.shown] == [
        "2 ændringer på 2 jobordrer",
        "Jobordre 42: Lagermedarbejder",
    ]


def test_a_running_notifier_keeps_its_cursor_when_the_stream_is_reloaded_shorter(
    world: World,
) -> None:
    world.foundation.follows["orders"] = [42, 43, 44]
    notifier = world.notifier()
    notifier.start()
    world.change(world.status(order_id=99), world.status(order_id=43), world.status(order_id=44))
    world.settle(notifier)
    world.stream.entries = world.stream.entries[:1]
    world.clock.now += 31  # the next refresh of the follows looks at the stream's tail
    world.settle(notifier)
    world.change(world.status(order_id=42))
    world.settle(notifier)
    assert [title for title, _ in world.desktop.shown] == [
        "2 ændringer på 2 jobordrer",
        "Jobordre 42: Lagermedarbejder",
    ]
    assert notifier.received == 4


def _ten_events_seen(world: World) -> Notifier:
    notifier = world.notifier()
    notifier.start()
    world.change(*[world.status(order_id=99) for _ in range(9)], world.status())
    world.settle(notifier)
    assert len(world.desktop.shown) == 1 and saved(world) == 10
    return notifier


def test_changes_after_a_restore_from_a_backup_are_shown_by_a_running_notifier(
    world: World,
) -> None:
    notifier = _ten_events_seen(world)
    world.foundation.restore(upto=6)  # the backup ends at event 6: seqs 7.. come again
    world.seq = 6
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    world.settle(notifier)
    assert world.desktop.shown[-1] == (
        "Jobordre 42: Lagermedarbejder",
        "Ny status: Afsluttet – behovet er dækket",
    )
    assert world.cursor.load() == Cursor(7, "e2")


def test_changes_after_a_restore_from_a_backup_are_caught_up_at_the_next_start(
    world: World,
) -> None:
    _ten_events_seen(world)
    world.foundation.restore(upto=6)
    world.seq = 6
    world.change(world.status(status=OrderStatus.CLOSED_FILLED), world.placement())
    restarted = world.notifier()
    restarted.start()
    title, body = world.desktop.shown[-1]
    assert title == "Mens du var væk: 2 ændringer på 1 jobordre"
    assert "Afsluttet – behovet er dækket" in body
    assert world.cursor.load() == Cursor(8, "e2")


def test_a_new_store_on_the_same_redis_is_read_from_its_start(world: World) -> None:
    notifier = _ten_events_seen(world)
    world.foundation.new_store()
    world.seq = 0
    world.change(world.status(status=OrderStatus.CLOSED_FILLED))
    world.settle(notifier)
    assert world.desktop.shown[-1][1] == "Ny status: Afsluttet – behovet er dækket"
    assert world.cursor.load() == Cursor(1, "ab")
