"""Secrets and transport security: the development-secret guard and client TLS/SASL options.

Every Kafka and InfluxDB client of Forewarn takes its connection options from here, so
``FOREWARN_KAFKA_SECURITY_PROTOCOL`` and friends apply to the worker, the replay, the
doctor and the admin client alike. Secrets stay ``SecretStr`` until the moment a client
library needs the plain value; none of these dictionaries is ever logged.
"""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import DEV_INFLUX_TOKEN, DEV_SIGNING_KEY, Settings


def check_secrets(settings: Settings) -> None:
    """Refuse the built-in development secrets outside a local development deployment.

    Raises ``ConfigError`` naming the variables to set.
    """
    if settings.local_development:
        return
    weak = []
    if settings.model_signing_key.get_secret_value() == DEV_SIGNING_KEY:
        weak.append("FOREWARN_MODEL_SIGNING_KEY")
    if settings.influx_token.get_secret_value() == DEV_INFLUX_TOKEN:
        weak.append("FOREWARN_INFLUX_TOKEN")
    if weak:
        raise ConfigError(
            f"{' and '.join(weak)} still hold{'s' if len(weak) == 1 else ''} the built-in "
            "development secret: set "
            f"{' and '.join(weak)} to this deployment's own secrets (a signing key of at "
            "least 32 random bytes, e.g. `openssl rand -hex 32`; see docs/deployment.md), "
            "or set FOREWARN_LOCAL_DEVELOPMENT=1 if this is a local development deployment"
        )


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            password.get_secret_value() if password is not None else None,
        )
    return context


def _sasl(settings: Settings) -> tuple[str, str]:
    username = settings.kafka_sasl_username
    password = settings.kafka_sasl_password
    if username is None or password is None:
        raise ConfigError(
            f"FOREWARN_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "FOREWARN_KAFKA_SASL_USERNAME and FOREWARN_KAFKA_SASL_PASSWORD"
        )
    return username, password.get_secret_value()


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for kafka-python and aiokafka clients."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        username, password = _sasl(settings)
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=username,
            sasl_plain_password=password,
        )
    return options


def faust_broker_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the configured protocol (``None``: plaintext)."""
    import faust

    protocol = settings.kafka_security_protocol
    context = _ssl_context(settings)
    if protocol.startswith("SASL"):
        username, password = _sasl(settings)
        return faust.SASLCredentials(
            username=username,
            password=password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def influx_options(settings: Settings) -> dict[str, Any]:
    """TLS keyword arguments for the InfluxDB clients (sync and async)."""
    options: dict[str, Any] = {"verify_ssl": settings.influx_verify_ssl}
    if settings.influx_ssl_ca_cert is not None:
        options["ssl_ca_cert"] = str(settings.influx_ssl_ca_cert)
    return options
