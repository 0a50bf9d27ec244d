"""A private Kafka and InfluxDB pair for tests that stop a server.

Other tests (and other people) use the shared servers of ``make up``; a test that stops
Kafka or InfluxDB starts its own pair with the same infra scripts, on free ports and
under its own state directory, reusing the binaries already built in the cache.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra" / "local"


def free_ports(count: int, *, consecutive: bool = False) -> list[int]:
    """Ports nobody listens on now (``consecutive``: ``count`` adjacent ones)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        ports = [first + i for i in range(count)] if consecutive else [first]
        if all(_free(port) for port in ports) and ports[-1] < 65536:
            if consecutive or count == 1:
                return ports
            return [first, *free_ports(count - 1)]
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class PrivateServers:
    """Kafka and InfluxDB of one test module, under ``state_dir``."""

    state_dir: Path
    kafka_port: int
    influx_port: int

    @classmethod
    def allocate(cls, state_dir: Path) -> PrivateServers:
        kafka_port = free_ports(2, consecutive=True)[0]  # the controller takes port + 1
        influx_port = free_ports(1)[0]
        return cls(state_dir, kafka_port, influx_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influx_port}"

    def env(self) -> dict[str, str]:
        return {
            "FOREWARN_STATE_DIR": str(self.state_dir),
            "FOREWARN_KAFKA_BOOTSTRAP": self.bootstrap,
            "FOREWARN_INFLUX_URL": self.influx_url,
            "FOREWARN_KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
        }

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(
            update={"kafka_bootstrap": self.bootstrap, "influx_url": self.influx_url}
        )

    def _run(self, script: str, action: str) -> None:
        subprocess.run(
            ["bash", str(INFRA / script), action],
            env={**os.environ, **self.env()},
            check=True,
            timeout=180,
            capture_output=True,
        )

    def start_kafka(self) -> None:
        self._run("kafka.sh", "start")

    def stop_kafka(self) -> None:
        self._run("kafka.sh", "stop")

    def start_influxdb(self) -> None:
        self._run("influxdb.sh", "start")

    def stop_influxdb(self) -> None:
        self._run("influxdb.sh", "stop")

    def start(self) -> None:
        self.start_kafka()
        self.start_influxdb()

    def stop(self) -> None:
        for stop in (self.stop_kafka, self.stop_influxdb):
            try:
                stop()
            except subprocess.CalledProcessError:
                continue
