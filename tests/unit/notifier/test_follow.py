"""Which changes match what a caseworker follows."""

from __future__ import annotations

import pytest

from notifier.follow import Follows
from shared.events import EventType
from shared.models import OrderStatus
from tests.notifier.fakes import CVR, ME, event, placed

OTHER_CVR = "25313763"


def follows(**result) -> Follows:
    return Follows.from_result(ME, result)


@pytest.mark.parametrize(
    ("rules", "change", "expected"),
    [
        pytest.param({"orders": [42]}, event(1, 42), True, id="followed-order-status"),
        pytest.param({"orders": [42]}, placed(1, 42), True, id="followed-order-log"),
        pytest.param({"orders": [42]}, event(1, 43), False, id="other-order"),
        pytest.param(
            {"orders": [42]},
            event(1, 42, type=EventType.ORDER_UPDATED),
            False,
            id="field-edit-is-not-notified",
        ),
        pytest.param(
            {"orders": [42]},
            event(1, 42, status=OrderStatus.PROCESSING, previous_status=OrderStatus.PROCESSING),
            False,
            id="take-or-release-is-not-a-status-change",
        ),
        pytest.param(
            {"orders": [42]},
            event(1, 42, status=OrderStatus.PROCESSING, previous_status=None),
            True,
            id="a-header-from-before-previous-status-counts-as-a-status-change",
        ),
        pytest.param({"employers": [CVR]}, event(1, 77), True, id="followed-employer"),
        pytest.param(
            {"employers": [CVR]},
            event(1, 77, type=EventType.ORDER_REGISTERED),
            True,
            id="new-order-of-followed-employer",
        ),
        pytest.param(
            {"orders": [77]},
            event(1, 77, type=EventType.ORDER_REGISTERED),
            False,
            id="registration-only-for-employer-follows",
        ),
        pytest.param({"employers": [CVR]}, event(1, 77, cvr=OTHER_CVR), False, id="other-cvr"),
        pytest.param(
            {"placements_of_my_organisation": True, "placed_orders": [5]},
            event(1, 5),
            True,
            id="order-my-organisation-placed-on",
        ),
        pytest.param(
            {"placements_of_my_organisation": True, "placed_orders": [5]},
            event(1, 6),
            False,
            id="order-nobody-of-mine-placed-on",
        ),
        pytest.param(
            {"placements_of_my_organisation": False, "placed_orders": [5]},
            event(1, 5),
            False,
            id="placed-orders-without-the-rule",
        ),
        pytest.param(
            {"orders": [42]},
            placed(1, 42, by="akasse:3f"),
            False,
            id="log-addressed-to-another-organisation",
        ),
    ],
)
def test_matching(rules, change, expected: bool) -> None:
    assert follows(**rules).matches(change) is expected


def test_a_placement_of_my_organisation_makes_later_changes_of_that_order_match() -> None:
    rules = follows(placements_of_my_organisation=True)
    assert not rules.matches(event(1, 9))
    assert rules.matches(placed(2, 9, by=ME))
    assert rules.matches(event(3, 9))


def test_nothing_followed_is_empty() -> None:
    assert follows().empty
    assert not follows(placements_of_my_organisation=True).empty
