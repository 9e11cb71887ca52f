"""Publishing: a task message per job (or per batch, or per callback), by task name.

A message carries ids only, never content or secrets. A message that could
not be published is not lost: its job is marked unpublished and the sweep
(``requeue_stale_jobs``) publishes it later.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from worker.queue.broker_adapter import BrokerUnavailableError, broker_errors
from worker.queue.names import BATCH_TASK, CALLBACK_TASK, QUEUE, SEND_TASK, queue_of
from worker.queue.producer import Producer
from worker.store.database import StoreUnavailableError

log = logging.getLogger(__name__)


def publish(
    rt: Producer, job_id: str, priority: str, countdown: float = 0.0, *, record: bool = True
) -> bool:
    """Put a task message for the job on the broker; False (job kept) if the broker is down.

    ``record`` notes the publish time, which keeps the sweeper from sending
    the job again while this message is in flight.
    """
    queue = queue_of(priority)
    try:
        with broker_errors("publishing"):
            rt.celery.send_task(
                SEND_TASK,
                args=[job_id],
                argsrepr=repr((job_id,)),
                queue=queue,
                countdown=countdown or None,
            )
    except BrokerUnavailableError as exc:  # the job is safe in the store
        log.warning("job %s stored but not published (%s); it will be requeued", job_id, exc)
        # So the next sweep publishes it; if this fails too, the lost-message check will.
        with contextlib.suppress(StoreUnavailableError):
            rt.store.mark_unpublished([job_id])
        return False
    if record:
        rt.store.mark_published([job_id], at=datetime.now(UTC) + timedelta(seconds=countdown))
    return True


def publish_callbacks(rt: Producer, callback_ids: Iterable[str], countdown: float = 0.0) -> int:
    """A task message per callback; how many went out. One that did not is published
    by the sweep once it is overdue (``Store.due_callbacks``)."""
    published = 0
    for callback_id in callback_ids:
        try:
            with broker_errors("publishing"):
                rt.celery.send_task(
                    CALLBACK_TASK, args=[callback_id], argsrepr=repr((callback_id,)),
                    queue=QUEUE, countdown=countdown or None,
                )  # fmt: skip
        except BrokerUnavailableError as exc:  # the callback is safe in the store
            log.warning("callback %s stored but not published (%s)", callback_id, exc)
            continue
        published += 1
    return published


def publish_batch(rt: Producer, job_ids: list[str], priority: str) -> bool:
    """One task message for several jobs; False (jobs kept, the sweep sends them) if it fails."""
    try:
        with broker_errors("publishing"):
            rt.celery.send_task(
                BATCH_TASK, args=[job_ids, priority], argsrepr=repr((job_ids, priority)),
                queue=queue_of(priority),
            )  # fmt: skip
    except BrokerUnavailableError as exc:  # the jobs are safe in the store
        log.warning(
            "%d jobs stored but not published (%s); they will be requeued", len(job_ids), exc
        )
        with contextlib.suppress(StoreUnavailableError):
            rt.store.mark_unpublished(job_ids)
        return False
    return True
