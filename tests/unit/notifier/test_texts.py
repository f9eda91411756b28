"""The words on the screen: Danish by default, English by setting, never personal data."""

from __future__ import annotations

import pytest

from notifier.texts import SUMMARY_ORDERS, Language, notification_for, organisation_name
from shared.events import EventType
from shared.models import OrderStatus, PlacementStatus
from tests.notifier.fakes import CVR, event, placed


@pytest.mark.parametrize(
    ("status", "danish", "english"),
    [
        pytest.param(OrderStatus.PROCESSING, "Under behandling", "Processing", id="processing"),
        pytest.param(
            OrderStatus.INACTIVATED,
            "Inaktiveret – tilstrækkelige henvisninger",
            "Inactivated – enough referrals",
            id="inactivated-by-the-system-on-enough-referrals",
        ),
        pytest.param(
            OrderStatus.CLOSED_FILLED,
            "Afsluttet – behovet er dækket",
            "Closed – the need is met",
            id="closed-filled",
        ),
        pytest.param(
            OrderStatus.CLOSED_EXPIRED,
            "Afsluttet – fristen for formidling er udløbet",
            "Closed – the placement deadline has passed",
            id="closed-expired",
        ),
    ],
)
def test_a_status_change_names_the_order_and_the_new_status_in_words(
    status: OrderStatus, danish: str, english: str
) -> None:
    change = [event(7, 42, status=status, title="Lagermedarbejder")]
    da = notification_for(change)
    en = notification_for(change, "en")
    assert (da.title, da.body) == ("Jobordre 42: Lagermedarbejder", f"Ny status: {danish}")
    assert (en.title, en.body) == ("Job order 42: Lagermedarbejder", f"New status: {english}")


@pytest.mark.parametrize(
    ("changes", "danish"),
    [
        pytest.param(
            [placed(1, by="jobcentre:751")],
            "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus",
            id="one-new",
        ),
        pytest.param(
            [placed(1, by="akasse:3f", count=2)],
            "Formidlingslog opdateret: 2 nye formidlinger fra A-kasse 3f",
            id="two-new-akasse",
        ),
        pytest.param(
            [
                placed(1, by="jobcentre:101"),
                placed(
                    2,
                    by="jobcentre:751",
                    from_status=PlacementStatus.PLACED,
                    to_status=PlacementStatus.HIRED,
                ),
            ],
            "Formidlingslog opdateret: 1 ny formidling fra Jobcenter København, "
            "1 ændret formidling fra Jobcenter Aarhus",
            id="new-and-changed",
        ),
    ],
)
def test_a_placement_log_update_counts_placements_per_organisation(changes, danish) -> None:
    notification = notification_for(changes)
    assert notification.title == "Jobordre 42: Lagermedarbejder"
    assert notification.body == danish


def test_english_placement_log_text() -> None:
    assert (
        notification_for([placed(1, by="jobcentre:751", count=3)], "en").body
        == "Placement log updated: 3 new placements from Jobcenter Aarhus"
    )


@pytest.mark.parametrize(
    ("principal", "name"),
    [
        pytest.param("jobcentre:751", "Jobcenter Aarhus", id="jobcentre"),
        pytest.param("jobcentre:101", "Jobcenter København", id="copenhagen"),
        pytest.param("akasse:3f", "A-kasse 3f", id="akasse"),
        pytest.param("employer:10150817", "Arbejdsgiver (CVR 10150817)", id="employer"),
        pytest.param("system", "Fællesdatagrundlaget", id="system"),
    ],
)
def test_organisation_names(principal: str, name: str) -> None:
    assert organisation_name(principal) == name


def test_many_changes_to_one_order_become_one_notification_with_the_latest_status() -> None:
    changes = [
        event(1, status=OrderStatus.INACTIVATED),
        placed(2, count=1),
        event(3, status=OrderStatus.CLOSED_FILLED),
    ]
    notification = notification_for(changes)
    assert notification.title == "Jobordre 42: Lagermedarbejder"
    assert notification.body == (
        "Ny status: Afsluttet – behovet er dækket\n"
        "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus"
    )


def test_a_summary_lists_the_most_recent_orders_and_counts_the_rest() -> None:
    orders = SUMMARY_ORDERS + 2
    changes = [event(seq, 100 + seq, title=f"Job {seq}") for seq in range(1, orders + 1)]
    changes.append(event(orders + 1, 101, status=OrderStatus.CLOSED_EXPIRED, title="Job 1"))
    notification = notification_for(changes)
    assert notification.title == f"{orders + 1} ændringer på {orders} jobordrer"
    lines = notification.body.splitlines()
    assert lines[0] == (
        "Jobordre 101: Job 1 – Ny status: Afsluttet – fristen for formidling er udløbet"
    )
    assert lines[1].startswith(f"Jobordre {100 + orders}: Job {orders} – ")
    assert len(lines) == SUMMARY_ORDERS + 1
    assert lines[-1] == "og 2 andre jobordrer"


@pytest.mark.parametrize(
    ("language", "last_line"),
    [
        pytest.param("da", "og 1 anden jobordre", id="da"),
        pytest.param("en", "and 1 more job order", id="en"),
    ],
)
def test_one_order_beyond_the_summary_is_counted_in_the_singular(
    language: Language, last_line: str
) -> None:
    orders = SUMMARY_ORDERS + 1
    changes = [event(seq, 100 + seq) for seq in range(1, orders + 1)]
    assert notification_for(changes, language).body.splitlines()[-1] == last_line


@pytest.mark.parametrize(
    ("by", "language", "body"),
    [
        pytest.param("jobcentre:101", "da", "Ny status: Inaktiveret", id="jobcentre-da"),
        pytest.param(f"employer:{CVR}", "en", "New status: Inactivated", id="employer-en"),
    ],
)
def test_an_order_inactivated_by_hand_gives_no_reason_nobody_gave(
    by: str, language: Language, body: str
) -> None:
    notification = notification_for([event(1, status=OrderStatus.INACTIVATED, by=by)], language)
    assert notification.body == body


def test_take_and_release_among_other_changes_add_no_status_line() -> None:
    take = event(2, status=OrderStatus.PROCESSING, previous_status=OrderStatus.PROCESSING)
    notification = notification_for([placed(1), take])
    assert notification.body == "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus"


def test_a_catch_up_summary_says_so_even_for_one_change() -> None:
    da = notification_for([event(1)], catch_up=True)
    en = notification_for([event(1)], "en", catch_up=True)
    assert da.title == "Mens du var væk: 1 ændring på 1 jobordre"
    assert en.title == "While you were away: 1 change on 1 job order"
    assert (
        da.body
        == "Jobordre 42: Lagermedarbejder – Ny status: Inaktiveret – tilstrækkelige henvisninger"
    )


def test_a_new_order_of_a_followed_employer() -> None:
    notification = notification_for([event(1, 9, type=EventType.ORDER_REGISTERED)])
    assert notification.body == "Ny jobordre registreret"


def test_a_cpr_number_typed_into_a_title_never_reaches_the_screen() -> None:
    changes = [event(1, title="Pedel (spørg 010190-1234)"), placed(2, 43)]
    for language in ("da", "en"):
        for catch_up in (False, True):
            notification = notification_for(changes, language, catch_up=catch_up)
            text = notification.title + notification.body
            assert "010190" not in text
            assert "Pedel (spørg **********)" in text


def test_an_empty_batch_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one change"):
        notification_for([])
