"""The one configuration object, read from ``FOREWARN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "forewarn"

DEV_INFLUX_TOKEN = "forewarn-dev-token"
DEV_SIGNING_KEY = "forewarn-dev-signing-key-change-me"
"""Built-in development secrets: a worker refuses them unless ``local_development``."""

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Deployment settings; every field maps to ``FOREWARN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FOREWARN_", frozen=True, extra="ignore")

    local_development: bool = False
    """A local development deployment (``make up``, ``make demo``, the tests): only then may
    a worker run with the built-in development signing key and token."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)
    topic_partitions: int = Field(default=4, ge=1)

    grafana_url: str = "http://127.0.0.1:3000"
    """Where operators open Grafana (docker-compose.yml's port); only printed, never called."""

    influx_url: str = "http://127.0.0.1:8086"
    influx_org: str = "forewarn"
    influx_bucket: str = "forewarn"
    influx_token: SecretStr = SecretStr(DEV_INFLUX_TOKEN)
    influx_username: str = "forewarn"
    influx_password: SecretStr = SecretStr("forewarn-dev-password")

    influx_ssl_ca_cert: Path | None = None
    influx_verify_ssl: bool = True

    model_signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)

    cache_dir: Path = DEFAULT_CACHE_DIR
    state_dir: Path = DEFAULT_CACHE_DIR / "state"

    worker_id: str = "forewarn-worker"
    """This worker process: its local state directory and its health series."""
    app_id: str | None = None
    """The deployment's Faust app id and Kafka consumer group, shared by every worker that
    splits the partitions (``None``: ``worker_id``, a single-worker deployment)."""
    engine_preset: str = "backblaze"
    engine_overrides: dict[str, float | int | bool | str | None] = Field(default_factory=dict)
    worker_web_port: int = Field(default=6066, ge=1, le=65535)
    table_store: Literal["rocksdb", "memory"] = "rocksdb"

    sink_batch_size: int = Field(default=5000, ge=1)
    sink_flush_seconds: float = Field(default=0.5, gt=0)
    sink_max_buffered_points: int = Field(default=200_000, ge=1)
    sink_readings: bool = True
    """Write each reading's raw metrics as a ``reading`` point (the drill-down's raw
    metrics); off halves the points written per reading (docs/deployment.md)."""

    fault_pause_after_points_s: float = Field(default=0.0, ge=0.0, le=600.0)
    """Fault injection for tests: seconds a checkpoint waits between its InfluxDB write and
    its state write (0 in every real deployment)."""

    rollup_period_s: int = Field(default=86_400, ge=60)
    """Event-time period of the ``device_risk`` and ``fleet_risk`` roll-ups (seconds)."""

    metric_catalogue: Path | None = None
    """TOML file of extra metric names/units for explanations (docs/operators.md)."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @property
    def group_id(self) -> str:
        """The consumer group every worker of this deployment joins."""
        return self.app_id or self.worker_id

    def topic(self, name: str) -> str:
        """The Kafka name of a topic of ``pipeline.topics`` in this deployment."""
        return self.topic_prefix + name


def load_settings() -> Settings:
    """Read settings from the environment (a fresh object on every call).

    Raises ``ConfigError`` naming the first bad ``FOREWARN_*`` variable."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "FOREWARN_" + "_".join(str(part) for part in first["loc"]).upper()
        value = first.get("input")
        secret = any(word in name.lower() for word in ("token", "key", "password", "secret"))
        shown = "" if secret or isinstance(value, dict) else f" {value!r}"  # secrets unshown
        raise ConfigError(f"bad {name}{shown}: {first['msg']}") from None
