"""No worker log line carries a command's payload (names, phones, e-mails, notes, comments).

A real Dramatiq worker on a StubBroker (the logging is Dramatiq's, not the broker's) runs an
actor that fails on an infrastructure error, with the worker's own logging setup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from tests.factories import CPR_1, order_doc
from workers.worker.runner import configure_logging

PERSONAL = ("Karen Jensen", "+4529292929", "karen@example.dk", "ring efter kl. 15")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    jobs = logging.getLogger("jobordre.jobs")
    jobs_handlers, jobs_propagate = jobs.handlers[:], jobs.propagate
    yield
    root.handlers[:], root.level = handlers, level
    jobs.handlers[:], jobs.propagate = jobs_handlers, jobs_propagate


def test_a_crashing_job_logs_its_failure_without_the_message(
    capsys: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    configure_logging()
    broker = StubBroker()
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, max_retries=0)
    def register_order(raw: str) -> None:
        raise OSError("disk I/O error")

    doc = order_doc(
        contact={"name": PERSONAL[0], "phone": PERSONAL[1], "email": PERSONAL[2]},
        internal_comment=PERSONAL[3],
    )
    message = register_order.send(json.dumps({"order": doc, "cpr": CPR_1}))
    worker = dramatiq.Worker(broker, worker_timeout=10)
    worker.start()
    try:
        broker.join(register_order.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    logged = capsys.readouterr().err
    assert f"register_order[{message.message_id}]" in logged
    assert "OSError: disk I/O error" in logged
    for text in (*PERSONAL, CPR_1, doc["title"]):
        assert text not in logged
