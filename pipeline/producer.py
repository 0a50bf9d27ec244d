"""Send readings to Forewarn in batches: the producer helper for devices and gateways.

:class:`TelemetryProducer` groups readings by the ``telemetry`` partition their
``device_id`` maps to (Kafka's default placement, :mod:`pipeline.partitioner`) and sends
each group as one :class:`~schemas.TelemetryBatch`, explicitly to that partition, when
it is full and on :meth:`TelemetryProducer.flush`. :class:`PartitionBatches` is the
grouping alone, free of I/O. See docs/integration.md.
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline import topics
from pipeline.errors import ConfigError, ForewarnError
from pipeline.partitioner import partition_for
from pipeline.security import kafka_options
from pipeline.settings import Settings
from schemas.telemetry import (
    MAX_BATCH_BYTES,
    MAX_BATCH_READINGS,
    TELEMETRY_BATCH_SCHEMA_VERSION,
    Telemetry,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_READINGS = 500
"""Readings per batch unless told otherwise: large enough that the per-message cost of
Kafka and the worker is spread thin, small enough to leave within moments."""

DEFAULT_LINGER_S = 0.1
"""How long a batch's first reading waits for more before the batch leaves anyway."""

_CHECK_EVERY = 256
"""Batches sent between two looks at their acknowledgements (keeps memory bounded)."""

_HEAD = b'{"schema_version":%d,"readings":[' % TELEMETRY_BATCH_SCHEMA_VERSION
_TAIL = b"]}"


class ProduceError(ForewarnError):
    """Kafka did not acknowledge a batch (the error names the partition and the cause)."""


