"""Which partition a device's messages go to: Kafka's default partitioner, in-process.

The producers (``forewarn replay``, the producer helper, any Java or librdkafka client
with default settings) and Faust's own sends all place a keyed message on
``murmur2(key) & 0x7fffffff % partitions``. The backtest assigns devices to the same
partition lanes so that partition-local engine state (alert budget, threshold) sees the
same devices in both drivers.
"""

from __future__ import annotations

import functools

from kafka.partitioner.default import murmur2


@functools.lru_cache(maxsize=65_536)
def partition_for(device_id: str, partitions: int) -> int:
    """Partition of ``device_id`` among ``partitions`` (Kafka's default, murmur2 of the
    UTF-8 key); raises ``ValueError`` if ``partitions`` < 1.

    Cached (65,536 devices): murmur2 in pure Python costs about half as much as
    validating the reading, and the same devices come back all day."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    result: int = (murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions
    return result
