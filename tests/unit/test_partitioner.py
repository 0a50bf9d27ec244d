"""The in-process partitioner agrees with Kafka's default partitioner."""

import pytest
from kafka.partitioner.default import DefaultPartitioner

from pipeline.partitioner import partition_for


class _Cluster:
    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


@pytest.mark.parametrize("partitions", [1, 2, 4, 7])
def test_same_partition_as_kafka_python(partitions: int) -> None:
    kafka = DefaultPartitioner()
    cluster = _Cluster(partitions)
    for device_id in ["Z300XXXX", "disk-1", "pump/7", "ünïcode", "x" * 200]:
        key = device_id.encode()
        expected = kafka.partition("t", device_id, key, None, None, cluster)
        assert partition_for(device_id, partitions) == expected


def test_java_client_test_vector() -> None:
    # Apache Kafka's UtilsTest: murmur2("21") == -973932308 (as a signed 32-bit int).
    assert partition_for("21", 5) == (-973932308 & 0x7FFFFFFF) % 5
    assert partition_for("21", 1 << 30) == (-973932308 & 0x7FFFFFFF) % (1 << 30)


def test_rejects_no_partitions() -> None:
    with pytest.raises(ValueError, match="partitions must be at least 1"):
        partition_for("d", 0)
