"""Every use of Faust internals, in one place.

Faust has no public API for five things the worker needs, so they are reached here
and nowhere else (check them when upgrading faust-streaming):

- writing a checkpoint's states in bulk: Faust sends a table key's changelog record
  through its producer buffer, with one event-loop turn and one store write of the
  changelog offset per key; the checkpoint sends all its records at once, then writes
  the local store (in the partition of the *current event*, which it sets itself:
  ``Stream._set_current_event``) and the newest changelog offset once per partition
  (``Store.set_persisted_offset``);
- pausing and resuming the fetch of partitions whose lane is waiting for a model
  (``Consumer.pause_partitions`` / ``resume_partitions``, used by Faust's own flow
  control);
- the newest offset fetched per partition (``Consumer.highwater``) and the offset
  committed for it (``Consumer._committed_offset``, kept by Faust since the partition
  was assigned), to tell an idle partition from a lagging one and to know whether
  every failure before a reading has been read;
- positioning newly assigned partitions where the worker's own state says they resume,
  right after Faust's own seek to the committed offsets (``Consumer.perform_seek``);
- an idempotent producer outside ``exactly_once`` (``Producer._settings_extra``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP


async def write_changelogged(
    app: Any, stream: Any, table: Any, states: list[tuple[bytes, bytes, Any]]
) -> None:
    """``table[key] = value`` for every ``(key, value, event)``, in the partition of
    ``event``, in bulk: the changelog records are sent together and acknowledged by the
    broker, then the local store takes the values and the newest changelog offset of
    each partition (where recovery resumes), as Faust's own write would leave them.

    Measured: a Faust table write per key cost about three event-loop turns and two
    RocksDB writes (``docs/benchmarks.md``, issue 10 section 2)."""
    topic = table.changelog_topic.get_topic_name()
    producer = app.producer
    sent = [
        await producer.send(topic, key, value, event.message.partition, None, None)
        for key, value, event in states
    ]
    newest: dict[TP, int] = {}
    for delivery in sent:  # one by one: by the time the first is in, most are
        metadata = await delivery
        tp = metadata.topic_partition
        newest[tp] = max(newest.get(tp, -1), metadata.offset)
    store = table.data
    for key, value, event in states:
        stream._set_current_event(event)
        try:
            store[key] = value
        finally:
            stream._set_current_event(None)
    for tp, offset in newest.items():
        store.set_persisted_offset(tp, offset)


def idempotent_producer(app: Any) -> None:
    """Make the app's Kafka producer idempotent (``enable_idempotence``, ``acks=all``).

    Faust sets these only for ``exactly_once`` (``Producer._settings_extra``). Without
    them a produce request the broker wrote, whose answer was lost as the broker went
    down, is sent again by the producer's retry: a record written twice, below anything
    the worker can recognise (an alert published twice in the Kafka-outage test)."""
    producer = app.producer
    base = producer._settings_extra

    def settings_extra() -> dict[str, Any]:
        return {**base(), "acks": "all", "enable_idempotence": True}

    producer._settings_extra = settings_extra


def pause(app: Any, topics: list[str], partition: int) -> None:
    """Stop fetching ``partition`` of ``topics`` (Faust's flow control does the same)."""
    app.consumer.pause_partitions([TP(topic, partition) for topic in topics])


def resume(app: Any, topics: list[str], partition: int) -> None:
    """Fetch ``partition`` of ``topics`` again."""
    app.consumer.resume_partitions([TP(topic, partition) for topic in topics])


async def seek(app: Any, topic: str, partition: int, offset: int) -> None:
    """Fetch ``partition`` of ``topic`` from ``offset`` next, and move Faust's read offset
    there too (it drops fetched messages below it). ``seek_wait`` runs in the consumer's
    thread; Faust's ``seek`` calls aiokafka from the caller's thread instead."""
    await app.consumer.seek_wait({TP(topic, partition): offset})


def after_seek_to_committed(app: Any, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` each time Faust has sought the assigned partitions to their
    committed offsets, before it resumes fetching (end of every rebalance's recovery).

    Faust (``Consumer.perform_seek``) needs this: while a rebalance's recovery runs it
    fetches the new partitions and discards what it fetched, then seeks each partition
    back to its committed offset, but only if that offset is above 0 (aiokafka's
    ``seek_to_committed``); a partition with no commit yet is left where the discarded
    fetch ended, so its first messages would never be delivered. Wrapped here, once.
    """
    consumer = app.consumer
    if getattr(consumer, "_forewarn_after_seek", None) is not None:
        return
    original = consumer.perform_seek

    async def perform_seek() -> None:
        await original()
        await callback()

    consumer._forewarn_after_seek = callback
    consumer.perform_seek = perform_seek


def assignment(app: Any) -> set[tuple[str, int]]:
    """Every (topic, partition) assigned to this worker (empty while there is none)."""
    try:
        return {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    except Exception:  # no consumer yet, or it is rebalancing
        return set()


def assigned(app: Any, topic: str) -> set[int]:
    """Partitions of ``topic`` assigned to this worker (empty before the first rebalance)."""
    return {partition for name, partition in assignment(app) if name == topic}


def highwater(app: Any, topic: str, partition: int) -> int | None:
    """Offset after the newest message fetched for ``partition`` of ``topic`` (``None``:
    unknown yet)."""
    try:
        value = app.consumer.highwater(TP(topic, partition))
    except Exception:  # not assigned, or no fetch yet
        return None
    return int(value) if value is not None else None


def committed(app: Any, topic: str, partition: int) -> int | None:
    """The committed offset (the next to read) of ``partition`` of ``topic`` as Faust
    last knew it (``None``: none yet)."""
    try:
        value = app.consumer._committed_offset.get(TP(topic, partition))
    except Exception:  # no consumer yet, or it is rebalancing
        return None
    return int(value) if value is not None else None
