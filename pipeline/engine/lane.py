"""One input partition's share of the engine: its scorer, time gate and watermark.

Everything the engine decides across devices (the alert budget and its threshold, the
threshold's candidate list, which metrics are counters, the explanation sketches, the
time policy's watermark) lives in the :class:`Lane` of the partition the devices' messages
arrive on, and sees that partition's messages in offset order only. Models come from
the trainer, installed at the event times the :class:`ModelSchedule` fixes. So a lane's
decisions depend on its partition's messages and nothing else: not on the other
partitions, how they interleave, how many workers share them, or the wall clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from datetime import UTC, datetime

from pipeline.engine.catalogue import Catalogue
from pipeline.engine.config import EngineConfig
from pipeline.engine.fleet import FleetModel
from pipeline.engine.schedule import NO_EPOCH, ModelSchedule
from pipeline.engine.scorer import Scorer
from pipeline.engine.timepolicy import TimeGate
from pipeline.engine.training import schedule_of
from schemas import FailureEvent, Feedback, MaintenanceEvent, TrainingExample

DeviceEvent = FailureEvent | MaintenanceEvent | Feedback
DeferKey = tuple[float, str, int, str]
"""(time, device, kind, detail): held events of one time apply failures first, then
repairs, then verdicts, whatever order they arrived in."""


def _defer_key(event: DeviceEvent) -> DeferKey:
    t, device_id = event.ts.timestamp(), event.device_id
    if isinstance(event, FailureEvent):
        return (t, device_id, 0, "")
    if isinstance(event, MaintenanceEvent):
        return (t, device_id, 1, event.kind)
    return (t, device_id, 2, f"{event.alert_id}|{event.verdict}")


class Lane:
    """The engine state of input partition ``partition``."""

    def __init__(
        self, config: EngineConfig, partition: int, catalogue: Catalogue | None = None
    ) -> None:
        self.partition = partition
        self.scorer = Scorer(config, catalogue)
        self.gate = TimeGate()
        self.schedule: ModelSchedule = schedule_of(config)
        self.watermark = -math.inf
        """Newest reading time processed (POSIX seconds)."""
        self.installed = NO_EPOCH
        """Models trained through this epoch are installed."""
        self.marked = NO_EPOCH
        """Newest epoch reported complete (:meth:`advance`)."""
        self._deferred: list[tuple[DeferKey, DeviceEvent]] = []
        self._deferred_keys: set[DeferKey] = set()

    def defers(self, event: DeviceEvent) -> bool:
        """Hold a failure, repair or verdict until the lane moves past its time, if it
        has not yet.

        Such an event is applied just before the first reading of its partition dated
        after it (:meth:`due`), whenever it arrived: Kafka orders each topic on its own,
        so a failure can be read before readings dated before it, and applying it then
        would depend on that timing. One that arrives after the lane moved past it is
        applied at once (``False``). A copy of one already held is held once.
        """
        t = event.ts.timestamp()
        if t < self.watermark:
            return False
        key = _defer_key(event)
        if key not in self._deferred_keys:
            self._deferred_keys.add(key)
            heapq.heappush(self._deferred, (key, event))
        return True

    def due(self, t: float) -> list[DeviceEvent]:
        """The held events dated before a reading at ``t``, in time order."""
        deferred = self._deferred
        out = []
        while deferred and deferred[0][0][0] < t:
            key, event = heapq.heappop(deferred)
            self._deferred_keys.discard(key)
            out.append(event)
        return out

    @property
    def held(self) -> int:
        """Events held until the lane moves past them."""
        return len(self._deferred)

    def needs(self, t: float) -> int | None:
        """The epoch whose models must be installed before a reading at ``t`` is scored,
        or ``None`` when they already are."""
        watermark = t if t > self.watermark else self.watermark
        if watermark == -math.inf:
            return None
        needed = self.schedule.needed(watermark)
        return needed if needed > self.installed else None

    def install(self, epoch: int, models: Iterable[FleetModel]) -> None:
        """Install the models trained through ``epoch`` (newer than the installed ones)."""
        for model in models:
            if model.epoch <= epoch:
                self.scorer.install(model)
        self.installed = max(self.installed, epoch)

    def advance(self, t: float) -> int | None:
        """Take a processed reading at ``t``; return the newly complete epoch to mark, if any."""
        self.watermark = max(self.watermark, t)
        complete = self.schedule.complete_through(self.watermark)
        if complete > self.marked:
            self.marked = complete
            return complete
        return None

    def stamp(self, examples: list[TrainingExample], t: float) -> list[TrainingExample]:
        """Examples labelled by a message at ``t``, stamped with their epoch's event time."""
        if not examples:
            return examples
        stamp = datetime.fromtimestamp(self.schedule.stamp(t, self.watermark), UTC)
        return [example.model_copy(update={"emitted_at": stamp}) for example in examples]
