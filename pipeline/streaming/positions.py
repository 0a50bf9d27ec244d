"""Where each partition this worker reads resumes, and what a rebalance does to it.

Input partitions (``telemetry``, ``failures``, ``feedback``) resume where their lane's
record says, and ``training-examples`` partitions where their trainer's last
``EpochClosed`` says, whatever offset Kafka committed or delivers first
(docs/streaming.md, "A partition new to a worker resumes where its state says"). On a
revocation the worker makes what it processed durable and remembers where each revoked
partition stands; on an assignment it positions every partition before fetching
resumes (:mod:`pipeline.streaming.rewind`, :mod:`pipeline.streaming.faust_adapter`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.streaming import faust_adapter
from pipeline.streaming.records import Records
from pipeline.streaming.rewind import Rewinds

if TYPE_CHECKING:
    from pipeline.streaming.app import Worker

log = structlog.get_logger(__name__)


class Positions:
    """The resume positions of a worker's partitions (``app``: its Faust app).

    ``input_names``: the input topics' full names, ``telemetry`` first;
    ``training_name``: the ``training-examples`` topic's.
    """

    def __init__(
        self,
        app: Any,
        worker: Worker,
        records: Records,
        *,
        input_names: list[str],
        training_name: str,
    ) -> None:
        self._app = app
        self._worker = worker
        self._records = records
        self._inputs = input_names
        self._training = training_name
        self.rewinds = Rewinds(
            lambda topic, partition, offset: faust_adapter.seek(app, topic, partition, offset),
            self._start_of,
        )

    def stored_start(self, topic: str, partition: int) -> int | None:
        """The first offset of ``partition`` of ``topic`` the stored state has not
        finished: the lane's record (inputs) or the trainer's last ``EpochClosed``
        (``training-examples``); ``None``: unknown (a lane record older than resume
        offsets, or the models not read yet). No waiting: it also runs inside Faust's
        rebalance, before the app's tasks may have started."""
        models = self._worker.models
        if topic in self._inputs:
            slot = self._worker.scoring.slots.get(partition)
            record = self._records.lane(partition) if slot is None else None
            resume = slot.resume if slot is not None else record.resume if record else {}
            return None if resume is None else resume.get(topic, 0)
        if partition in models.closed_by:
            return models.resume_by.get(partition)
        return 0 if models.caught_up.is_set() else None

    def finished(self, topic: str, partition: int) -> int:
        """The first offset of ``partition`` of ``topic`` not finished as far as this
        worker knows: after the last one it processed, or (nothing processed since the
        partition was assigned) where the stored state resumes. A partition taken over
        with everything finished by its previous owner must not look unread: its lane
        would wait forever for failures that were applied long ago."""
        last = self._worker.counters.last_offsets.get((topic, partition))
        if last is not None:
            return last + 1
        return self.stored_start(topic, partition) or 0

    def labels_read(self, partition: int) -> bool:
        """Every failure and verdict Kafka held for ``partition`` (its high watermark as
        of the last fetch) has been processed (a producer that acknowledged a failure
        before sending later readings then never has a reading scored before it)."""
        for topic in self._inputs[1:]:
            highwater = faust_adapter.highwater(self._app, topic, partition)
            if highwater is None:
                continue
            committed = faust_adapter.committed(self._app, topic, partition)
            if max(self.finished(topic, partition), committed or 0) < highwater:
                return False
        return True

    def telemetry_drained(self, partition: int) -> bool:
        """Telemetry partition ``partition`` has nothing left to read right now."""
        telemetry = self._inputs[0]
        highwater = faust_adapter.highwater(self._app, telemetry, partition)
        return highwater is not None and self.finished(telemetry, partition) >= highwater

    async def _start_of(self, topic: str, partition: int) -> int | None:
        if topic == self._training:
            await self._worker.models.catch_up()  # the trainer's predecessor's last EpochClosed
        return self.stored_start(topic, partition)

    async def revoked(
        self, revoked: Iterable[Any], commit: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Partitions ``revoked`` (Faust ``TP``s) are being taken away: make what was
        processed durable (``commit``; ``None`` before the input stream exists) while
        they are still ours, and remember where each one stands, so that this worker
        re-reads from there if it gets them back."""
        app, worker = self._app, self._worker
        scoring = worker.scoring
        faust_adapter.after_seek_to_committed(app, self._position_assigned)
        tps = list(revoked)
        revoked_inputs = {tp.partition for tp in tps if tp.topic == self._inputs[0]}
        revoked_training = {tp.partition for tp in tps if tp.topic == self._training}
        scoring.revoke(revoked_inputs)
        if commit is not None:
            await commit()
        # The commit waited for its state records; anything else still buffered (Faust
        # flushed its producer before calling this handler) is sent before the next
        # owner reads on from here (unflushed state records once made it restore older
        # states and publish alerts twice).
        await app.producer.flush()
        for partition in revoked_inputs:
            resume = scoring.resume_offsets(partition, self._inputs)
            self.rewinds.revoked({(topic, partition): offset for topic, offset in resume.items()})
        for partition in revoked_training:
            offset = worker.training.resume_offset(partition)
            if offset is not None:
                self.rewinds.revoked({(self._training, partition): offset})
        self._records.forget()
        scoring.forget(revoked_inputs)
        worker.training.forget(revoked_training)

    def assigned(self, assigned: Iterable[Any]) -> None:
        """Partitions ``assigned`` (Faust ``TP``s): position each one once Faust has
        sought to the committed offsets, before fetching resumes."""
        faust_adapter.after_seek_to_committed(self._app, self._position_assigned)
        self.rewinds.assigned((tp.topic, tp.partition) for tp in assigned)

    async def _position_assigned(self) -> None:
        # Every input and training partition starts where this deployment's state says.
        for topic, partition in sorted(faust_adapter.assignment(self._app)):
            if topic not in self._inputs and topic != self._training:
                continue
            try:
                start = self.stored_start(topic, partition)
                if start is None:
                    start = faust_adapter.committed(self._app, topic, partition) or 0
                await self.rewinds.position(topic, partition, start)
                log.info(
                    "partition_positioned",
                    topic=topic,
                    partition=partition,
                    offset=self.rewinds.pending().get((topic, partition), start),
                )
            except Exception:  # rebalancing again: the next assignment positions it
                log.exception("partition_position_failed", topic=topic, partition=partition)
