"""Many changes fold into what their notification says, in bounded memory."""

from __future__ import annotations

from notifier.digest import KEPT_ORDERS, Digest
from notifier.texts import SUMMARY_ORDERS, notification_for
from shared.models import OrderStatus
from tests.notifier.fakes import event, placed


def test_a_flood_of_changes_keeps_the_counts_and_a_bounded_detail() -> None:
    orders = KEPT_ORDERS * 3
    digest = Digest()
    seq = 0
    for order_id in range(1, orders + 1):
        for _ in range(2):
            seq += 1
            digest.add(event(seq, order_id))
    assert (len(digest), digest.order_count, digest.first_seq) == (2 * orders, orders, 1)
    assert len(digest.most_recent()) == KEPT_ORDERS
    notification = notification_for(digest, catch_up=True)
    assert notification.title == f"Mens du var væk: {2 * orders} ændringer på {orders} jobordrer"
    lines = notification.body.splitlines()
    assert lines[0].startswith(f"Jobordre {orders}: ")
    assert lines[-1] == f"og {orders - SUMMARY_ORDERS} andre jobordrer"


def test_an_order_keeps_its_latest_status_and_counts_its_placements() -> None:
    digest = Digest(
        [
            event(1, status=OrderStatus.INACTIVATED),
            placed(2, count=2),
            event(3, status=OrderStatus.CLOSED_FILLED),
            placed(4, by="akasse:3f", from_status=None),
        ]
    )
    [order] = digest.most_recent()
    assert order.status is not None and order.status.status == OrderStatus.CLOSED_FILLED
    assert (dict(order.new), dict(order.changed)) == ({"jobcentre:751": 2, "akasse:3f": 1}, {})
    assert order.latest.seq == 4
