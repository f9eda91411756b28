"""The commands queue, taken in batches: one thread per worker process applies the write
commands waiting for it in ONE transaction.

Under Dramatiq's worker, each write command cost a consumer hand-off, a worker thread's
wake-up and its turn at the process's group commit: the write path stayed well below a
no-op job even with no store work at all (docs/performance.md).
Here one thread per process takes up to ``group_commit_max_writes`` messages of
``jobordre.commands`` at a time, with Dramatiq's own fetch script (the same ack sets,
heartbeats, and recovery of a dead worker's messages), applies them all in one
transaction, a savepoint each (:meth:`shared.foundation.Foundation.answer_writes`), and
queues every reply and ack for one flush (:mod:`workers.transport.outbound`). Queries stay with
Dramatiq's worker threads, and so does the commands' delay queue, where retries wait out
their backoff before they come back to this thread.

Every message still passes the broker's middleware one by one, as under Dramatiq's
worker: job timing and metrics (``workers/ops/agent.py``), age limits, retries with
backoff and, when they are spent, the dead letter that tells its client.

The delivery contract is the one every worker keeps:

* **A reply only after its commit, an ack only after its reply.** A command's reply is
  queued once the transaction holding its ledger row committed, and its ack after it,
  for the same flush.
* **One failure fails one command.** A command that fails on an infrastructure error
  (a bug, a busy store) is rolled back to its savepoint and retried alone, with
  backoff; the others of its batch commit. If the transaction itself fails (BEGIN or
  COMMIT), each command of the batch is retried on its own.
* **Nothing held is lost.** A process that dies mid-batch leaves its messages unacked:
  they come back to another worker, and the ledger answers those that had committed.
  A stopping worker finishes its batch (up to ``worker_shutdown_ms``) before its
  replies and acks are flushed.

One thing differs from a Dramatiq worker thread: Dramatiq's time limit interrupts the
batch as a whole (it tracks threads, not messages), and every command of an interrupted
batch is retried.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.errors import ActorNotFound, BrokerConnectionError
from dramatiq.middleware import SkipMessage

from shared.commands import CommandKind
from workers.transport.broker import COMMANDS_QUEUE
from workers.worker.actors import Runtime

logger = logging.getLogger("jobordre.commands")

#: Pause before a consumer that failed (Redis away) starts again, in seconds: Dramatiq's.
RESTART_DELAY_S = 3.0
#: Pause between tries of an ack or nack that met a lost connection, in seconds.
POST_RETRY_S = 1.0


class CommandBatches(dramatiq.Middleware):
    """The batch consumer of ``jobordre.commands``: starts with the worker, is told to stop
    when it is, and is waited for before the worker's last flush (which so carries the
    last batch's replies and acks)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        #: Most messages one batch takes (the group commit's bound).
        self.batch = settings.group_commit_max_writes
        #: How long the consumer waits on an empty queue before it looks again, in ms.
        self.wait_ms = settings.worker_poll_ms
        #: How long a stopping worker lets the running batch finish, in ms.
        self.stop_ms = settings.worker_shutdown_ms
        self._broker: dramatiq.Broker | None = None
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._broker = broker
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="jobordre-commands", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Only told here: the running batch finishes while Dramatiq stops its own threads.
        self._running.clear()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Runs before the outbound's last flush and before the ops agent stops beating
        # (after-hooks run in reverse order, and this middleware is added after both).
        if self._thread is not None:
            self._thread.join(self.stop_ms / 1000)
            if self._thread.is_alive():
                logger.warning(
                    "a batch of commands still runs after %d ms: its messages stay unacked "
                    "and are answered again, from the ledger, by another worker",
                    self.stop_ms,
                )

    @property
    def broker(self) -> dramatiq.Broker:
        assert self._broker is not None, "the worker has not booted"
        return self._broker

    def _run(self) -> None:
        while self._running.is_set():
            consumer: Any = None
            batch: list[dramatiq.MessageProxy] = []
            try:
                consumer = self.broker.consume(COMMANDS_QUEUE, self.batch, self.wait_ms)
                while self._running.is_set():
                    first = next(consumer)
                    if first is not None:
                        batch = [first, *consumer.take_cached(self.batch - 1)]
                        self.process(consumer, batch)
                        batch = []
                # Whatever was fetched and not taken goes back to the queue at once.
                consumer.requeue(consumer.take_cached(self.batch))
                return
            except (BrokerConnectionError, redis.RedisError) as error:
                logger.critical("the commands consumer lost Redis: %s", error)
            except BaseException:
                # Even an interrupt must not end the thread: nothing would take commands.
                logger.critical("the commands consumer failed", exc_info=True)
            self._give_back(consumer, batch)
            if self._running.is_set():
                time.sleep(RESTART_DELAY_S)

    def _give_back(self, consumer: Any, batch: list[dramatiq.MessageProxy]) -> None:
        """Requeue the messages of a failed batch that were neither acked nor nacked: they
        would otherwise stay in this worker's ack set until it stops."""
        held = consumer.held(batch) if consumer else []
        if not held:
            return
        try:
            consumer.requeue(held)
        except (BrokerConnectionError, redis.RedisError) as error:
            logger.warning(
                "%d commands stay unacked until this worker stops (%s); another worker "
                "answers them then",
                len(held),
                error,
            )

    def process(self, consumer: Any, messages: list[dramatiq.MessageProxy]) -> None:
        """Run one batch: the write commands together, anything else one by one; their
        replies and acks go out together when the batch is done."""
        with self.runtime.replies.held():
            self._process(consumer, messages)

    def _process(self, consumer: Any, messages: list[dramatiq.MessageProxy]) -> None:
        writes: list[tuple[dramatiq.MessageProxy, CommandKind]] = []
        for message in messages:
            try:
                self.broker.get_actor(message.actor_name)
            except ActorNotFound as error:
                # As Dramatiq does: failed, and nacked (kept as a dead letter, broker.py).
                message.fail()
                message.stuff_exception(error)
                self._post(consumer, message)
                continue
            try:
                self.broker.emit_before("process_message", message)
            except SkipMessage:
                self.broker.emit_after("skip_message", message)
                self._post(consumer, message)
                continue
            except BaseException as error:
                # A middleware refused it: a failure of this message, as under Dramatiq's
                # worker (retried, in the end a dead letter), not of the batch.
                self._finish(consumer, message, error)
                continue
            kind = _write_kind(message)
            if kind is not None and not message.failed:
                writes.append((message, kind))
            else:
                self._finish(consumer, message, self._run_one(message))
        if not writes:
            return
        errors: list[BaseException | None]
        try:
            raws = [(kind, message.args[0]) for message, kind in writes]
            errors = list(self.runtime.process_writes(raws))
        except BaseException as interrupted:
            # Interrupted (Dramatiq's time limit) or failed outside any command: none of
            # the batch is known to be done, so every one is retried.
            errors = [interrupted] * len(writes)
        for (message, _), outcome in zip(writes, errors, strict=True):
            self._finish(consumer, message, outcome)

    def _run_one(self, message: dramatiq.MessageProxy) -> BaseException | None:
        """A message that is not a well-formed write command, run by its actor alone."""
        if message.failed:
            return None
        try:
            self.broker.get_actor(message.actor_name)(*message.args, **message.kwargs)
        except BaseException as error:
            return error
        return None

    def _finish(
        self, consumer: Any, message: dramatiq.MessageProxy, error: BaseException | None
    ) -> None:
        """The after-hooks of one message (a failure raised again, so that ``Retries``
        keeps its traceback), then its ack or nack."""
        if error is None:
            self.broker.emit_after("process_message", message, result=None)
        else:
            message.stuff_exception(error)
            logger.error("command %s failed", message.message_id, exc_info=error)
            try:
                raise error
            except BaseException:
                self.broker.emit_after("process_message", message, exception=error)
        self._post(consumer, message)
        message.clear_exception()

    def _post(self, consumer: Any, message: dramatiq.MessageProxy) -> None:
        """Ack a message (with its reply, in the next flush) or nack a failed one; a lost
        connection is tried again, as Dramatiq's worker does, until the worker stops."""
        while True:
            try:
                if message.failed:
                    self.broker.emit_before("nack", message)
                    consumer.nack(message)
                    self.broker.emit_after("nack", message)
                else:
                    self.broker.emit_before("ack", message)
                    consumer.ack(message)
                    self.broker.emit_after("ack", message)
                return
            except BrokerConnectionError as error:
                if not self._running.is_set():
                    logger.warning("left %s unacked: %s", message.message_id, error)
                    return
                logger.warning("could not ack %s (%s); trying again", message.message_id, error)
                time.sleep(POST_RETRY_S)


def _write_kind(message: dramatiq.MessageProxy) -> CommandKind | None:
    """The write kind a message carries, if it is one that can join a batch."""
    try:
        kind = CommandKind(message.actor_name)
    except ValueError:
        return None
    if kind.writes and len(message.args) == 1 and not message.kwargs:
        return kind
    return None
