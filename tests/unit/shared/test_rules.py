"""The two status machines and who may drive them, as properties over any sequence."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import rules
from shared.errors import Forbidden, InvalidTransition, JobordreError
from shared.models import JobOrder, OrderStatus, PlacementStatus, Principal
from tests.factories import EMPLOYER_A, order_doc

PRINCIPALS = [
    Principal.parse(p) for p in ("jobcentre:101", "akasse:3f", f"employer:{EMPLOYER_A}", "system")
]


def order(status: OrderStatus) -> JobOrder:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    doc = order_doc(placement_deadline=date(2027, 1, 1).isoformat())
    return JobOrder(
        id=1,
        **doc,
        origin="jobcentre",
        registered_by="jobcentre:101",
        processing_by=[],
        status=status,
        version=1,
        created_at=now,
        updated_at=now,
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(PRINCIPALS), st.sampled_from(list(OrderStatus))), max_size=12
    )
)
def test_order_status_sequences_respect_the_machine(
    steps: list[tuple[Principal, OrderStatus]],
) -> None:
    status = OrderStatus.PROCESSING
    for who, target in steps:
        try:
            rules.check_order_transition(who, order(status), target)
        except (Forbidden, InvalidTransition):
            continue
        assert status not in rules.CLOSED_STATUSES, "closed is final"
        assert target != OrderStatus.CLOSED_EXPIRED or who.kind == "system"
        status = target


@given(st.lists(st.sampled_from(list(PlacementStatus)), max_size=8))
def test_person_statuses_only_move_forward(targets: list[PlacementStatus]) -> None:
    placer = Principal.parse("jobcentre:101")
    current, seen = PlacementStatus.PLACED, [PlacementStatus.PLACED]
    for target in targets:
        try:
            rules.check_placement_transition(
                placer, order(OrderStatus.PROCESSING), "jobcentre:101", current, target
            )
        except JobordreError:
            continue
        assert target not in seen, "a person's status never goes back"
        current = target
        seen.append(target)


@pytest.mark.parametrize(
    ("who", "target", "allowed"),
    [
        pytest.param("jobcentre:101", PlacementStatus.WITHDRAWN, True, id="placer-withdraws"),
        pytest.param("akasse:3f", PlacementStatus.HIRED, False, id="other-authority"),
        pytest.param(f"employer:{EMPLOYER_A}", PlacementStatus.HIRED, True, id="employer-outcome"),
        pytest.param(
            f"employer:{EMPLOYER_A}", PlacementStatus.NO_SHOW, False, id="employer-non-outcome"
        ),
        pytest.param("employer:29403473", PlacementStatus.HIRED, False, id="other-employer"),
    ],
)
def test_who_may_change_a_persons_status(who: str, target: PlacementStatus, allowed: bool) -> None:
    check = lambda: rules.check_placement_transition(  # noqa: E731
        Principal.parse(who),
        order(OrderStatus.PROCESSING),
        "jobcentre:101",
        PlacementStatus.PLACED,
        target,
    )
    if allowed:
        check()
    else:
        with pytest.raises(JobordreError):
            check()
