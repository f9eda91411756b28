"""The event log: the transactional outbox behind every organisation's inbox (R1–R4, S6).

:func:`record` runs inside the change's own transaction, so an event exists if and only if
its change was committed. The relay (``workers/worker/relay.py``) pushes the safe header of each
event above the relay's high-water mark to Redis, then raises the mark to the highest seq
it pushed; a crash between commit and push leaves the event above the mark, and the next
sweep pushes it: delayed, never dropped. Readers page through the log by ``seq`` and see
only what they are entitled to, masked for them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from shared.context import Context
from shared.events import (
    AUTHORITIES,
    Cursor,
    EventType,
    PlacementChange,
    change_fields,
    header_json,
)
from shared.models import JobOrder, OrderStatus, Principal
from shared.redaction import redact_cpr
from shared.store.interface import NewEvent, Row, Tx


def _placement_audience(conn: Tx, order: JobOrder, placed: set[str] | None) -> set[str]:
    """Who receives an order's placement log (S6): every organisation that placed on it
    (``placed``, if the caller read them), the organisations processing it and the
    authority that registered it."""
    if placed is None:
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
    previous_status: OrderStatus | None = None,
    order_doc: str | None = None,
    log_upto: int | None = None,
    placed_by: set[str] | None = None,
) -> None:
    """Append one event for ``order`` (as it is after the change) to the outbox.

    ``previous_status`` is the status before an ``order_status_changed``: the same as the
    order's when only ``processing_by`` changed, which watchers do not take for a status
    change. ``order_doc`` is ``order.model_dump_json()`` if the caller has it already (the
    document it just stored, or read for an order it did not change); encoded here if not.
    ``log_upto`` is, for a ``placement_log_updated``, the id of the placement-log entry the
    caller just wrote (the order's newest: one writer at a time); read here if not given.
    ``placed_by`` is every organisation that placed on the order, if the caller has read
    them in this transaction; read here if not.
    """
    if event_type == EventType.PLACEMENT_LOG_UPDATED:
        audience = sorted(_placement_audience(ctx.conn, order, placed_by))
        if log_upto is None:
            log_upto = ctx.conn.execute(
                "SELECT MAX(id) FROM placement_log WHERE order_id = ?", (order.id,)
            ).fetchone()[0]
    else:
        audience = [AUTHORITIES]
        log_upto = None
    event_id = uuid.uuid4().hex
    at = ctx.stamp
    fields: dict[str, Any] = {
        "id": event_id,
        "seq": 0,
        "type": event_type.value,
        "at": at,
        "order_id": order.id,
        # The header goes onto Redis and desktops: a CPR someone typed into a title
        # must not travel with it (the full order, for those entitled to it, stays as
        # typed).
        "title": redact_cpr(order.title),
        "status": order.status.value,
        "version": order.version,
        "processing_by": order.processing_by,
        "employer_cvr": order.employer.cvr,
        "by": str(ctx.who),
        "audience": audience,
        "placements": [change_fields(change) for change in placements],
        "previous_status": (
            previous_status.value
            if previous_status is not None and event_type == EventType.ORDER_STATUS_CHANGED
            else None
        ),
        "epoch": "",
    }

    def header(seq: int, epoch: str) -> str:
        fields["seq"], fields["epoch"] = seq, epoch
        return header_json(fields)

    # The engine numbers the event (Tx.append_event): at once where writers take turns,
    # just before COMMIT where they run side by side.
    ctx.conn.append_event(
        NewEvent(
            id=event_id,
            type=event_type.value,
            at=at,
            order_id=order.id,
            employer_cvr=order.employer.cvr,
            order_doc=order.model_dump_json() if order_doc is None else order_doc,
            log_upto=log_upto,
            command_id=ctx.command_id,
            audience=audience,
            header=header,
        )
    )


def last_seq(conn: Tx) -> int:
    """The highest seq ever given out (see :meth:`Tx.last_event_seq`)."""
    return conn.last_event_seq()


def epochs(conn: Tx) -> list[tuple[str, int]]:
    """Every epoch of the log with its base seq, oldest first."""
    return [
        (str(row[0]), int(row[1]))
        for row in conn.execute(
            "SELECT epoch, base_seq FROM event_log_epochs ORDER BY base_seq, ordinal"
        )
    ]


def current_epoch(conn: Tx) -> str:
    """The identity of the event log as it is now."""
    return epochs(conn)[-1][0]


def head(conn: Tx) -> Cursor:
    """The cursor after the newest event: where a reader starting from now begins."""
    return Cursor(last_seq(conn), current_epoch(conn))


def start_epoch(conn: Tx, at: str, *, replacing: str) -> str | None:
    """Start a new epoch at the current end of the log, if ``replacing`` is still the
    current one (so two workers that both noticed start one epoch, not two); returns it.

    For a log that lost events readers had seen (a store restored from a backup): new
    events reuse seqs those readers have handled, and only a new identity tells them so.
    Workers check before they take their first job (``workers/worker/relay.py``), so no event of
    the new history is written under the old identity.
    """
    conn.hold_event_order()
    if current_epoch(conn) != replacing:
        return None
    epoch = uuid.uuid4().hex[:12]
    # ``ordinal`` orders epochs that share a base seq (a log restored twice with no event
    # in between); the write transaction keeps MAX + 1 free of races.
    conn.execute(
        "INSERT INTO event_log_epochs (epoch, base_seq, started_at, ordinal) VALUES"
        " (?, ?, ?, (SELECT COALESCE(MAX(ordinal), 0) + 1 FROM event_log_epochs))",
        (epoch, last_seq(conn), at),
    )
    return epoch


def resolve(conn: Tx, cursor: Cursor) -> int:
    """The seq to read after for a reader's ``cursor``, never trusting a foreign one.

    A cursor of this epoch is taken as it is, as is one in the old format (no epoch); one
    of an earlier epoch of this log counts only up to where that epoch ended; one of an
    unknown log (another store) counts for nothing: everything in this log is new to its
    reader. No cursor counts beyond the log's end.
    """
    end = last_seq(conn)
    if cursor.epoch is None:
        return min(cursor.seq, end)
    known = epochs(conn)
    for (epoch, _), later in zip(known, [*known[1:], None], strict=True):
        if epoch == cursor.epoch:
            upto = end if later is None else later[1]
            return min(cursor.seq, upto)
    return 0


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


#: The relay's high-water mark: every event up to it was pushed (0 before the first push;
#: a missing row counts as 0, so at worst everything is pushed again).
_MARK_SQL = "COALESCE((SELECT pushed_seq FROM relay_mark WHERE id = 1), 0)"


def unpushed(conn: Tx, limit: int) -> list[tuple[int, str]]:
    """The oldest events the relay has not pushed yet: (seq, header JSON), in seq order.

    Those are the events above the relay's high-water mark (:func:`mark_pushed`). One
    mark instead of a flag per event is sound because committed events always form a
    prefix of the log in seq order: a write holds a lock from before it takes its seqs
    (:meth:`Tx.append_event`) until its COMMIT is visible (SQLite: the process and file
    locks around ``BEGIN IMMEDIATE`` ... ``COMMIT``; PostgreSQL: ``pg_advisory_xact_lock``
    taken by the statement that numbers the transaction's events just before COMMIT, and
    released only after the commit is visible), so no event with a lower seq can commit
    after a reader saw one with a higher seq. A batch read
    here in one snapshot therefore holds every event up to its highest seq, and marking
    that seq skips none. Epochs (:func:`start_epoch`) do not reorder seqs: a new epoch
    starts at the log's end, and a store restored from a backup brings back its mark with
    its events (the mark is never above the log's end).
    """
    return [
        (int(row[0]), str(row[1]))
        for row in conn.execute(
            f"SELECT seq, header FROM events WHERE seq > {_MARK_SQL} ORDER BY seq LIMIT ?",  # noqa: S608
            (limit,),
        )
    ]


def mark_pushed(conn: Tx, upto: int) -> None:
    """Record that every event up to seq ``upto`` was pushed to Redis.

    One statement, and the mark only rises: a relay that read an older batch and marks
    after another relay marked a newer one leaves the newer mark (both pushed theirs;
    readers deduplicate by seq). An upsert, in the dialect both engines share, so a store
    that lost its mark row gets it back instead of pushing everything forever.
    """
    conn.execute(
        "INSERT INTO relay_mark (id, pushed_seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE"
        " SET pushed_seq = excluded.pushed_seq WHERE relay_mark.pushed_seq < excluded.pushed_seq",
        (upto,),
    )


def pushed_upto(conn: Tx) -> int:
    """The relay's high-water mark: the highest seq up to which every event was pushed."""
    return int(conn.execute(f"SELECT {_MARK_SQL}").fetchone()[0])


def backlog(conn: Tx) -> tuple[int, str | None]:
    """How many events wait for the relay, and when the oldest of them happened."""
    row = conn.execute(
        f"SELECT COUNT(*), MIN(at) FROM events WHERE seq > {_MARK_SQL}"  # noqa: S608
    ).fetchone()
    return int(row[0]), row[1]
