"""The tray's side of the notifier, with fake parts: the state it shows follows the
connection and the pause, the menu's requests pause, resume, show the recent notifications
again, unfollow and quit, and changes while paused come as one summary, never lost."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from notifier.texts import Language
from notifier.tray import Controls, Entry, State, View, WaitingTray, menu_entries
from shared.models import OrderStatus
from tests.notifier.fakes import FakeTray
from tests.unit.notifier.test_service import BURST, World, saved


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_the_state_follows_the_connection(world: World) -> None:
    tray = FakeTray()
    world.stream.down = world.foundation.down = True
    turns = iter(range(100))

    def stop() -> bool:
        turn = next(turns)
        if turn == 3:
            world.stream.down = world.foundation.down = False  # Redis is back
        if turn == 6:
            world.stream.down = world.foundation.down = True  # and gone again
        if turn == 9:
            world.stream.down = world.foundation.down = False
        world.clock.now += 0.05
        return turn >= 12

    world.notifier(trays=[tray]).run(stop)
    assert tray.states == ["reconnecting", "connected", "reconnecting", "connected"]
    assert [view.connected for view in tray.views][-1] is True


def test_changes_while_paused_come_as_one_summary_on_resume(world: World) -> None:
    world.foundation.follows["orders"] = [42, 43]
    tray = FakeTray()
    controls = Controls()
    notifier = world.notifier(trays=[tray], controls=controls)
    notifier.start()
    controls.request("pause")
    world.settle(notifier, 0.1)
    assert tray.views[-1].state == State.PAUSED
    world.change(world.status(42), world.placement(43))
    world.settle(notifier, 10 * BURST)
    world.change(world.status(42, status=OrderStatus.PROCESSING))
    world.settle(notifier, 10 * BURST)
    assert world.desktop.shown == []
    # Held back, so not past the stored cursor: quitting now would lose none of them.
    assert saved(world) == 0
    controls.request("resume")
    world.settle(notifier, 0.1)
    assert len(world.desktop.shown) == 1
    title, body = world.desktop.shown[0]
    assert title == "Mens der var pause: 3 ændringer på 2 jobordrer"
    assert body.splitlines()[0] == "Jobordre 42: Lagermedarbejder – Ny status: Under behandling"
    assert saved(world) == 3
    assert tray.states[-2:] == ["paused", "connected"]


def test_a_pause_ends_by_itself_after_its_hour(world: World) -> None:
    controls = Controls()
    notifier = world.notifier(controls=controls, pause_s=3600)
    notifier.start()
    controls.request("pause")
    world.settle(notifier, 0.1)
    world.change(world.status())
    world.clock.now += 3599
    world.settle(notifier, 0.5)
    assert world.desktop.shown == []
    world.settle(notifier, 1.0)
    assert [title for title, _ in world.desktop.shown] == [
        "Mens der var pause: 1 ændring på 1 jobordre"
    ]
    assert notifier.view.state == State.CONNECTED


def test_quitting_while_paused_loses_nothing(world: World) -> None:
    controls = Controls()
    notifier = world.notifier(controls=controls)
    notifier.start()
    controls.request("pause")
    world.settle(notifier, 0.1)
    world.change(world.status())
    world.settle(notifier, 10 * BURST)
    controls.request("quit")
    notifier.run(lambda: False)
    assert world.desktop.shown == []
    again = world.notifier()
    again.start()
    assert [title for title, _ in world.desktop.shown] == [
        "Mens du var væk: 1 ændring på 1 jobordre"
    ]


def test_unfollow_from_the_menu_sends_the_unfollow_command(world: World) -> None:
    world.foundation.follows["orders"] = [42, 43]
    tray = FakeTray()
    controls = Controls()
    notifier = world.notifier(trays=[tray], controls=controls)
    notifier.start()
    assert tray.views[-1].orders == (42, 43)
    controls.request("unfollow", 42)
    world.settle(notifier, 0.1)
    assert world.foundation.unfollowed == [("kf1", 42)]
    assert tray.views[-1].orders == (43,)
    world.change(world.status(42))
    world.settle(notifier)
    assert world.desktop.shown == []


def test_an_unfollow_asked_while_cut_off_is_sent_once_connected(world: World) -> None:
    controls = Controls()
    notifier = world.notifier(controls=controls)
    notifier.start()
    world.stream.down = world.foundation.down = True
    controls.request("unfollow", 42)
    turns = iter(range(100))

    def stop() -> bool:
        turn = next(turns)
        if turn == 5:
            world.stream.down = world.foundation.down = False
        world.clock.now += 0.05
        return turn >= 10

    notifier.run(stop)
    assert world.foundation.unfollowed == [("kf1", 42)]


def test_show_recent_shows_the_last_notifications_again(world: World) -> None:
    controls = Controls()
    notifier = world.notifier(controls=controls)
    notifier.start()
    controls.request("recent")
    world.settle(notifier, 0.1)
    assert world.desktop.shown == [
        ("Ingen notifikationer endnu", "Ændringer på de jobordrer du følger vises her.")
    ]
    world.desktop.shown.clear()
    for status in (OrderStatus.INACTIVATED, OrderStatus.PROCESSING):
        world.change(world.status(status=status))
        world.settle(notifier, 2 * BURST)
    shown = list(world.desktop.shown)
    controls.request("recent")
    world.settle(notifier, 0.1)
    assert world.desktop.shown == shown + shown
    assert notifier.view.last_title == "Jobordre 42: Lagermedarbejder"


def _labels(entries: tuple[Entry, ...]) -> list[object]:
    return [
        (entry.label, _labels(entry.children)) if entry.children else entry.label
        for entry in entries
    ]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        pytest.param(
            "da",
            [
                "Jobordre: forbundet",
                ("Jobordre 42", ["Åbn", "Følg ikke længere"]),
                ("Jobordre 43", ["Åbn", "Følg ikke længere"]),
                "Pause i 1 time",
                "Vis seneste",
                "Afslut",
            ],
            id="danish",
        ),
        pytest.param(
            "en",
            [
                "Jobordre: connected",
                ("Job order 42", ["Open", "Unfollow"]),
                ("Job order 43", ["Open", "Unfollow"]),
                "Pause for 1 hour",
                "Show recent",
                "Quit",
            ],
            id="english",
        ),
    ],
)
def test_the_menu_lists_the_follows_and_the_actions(language: Language, expected: list) -> None:
    view = View(State.CONNECTED, orders=(42, 43), connected=True)
    assert _labels(menu_entries(view, language, Controls(), lambda order_id: None)) == expected


def test_the_menu_says_resume_while_paused_and_has_no_open_without_an_order_url() -> None:
    controls = Controls()
    entries = menu_entries(View(State.PAUSED, orders=(7,)), "da", controls, None)
    assert _labels(entries) == [
        "Jobordre: på pause",
        ("Jobordre 7", ["Følg ikke længere"]),
        "Genoptag",
        "Vis seneste",
        "Afslut",
    ]
    assert entries[0].heading
    for entry in (entries[1].children[0], entries[2], entries[4]):
        assert entry.action is not None
        entry.action()
    assert controls.take() == [("unfollow", 7), ("resume", None), ("quit", None)]
    assert controls.quitting.is_set()


def test_the_menu_without_single_follows_says_so() -> None:
    entries = menu_entries(View(State.RECONNECTING), "da", Controls(), None)
    assert _labels(entries)[:2] == ["Jobordre: forbinder igen", "Følger ingen enkelte jobordrer"]
    assert entries[1].heading


def test_without_a_tray_host_it_says_so_in_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    made: list[FakeTray] = []

    def make() -> FakeTray:
        made.append(FakeTray())
        return made[-1]

    with caplog.at_level(logging.WARNING, logger="notifier"):
        tray = WaitingTray(make, lambda: False, 0.3)
        tray.update(View(State.CONNECTED))
        tray._thread.join(5)
        tray.stop()
    assert made == []
    assert [r.getMessage() for r in caplog.records] == [
        "no tray icon: this desktop has no system tray (XEmbed)"
    ]


def test_a_tray_that_comes_up_later_gets_the_last_view() -> None:
    present = [False]
    made: list[FakeTray] = []

    def make() -> FakeTray:
        made.append(FakeTray())
        return made[-1]

    tray = WaitingTray(make, lambda: present[0], 30)
    tray.update(View(State.RECONNECTING))
    tray.update(View(State.CONNECTED, connected=True))
    present[0] = True
    tray._thread.join(5)
    assert [view.state for view in made[0].views] == [State.CONNECTED]
    tray.update(View(State.PAUSED))
    tray.stop()
    assert [view.state for view in made[0].views] == [State.CONNECTED, State.PAUSED]
    assert made[0].stopped
