"""The training side: examples gathered by event-time epoch, learnt once an epoch closes.

One :class:`EpochTrainer` serves one ``training-examples`` partition in a worker, or the
whole fleet in the backtest. Examples arrive in any order and may arrive twice (a worker
that restarts re-sends what it sent since its last checkpoint); the trainer keeps one
copy of each per epoch, and when the epoch closes every group learns its examples in a
canonical order (``Trainer.learn_epoch``). An epoch closes once every lane has reported
that it sent all of the epoch's examples (:meth:`EpochTrainer.mark`); lanes marked idle
do not hold it back. The schedule is in ``pipeline/engine/schedule.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from pipeline.engine.config import EngineConfig
from pipeline.engine.fleet import FleetModel, Trainer
from pipeline.engine.schedule import NO_EPOCH, ModelSchedule
from schemas import TrainingExample

ExampleKey = tuple[str, str, float, str, bool]
"""(group, device_id, reading time, label source, label): one labelled reading."""

RECENT_EPOCHS = 8
"""Closed epochs whose example keys are kept to recognise re-sent duplicates."""

HISTORY = 8
"""Published versions kept per group (a lane restored from its changelog may need an
older one than the newest)."""


def schedule_of(config: EngineConfig) -> ModelSchedule:
    """The model schedule an engine configuration implies."""
    return ModelSchedule(config.publish_interval_seconds, config.allowed_lateness_seconds)


def key_of(example: TrainingExample) -> ExampleKey:
    """What identifies an example across re-sends."""
    return (example.group, example.device_id, example.ts.timestamp(), example.source, example.label)


def epoch_of(schedule: ModelSchedule, example: TrainingExample) -> int:
    """The epoch an example belongs to (by ``emitted_at``, else by its reading time)."""
    stamp = example.emitted_at if example.emitted_at is not None else example.ts
    return schedule.epoch(stamp.timestamp())


class EpochTrainer:
    """Trainers of every group seen, the examples of open epochs, and the lanes' marks.

    ``lanes`` is the number of input partitions whose marks close an epoch (``0``: the
    caller closes epochs itself, as the backtest does).
    """

    def __init__(self, config: EngineConfig, lanes: int = 0) -> None:
        self.config = config
        self.schedule = schedule_of(config)
        self.lanes = lanes
        self.trainers: dict[str, Trainer] = {}
        self.closed = NO_EPOCH
        """Every epoch up to this one is closed (learnt and published)."""
        self.marks: dict[int, int] = {}
        self.idle: set[int] = set()
        self.history: dict[str, deque[FleetModel]] = {}
        self.examples = 0
        self.positives = 0
        self.duplicates = 0
        self.late = 0
        """Examples that arrived after their epoch closed (learnt in the next one)."""
        self._open: dict[int, dict[ExampleKey, TrainingExample]] = {}
        self._recent: deque[set[ExampleKey]] = deque(maxlen=RECENT_EPOCHS)
        self._learnt_through: dict[str, int] = {}
        """Per group, the epoch its resumed snapshot was trained through."""
        self._resumed_closed = NO_EPOCH

    # -- input ------------------------------------------------------------------------

    def add(self, example: TrainingExample) -> bool:
        """Keep ``example`` for its epoch; ``False`` if it is a copy of one already kept."""
        key = key_of(example)
        epoch = epoch_of(self.schedule, example)
        if epoch <= self._learnt_through.get(example.group, NO_EPOCH):
            self.duplicates += 1  # learnt before the restart: in the resumed snapshot
            return False
        if epoch <= self.closed:
            if any(key in keys for keys in self._recent):
                self.duplicates += 1
                return False
            if epoch > self._resumed_closed:
                self.late += 1
                epoch = self.closed + 1
            # else: read again after a restart, not in any snapshot (its group had no
            # model yet): learnt in its own epoch, in order, at the next close.
        bucket = self._open.setdefault(epoch, {})
        if key in bucket:
            self.duplicates += 1
            return False
        bucket[key] = example
        return True

    def mark(self, lane: int, complete_through: int, *, idle: bool = False) -> None:
        """Lane ``lane`` has sent every example of epochs ``<= complete_through``."""
        if complete_through > self.marks.get(lane, NO_EPOCH):
            self.marks[lane] = complete_through
        if idle:
            self.idle.add(lane)
        else:
            self.idle.discard(lane)

    def closable(self) -> int:
        """The newest epoch every active lane has completed (``NO_EPOCH``: none yet)."""
        active = [lane for lane in range(self.lanes) if lane not in self.idle]
        if not active or any(lane not in self.marks for lane in active):
            return self.closed
        return max(self.closed, min(self.marks[lane] for lane in active))

    # -- closing ----------------------------------------------------------------------

    def close_through(self, epoch: int) -> list[FleetModel]:
        """Learn every open epoch ``<= epoch`` in order; return the versions published.

        After a restart this includes epochs closed before it whose examples were read
        again (groups that had no published version yet).
        """
        published: list[FleetModel] = []
        for k in sorted(k for k in self._open if k <= epoch):
            bucket = self._open.pop(k)
            self._recent.append(set(bucket))
            by_group: dict[str, list[TrainingExample]] = {}
            for key in sorted(bucket):
                by_group.setdefault(key[0], []).append(bucket[key])
            for group, examples in sorted(by_group.items()):
                self.examples += len(examples)
                self.positives += sum(e.label for e in examples)
                model = self.trainer(group).learn_epoch(k, examples)
                if model is not None:
                    self.history.setdefault(group, deque(maxlen=HISTORY)).append(model)
                    published.append(model)
        self.closed = max(self.closed, epoch)
        return published

    def trainer(self, group: str) -> Trainer:
        """The trainer of ``group`` (created on its first example)."""
        trainer = self.trainers.get(group)
        if trainer is None:
            trainer = self.trainers[group] = Trainer(self.config, group)
        return trainer

    def resume(self, models: Iterable[FleetModel], closed: int) -> None:
        """Continue from published snapshots and the last closed epoch (a restart)."""
        for model in models:
            self.trainer(model.group).resume(model)
            self.history.setdefault(model.group, deque(maxlen=HISTORY)).append(model)
            self._learnt_through[model.group] = model.epoch
        self.closed = max(self.closed, closed)
        self._resumed_closed = self.closed

    def published_through(self, group: str) -> int:
        """The newest epoch a published version of ``group`` contains (``NO_EPOCH``: none):
        its examples up to there need not be read again."""
        versions = self.history.get(group)
        return versions[-1].epoch if versions else NO_EPOCH

    def models_as_of(self, epoch: int) -> list[FleetModel]:
        """Per group, the newest version trained through ``epoch`` at most."""
        return models_as_of(self.history, epoch)


def models_as_of(history: dict[str, deque[FleetModel]], epoch: int) -> list[FleetModel]:
    """Per group of ``history``, the newest version whose epoch is ``<= epoch``."""
    chosen = []
    for group in sorted(history):
        best = None
        for model in history[group]:
            if model.epoch <= epoch:
                best = model
        if best is not None:
            chosen.append(best)
    return chosen