def producer_for(settings: Settings, *, client_id: str = "forewarn-producer") -> KafkaProducer:
    """A kafka-python producer tuned for throughput; ``acks=all`` so nothing is lost on the way."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        retries=10,
        client_id=client_id,
    )


def encode_batch(readings: list[bytes]) -> bytes:
    """A ``TelemetryBatch`` message from readings already encoded as JSON objects."""
    return _HEAD + b",".join(readings) + _TAIL


class PartitionBatches:
    """Pending batches of encoded readings, one per partition; no I/O, no clock.

    ``add`` returns the batches that must leave now, in order: a partition's pending
    batch when the new reading would not fit in it (``max_readings`` readings,
    ``max_bytes`` bytes of encoded batch), the new reading's batch when it is full, and
    every other batch whose first reading was added ``linger_s`` seconds or more before
    ``now`` (any monotonic clock, in seconds). Readings keep their order within a
    partition. Raises ``ValueError`` for limits outside what the worker accepts and for
    a reading too big for any batch.
    """

    def __init__(
        self,
        partitions: int,
        *,
        max_readings: int = DEFAULT_MAX_READINGS,
        max_bytes: int = MAX_BATCH_BYTES,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if not 1 <= max_readings <= MAX_BATCH_READINGS:
            raise ValueError(
                f"max_readings must be 1 to {MAX_BATCH_READINGS} (the worker's limit), "
                f"got {max_readings}"
            )
        smallest = len(_HEAD) + len(_TAIL) + 2
        if not smallest <= max_bytes <= MAX_BATCH_BYTES:
            raise ValueError(
                f"max_bytes must be {smallest} to {MAX_BATCH_BYTES} (the worker's limit), "
                f"got {max_bytes}"
            )
        if not linger_s >= 0:
            raise ValueError(f"linger_s must be 0 or more, got {linger_s}")
        self.partitions = partitions
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self._pending: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}
        self._since: dict[int, float] = {}
        """When each pending batch got its first reading."""
        self._oldest = math.inf
        """At most the oldest of ``_since``: no batch is due before ``_oldest + linger_s``."""

    def partition_of(self, device_id: str) -> int:
        """The partition ``device_id`` maps to."""
        return partition_for(device_id, self.partitions)

    def add(self, device_id: str, reading: bytes, now: float) -> list[tuple[int, bytes]]:
        """Queue one reading (its JSON) of ``device_id`` at time ``now``; the batches to
        send now, in order."""
        partition = self.partition_of(device_id)
        if len(_HEAD) + len(reading) + len(_TAIL) > self.max_bytes:
            raise ValueError(
                f"a reading of {len(reading)} bytes of device {device_id!r} does not fit "
                f"in a batch of at most {self.max_bytes} bytes"
            )
        ready: list[tuple[int, bytes]] = []
        pending = self._pending.get(partition)
        if pending and self._sizes[partition] + 1 + len(reading) > self.max_bytes:
            ready.append((partition, self._take(partition)))
            pending = None
        if not pending:
            self._pending[partition] = [reading]
            self._sizes[partition] = len(_HEAD) + len(reading) + len(_TAIL)
            self._since[partition] = now
            self._oldest = min(self._oldest, now)
        else:
            pending.append(reading)
            self._sizes[partition] += 1 + len(reading)
        if len(self._pending[partition]) >= self.max_readings:
            ready.append((partition, self._take(partition)))
        ready += self.take_due(now)
        return ready

    def take_due(self, now: float) -> list[tuple[int, bytes]]:
        """Every batch whose first reading has waited ``linger_s`` by ``now``, and forget them."""
        if now - self._oldest < self.linger_s:
            return []
        due = [p for p, since in self._since.items() if now - since >= self.linger_s]
        taken = [(p, self._take(p)) for p in sorted(due)]
        self._oldest = min(self._since.values(), default=math.inf)
        return taken

    def take(self, partition: int) -> bytes | None:
        """The pending batch of ``partition``, encoded, and forget it (``None``: empty)."""
        return self._take(partition) if self._pending.get(partition) else None

    def take_all(self) -> list[tuple[int, bytes]]:
        """Every pending batch, by partition number, and forget them."""
        return [(p, self._take(p)) for p in sorted(self._pending) if self._pending[p]]

    @property
    def pending_readings(self) -> int:
        """Readings queued and not yet handed out."""
        return sum(len(readings) for readings in self._pending.values())

    def _take(self, partition: int) -> bytes:
        readings = self._pending.pop(partition)
        del self._sizes[partition], self._since[partition]
        return encode_batch(readings)


class TelemetryProducer:
    """Batches readings by partition and sends them to the ``telemetry`` topic.

    The partition count is read from the topic's metadata on the broker when the
    producer starts (``settings.topic_partitions`` only if the broker cannot tell,
    with a warning); restart producers after adding partitions, as the workers are.
    ``send`` queues a reading and sends its partition's batch when it is full
    (``max_readings`` readings or ``max_bytes`` bytes), and any batch whose first
    reading has waited ``linger_s`` seconds (checked on each ``send``: a sender that may
    fall silent calls ``send_pending`` or ``flush`` before it does, or on a timer);
    ``flush`` sends every pending batch and waits until Kafka acknowledged all of them
    (``acks=all``), raising :class:`ProduceError` if one was refused; ``close`` (or
    leaving the ``with`` block) flushes first. One thread at a time.

    ``producer`` is a kafka-python producer to reuse (it is not closed here); by
    default one from :func:`producer_for`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_readings: int = DEFAULT_MAX_READINGS,
        max_bytes: int = MAX_BATCH_BYTES,
        linger_s: float = DEFAULT_LINGER_S,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.topic = settings.topic(topics.TELEMETRY)
        self._own = producer is None
        self._kafka = producer if producer is not None else producer_for(settings)
        try:
            partitions = _partition_count(self._kafka, self.topic, settings.topic_partitions)
            self._batches = PartitionBatches(
                partitions, max_readings=max_readings, max_bytes=max_bytes, linger_s=linger_s
            )
        except (ValueError, KafkaError) as error:
            if self._own:
                self._kafka.close()
            raise ConfigError(str(error)) from error
        self._sent: list[tuple[int, Any]] = []
        self.readings = 0
        self.batches = 0

    @property
    def partitions(self) -> int:
        """The topic's partition count this producer places readings by."""
        return self._batches.partitions

    def partition_of(self, device_id: str) -> int:
        """The ``telemetry`` partition of ``device_id``'s readings and batches."""
        return self._batches.partition_of(device_id)

    def send(self, reading: Telemetry) -> None:
        """Queue ``reading``; send its partition's batch if that is now full."""
        ready = self._batches.add(
            reading.device_id, reading.model_dump_json().encode(), time.monotonic()
        )
        self.readings += 1
        for partition, value in ready:
            self._send(partition, value)

    def flush_partition(self, partition: int, timeout_s: float = 60.0) -> None:
        """Send the pending batch of ``partition`` and wait until Kafka acknowledged every
        batch sent to it, e.g. before a failure event of a device of that partition, so
        that the readings are in the log first. Raises :class:`ProduceError`."""
        value = self._batches.take(partition)
        if value is not None:
            self._send(partition, value)
        for sent, future in self._sent:
            if sent == partition:
                try:
                    future.get(timeout=timeout_s)
                except KafkaError as error:
                    raise ProduceError(
                        f"Kafka refused a batch for {self.topic} partition {partition}: {error}"
                    ) from error

    @property
    def linger_s(self) -> float:
        """Longest wait of a batch's first reading, checked on each ``send``."""
        return self._batches.linger_s

    def send_pending(self) -> None:
        """Send every pending batch now, without waiting for the acknowledgements
        (e.g. before the sender pauses for longer than ``linger_s``)."""
        for partition, value in self._batches.take_all():
            self._send(partition, value)

    def flush(self, timeout_s: float | None = None) -> None:
        """Send every pending batch and wait for Kafka's acknowledgements."""
        self.send_pending()
        self._kafka.flush(timeout=timeout_s)
        self._check_sent()

    def close(self) -> None:
        """Flush, then close the Kafka producer if this object created it."""
        try:
            self.flush()
        finally:
            if self._own:
                self._kafka.close()

    def __enter__(self) -> TelemetryProducer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, partition: int, value: bytes) -> None:
        future = self._kafka.send(self.topic, partition=partition, value=value)
        self._sent.append((partition, future))
        self.batches += 1
        if len(self._sent) >= _CHECK_EVERY:
            self._check_sent()

    def _check_sent(self) -> None:
        """Forget acknowledged batches; raise ``ProduceError`` if any was refused."""
        refused = [(p, future) for p, future in self._sent if future.is_done and future.failed()]
        self._sent = [(p, future) for p, future in self._sent if not future.is_done]
        if refused:
            partition, future = refused[0]
            raise ProduceError(
                f"Kafka refused {len(refused)} batch(es) for {self.topic}, the first for "
                f"partition {partition}: {future.exception}"
            )


def _partition_count(kafka: KafkaProducer, topic: str, configured: int) -> int:
    try:
        known = kafka.partitions_for(topic)
    except KafkaError as error:
        known = None
        cause = f"{type(error).__name__}: {error}"
    else:
        cause = "no metadata"
    if known:
        return len(known)
    log.warning("producer.partitions_unknown", topic=topic, assumed=configured, cause=cause[:200])
    return configured
