"""The domain rules of SPEC.md: the two status machines and who may do what.

Pure functions over models; each raises the error the caller's mistake deserves:
:class:`Forbidden` for the wrong principal, :class:`InvalidTransition` for the wrong
state, :class:`NotFound` where the caller may not even know the order exists.
"""

from __future__ import annotations

from shared.errors import Forbidden, InvalidTransition, NotFound
from shared.models import JobOrder, JobType, OrderDraft, OrderStatus, PlacementStatus, Principal

S = OrderStatus
P = PlacementStatus

#: Allowed order status changes (R3). Closed is final.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PROCESSING: frozenset({S.INACTIVATED, S.CLOSED_FILLED, S.CLOSED_EXPIRED}),
    S.INACTIVATED: frozenset({S.PROCESSING, S.CLOSED_FILLED, S.CLOSED_EXPIRED}),
    S.CLOSED_FILLED: frozenset(),
    S.CLOSED_EXPIRED: frozenset(),
}

#: Allowed person status changes on a placement.
PLACEMENT_TRANSITIONS: dict[PlacementStatus, frozenset[PlacementStatus]] = {
    P.PLACED: frozenset({P.INTERVIEW, P.HIRED, P.NOT_HIRED, P.DECLINED, P.NO_SHOW, P.WITHDRAWN}),
    P.INTERVIEW: frozenset({P.HIRED, P.NOT_HIRED, P.DECLINED, P.NO_SHOW, P.WITHDRAWN}),
    P.HIRED: frozenset(),
    P.NOT_HIRED: frozenset(),
    P.DECLINED: frozenset(),
    P.NO_SHOW: frozenset(),
    P.WITHDRAWN: frozenset(),
}

#: The person statuses an employer may report: outcomes only.
EMPLOYER_OUTCOMES = frozenset({P.INTERVIEW, P.HIRED, P.NOT_HIRED})

#: Statuses in which a referral still counts against ``max_referrals``.
ACTIVE_PLACEMENT_STATUSES = frozenset({P.PLACED, P.INTERVIEW, P.HIRED})

#: Closed statuses: final.
CLOSED_STATUSES = frozenset({S.CLOSED_FILLED, S.CLOSED_EXPIRED})


#: The only commands of the foundation's data-protection role (``star``): it answers a
#: citizen's access request and reads its own stored results, and acts on no job order.
STAR_COMMANDS = frozenset({"audit_person", "command_result"})


def check_command(who: Principal, kind: str) -> None:
    """Refuse a command kind the principal never sends, before the operation reads anything."""
    if who.kind == "star" and kind not in STAR_COMMANDS:
        raise Forbidden(
            f"star (the foundation's data-protection role) sends only "
            f"{', '.join(sorted(STAR_COMMANDS))}; {kind} is for the organisations"
        )


def can_see_order(who: Principal, order: JobOrder) -> bool:
    """Employers see their own orders only; authorities and the system see all."""
    return who.kind != "employer" or order.employer.cvr == who.id


def require_visible(who: Principal, order: JobOrder) -> None:
    """Raise :class:`NotFound` if the caller may not see the order at all."""
    if not can_see_order(who, order):
        raise NotFound(f"job order {order.id}: not found")


def check_register(who: Principal, draft: OrderDraft) -> None:
    """Who may register an order: authorities any; employers their own CVR, ordinary only."""
    if who.kind == "system":
        raise Forbidden("the system does not register job orders")
    if who.kind == "employer":
        if draft.employer.cvr != who.id:
            raise Forbidden(
                "employer.cvr: an employer registers orders for its own CVR only",
                field="employer.cvr",
            )
        if draft.job_type != JobType.ORDINARY:
            raise Forbidden(
                f"job_type: employers register 'ordinary' jobs through JobAG only; a "
                f"'{draft.job_type}' order is registered by a jobcentre or an a-kasse",
                field="job_type",
            )
        if draft.internal_comment is not None:
            raise _employer_internal_comment()


def _employer_internal_comment() -> Forbidden:
    return Forbidden(
        "internal_comment: the internal comment is for jobcentres and a-kasser only; an "
        "employer's order is sent without it",
        field="internal_comment",
    )


def check_update(
    who: Principal,
    order: JobOrder,
    patch_job_type: JobType | None,
    patch_cvr: str | None,
    *,
    sets_internal_comment: bool = False,
) -> None:
    """Who may update an order's fields; closed orders take no more updates. Employers
    neither set nor clear the authorities' internal comment."""
    require_visible(who, order)
    if who.kind == "system":
        raise Forbidden("the system does not edit job orders")
    if order.status in CLOSED_STATUSES:
        raise InvalidTransition(
            f"job order {order.id} is {order.status}: a closed order cannot be updated"
        )
    if who.kind == "employer":
        if patch_job_type not in (None, JobType.ORDINARY):
            raise Forbidden("job_type: employers keep orders 'ordinary'", field="job_type")
        if patch_cvr not in (None, who.id):
            raise Forbidden(
                "employer.cvr: an employer cannot move an order to another CVR",
                field="employer.cvr",
            )
        if sets_internal_comment:
            raise _employer_internal_comment()


def check_order_transition(who: Principal, order: JobOrder, target: OrderStatus) -> None:
    """Check an order status change (R3) against the machine and the principal."""
    require_visible(who, order)
    if target == S.CLOSED_EXPIRED and who.kind != "system":
        raise Forbidden(
            "status closed_expired is set by the system when the placement deadline has "
            "passed; close the order as closed_filled instead"
        )
    if target == order.status:
        raise InvalidTransition(f"job order {order.id} is already {target}")
    if target not in ORDER_TRANSITIONS[order.status]:
        raise InvalidTransition(
            f"job order {order.id}: cannot go from {order.status} to {target}"
            + ("; a closed order is final" if order.status in CLOSED_STATUSES else "")
        )


def check_place(who: Principal, order: JobOrder) -> None:
    """Only jobcentres and a-kasser place people, and only on an order being processed."""
    if not who.is_authority:
        raise Forbidden("only a jobcentre or an a-kasse registers placements")
    if order.status != S.PROCESSING:
        raise InvalidTransition(
            f"job order {order.id} is {order.status}: new placements only while processing"
        )


def check_placement_transition(
    who: Principal,
    order: JobOrder,
    placed_by: str,
    current: PlacementStatus,
    target: PlacementStatus,
) -> None:
    """Check a person status change: the placing organisation, or the employer's outcome."""
    require_visible(who, order)
    if who.kind == "employer":
        if target not in EMPLOYER_OUTCOMES:
            raise Forbidden(
                "an employer reports outcomes only: interview, hired or not_hired",
                field="status",
            )
    elif who.kind == "system" or str(who) != placed_by:
        raise Forbidden(f"only {placed_by}, which made the placement, may change it")
    if target not in PLACEMENT_TRANSITIONS[current]:
        raise InvalidTransition(f"placement: cannot go from {current} to {target}")


def sees_person(who: Principal, placed_by: str) -> bool:
    """CPR and comments are visible only to the organisation that made the placement."""
    return str(who) == placed_by
