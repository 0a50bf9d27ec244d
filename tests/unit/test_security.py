"""The development-secret guard, transport options, and secrets kept out of every output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError
from pipeline.security import (
    check_secrets,
    faust_broker_credentials,
    influx_options,
    kafka_options,
)
from pipeline.settings import Settings

SECRETS = {
    "FOREWARN_INFLUX_TOKEN": "tok-3f9a1c77e2b54d0e",
    "FOREWARN_MODEL_SIGNING_KEY": "key-9b2e4a6c8d0f1e3a5b7c",
    "FOREWARN_INFLUX_PASSWORD": "pw-51d2c3b4a5968778",
    "FOREWARN_KAFKA_SASL_PASSWORD": "sasl-0a1b2c3d4e5f6a7b",
}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    port = closed_port()
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")},
            "FOREWARN_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
            "FOREWARN_INFLUX_URL": f"http://127.0.0.1:{port}",
            "FOREWARN_STATE_DIR": str(tmp_path),
            "FOREWARN_LOG_LEVEL": "debug",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_development_secrets_are_refused_outside_local_development() -> None:
    with pytest.raises(ConfigError) as error:
        check_secrets(Settings(local_development=False))
    message = str(error.value)
    for needed in ("FOREWARN_MODEL_SIGNING_KEY", "FOREWARN_INFLUX_TOKEN", "docs/deployment.md"):
        assert needed in message
    assert "FOREWARN_LOCAL_DEVELOPMENT=1" in message
    check_secrets(Settings(local_development=True))
    check_secrets(
        Settings(
            local_development=False,
            influx_token=SecretStr("real-token"),
            model_signing_key=SecretStr("real-key"),
        )
    )


def test_a_worker_with_development_secrets_stops_with_one_line(tmp_path: Path) -> None:
    result = run_cli(["worker"], {"FOREWARN_LOCAL_DEVELOPMENT": "0"}, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "FOREWARN_MODEL_SIGNING_KEY" in output
    assert "Traceback" not in output


def test_sasl_ssl_options_reach_every_kind_of_client(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="forewarn",
        kafka_sasl_password=SecretStr("s3cret"),
        influx_verify_ssl=True,
        influx_ssl_ca_cert=tmp_path / "ca.pem",
    )
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "forewarn"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"] is not None
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert influx_options(settings) == {
        "verify_ssl": True,
        "ssl_ca_cert": str(tmp_path / "ca.pem"),
    }
    assert kafka_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(Settings()) is None
    with pytest.raises(ConfigError, match="FOREWARN_KAFKA_SASL_PASSWORD"):
        kafka_options(Settings(kafka_security_protocol="SASL_PLAINTEXT"))


def test_secrets_never_appear_in_settings_repr() -> None:
    settings = Settings(
        influx_token=SecretStr(SECRETS["FOREWARN_INFLUX_TOKEN"]),
        model_signing_key=SecretStr(SECRETS["FOREWARN_MODEL_SIGNING_KEY"]),
        kafka_sasl_password=SecretStr(SECRETS["FOREWARN_KAFKA_SASL_PASSWORD"]),
    )
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in SECRETS.values():
        assert secret not in text


def test_secrets_never_appear_in_logs_or_doctor_output(tmp_path: Path) -> None:
    env = {
        **SECRETS,
        "FOREWARN_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FOREWARN_KAFKA_SASL_USERNAME": "forewarn",
        "FOREWARN_LOG_FORMAT": "json",
    }
    result = run_cli(["doctor"], env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0  # nothing listens on the port
    assert output.strip()
    for secret in SECRETS.values():
        assert secret not in output
