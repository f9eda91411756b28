"""The event log: the transactional outbox behind every organisation's inbox (R1–R4, S6).

:func:`record` runs inside the change's own transaction, so an event exists if and only if
its change was committed. The relay (``workers/relay.py``) pushes the safe header of each
unpushed event to Redis and marks it pushed; a crash between commit and push leaves the
event unpushed, and the next sweep pushes it: delayed, never dropped. Readers page through
the log by ``seq`` and see only what they are entitled to, masked for them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from shared.context import Context
from shared.events import AUTHORITIES, EventHeader, EventType, PlacementChange
from shared.models import JobOrder, Principal
from shared.store.interface import Row, Tx


def _placement_audience(conn: Tx, order: JobOrder) -> set[str]:
    """Who receives an order's placement log (S6): every organisation that placed on it,
    the organisations processing it and the authority that registered it."""
    placed = {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT placed_by FROM placements WHERE order_id = ?", (order.id,)
        )
    }
    audience = placed | set(order.processing_by)
    if not order.registered_by.startswith("employer:"):
        audience.add(order.registered_by)
    return audience


def record(
    ctx: Context,
    order: JobOrder,
    event_type: EventType,
    *,
    placements: Iterable[PlacementChange] = (),
) -> EventHeader:
    """Append one event for ``order`` (as it is after the change) to the outbox."""
    changes = list(placements)
    if event_type == EventType.PLACEMENT_LOG_UPDATED:
        audience = sorted(_placement_audience(ctx.conn, order))
        log_upto = ctx.conn.execute(
            "SELECT MAX(id) FROM placement_log WHERE order_id = ?", (order.id,)
        ).fetchone()[0]
    else:
        audience = [AUTHORITIES]
        log_upto = None
    # Inside the write transaction no one else can take the next seq, so the header that
    # names it is written with the row, in one INSERT.
    seq = ctx.conn.next_event_seq()
    header = EventHeader(
        id=uuid.uuid4().hex,
        seq=seq,
        type=event_type,
        at=ctx.at.isoformat(),
        order_id=order.id,
        title=order.title,
        status=order.status,
        version=order.version,
        processing_by=order.processing_by,
        employer_cvr=order.employer.cvr,
        by=str(ctx.who),
        audience=audience,
        placements=changes,
    )
    ctx.conn.execute(
        "INSERT INTO events (seq, id, type, at, order_id, employer_cvr, header, order_doc,"
        " log_upto, command_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            header.id,
            event_type.value,
            header.at,
            order.id,
            order.employer.cvr,
            header.model_dump_json(),
            order.model_dump_json(),
            log_upto,
            ctx.command_id,
        ),
    )
    ctx.conn.executemany(
        "INSERT INTO event_audience (organisation, seq) VALUES (?, ?)",
        [(organisation, seq) for organisation in audience],
    )
    return header


def read(conn: Tx, who: Principal, since: int, limit: int, *, inbox: bool) -> list[Row]:
    """Events after ``since`` that ``who`` may read, oldest first.

    With ``inbox`` an authority gets what was addressed to it (its inbox); without, every
    event (authorities may see every order, S3). Employers get their own orders' events.
    """
    if who.kind == "employer":
        return conn.execute(
            "SELECT * FROM events WHERE employer_cvr = ? AND seq > ? ORDER BY seq LIMIT ?",
            (who.id, since, limit),
        ).fetchall()
    if inbox and who.kind != "system":
        return conn.execute(
            "SELECT e.* FROM events e WHERE e.seq IN (SELECT seq FROM event_audience"
            " WHERE organisation IN (?, ?) AND seq > ? ORDER BY seq LIMIT ?) ORDER BY e.seq",
            (AUTHORITIES, str(who), since, limit),
        ).fetchall()
    return conn.execute(
        "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (since, limit)
    ).fetchall()


def header_of(row: Row) -> dict[str, Any]:
    """The stored header of an event row, as JSON data."""
    header: dict[str, Any] = json.loads(row["header"])
    return header


def unpushed(conn: Tx, limit: int) -> list[tuple[int, str]]:
    """The oldest events the relay has not pushed yet: (seq, header JSON)."""
    return [
        (int(row[0]), str(row[1]))
        for row in conn.execute(
            "SELECT seq, header FROM events WHERE pushed = 0 ORDER BY seq LIMIT ?", (limit,)
        )
    ]


def mark_pushed(conn: Tx, seqs: list[int]) -> None:
    """Mark events as pushed to Redis."""
    conn.executemany("UPDATE events SET pushed = 1 WHERE seq = ?", [(seq,) for seq in seqs])


def backlog(conn: Tx) -> tuple[int, str | None]:
    """How many events wait for the relay, and when the oldest of them happened."""
    row = conn.execute("SELECT COUNT(*), MIN(at) FROM events WHERE pushed = 0").fetchone()
    return int(row[0]), row[1]
