"""Bursts become one notification; a lone change shows after the short quiet time."""

from __future__ import annotations

from notifier.coalesce import Coalescer
from tests.notifier.fakes import event

QUIET = 0.3
BURST = 3.0


def test_a_single_change_is_due_after_the_quiet_time() -> None:
    coalescer = Coalescer(QUIET, BURST)
    coalescer.add(event(1), now=10.0)
    assert not coalescer.take(10.2)
    batch = coalescer.take(10.3)
    assert (len(batch), batch.first_seq) == (1, 1)
    assert coalescer.due_at() is None


def test_twenty_changes_arriving_together_come_out_as_one_batch() -> None:
    coalescer = Coalescer(QUIET, BURST)
    for seq in range(1, 21):
        coalescer.add(event(seq, 40 + seq % 3), now=10.0 + seq * 0.001)
    batch = coalescer.take(11.0)
    assert (len(batch), batch.first_seq, batch.order_count) == (20, 1, 3)
    assert not coalescer.take(20.0)


def test_a_steady_trickle_is_shown_once_per_burst_window() -> None:
    coalescer = Coalescer(QUIET, BURST)
    batches = []
    now = 0.0
    seq = 0
    # One change every 0.1 s for 9 s: never quiet, so the burst window decides.
    while now < 9.0:
        seq += 1
        coalescer.add(event(seq), now)
        batch = coalescer.take(now)
        if batch:
            batches.append(batch)
        now = round(now + 0.1, 3)
    batches.append(coalescer.take(100.0))
    assert sum(len(b) for b in batches) == seq
    assert len(batches) == 3  # at 3 s, at 6 s, and the rest


def test_after_a_notification_the_next_waits_for_the_burst_window() -> None:
    coalescer = Coalescer(QUIET, BURST)
    coalescer.add(event(1), 0.0)
    assert len(coalescer.take(0.3)) == 1
    coalescer.add(event(2), 1.0)
    assert coalescer.due_at() == 3.3
    assert not coalescer.take(1.3)
    coalescer.add(event(3), 2.0)
    batch = coalescer.take(3.3)
    assert (len(batch), batch.first_seq) == (2, 2)
