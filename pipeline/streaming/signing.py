"""HMAC signing of pickles that travel over Kafka, checked before anything is unpickled."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from pipeline.errors import SnapshotError
from schemas import ModelSnapshot

_DIGEST = hashlib.sha256
SIGNATURE_BYTES = _DIGEST().digest_size


def _mac(key: SecretStr, *parts: bytes) -> bytes:
    mac = hmac.new(key.get_secret_value().encode(), digestmod=_DIGEST)
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.digest()


def seal(key: SecretStr, obj: object) -> bytes:
    """Pickle ``obj`` and prefix the pickle with its HMAC."""
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _mac(key, payload) + payload


def unseal(key: SecretStr, sealed: bytes) -> Any:
    """Check the HMAC of ``sealed`` and only then unpickle it."""
    signature, payload = sealed[:SIGNATURE_BYTES], sealed[SIGNATURE_BYTES:]
    if len(signature) != SIGNATURE_BYTES or not hmac.compare_digest(signature, _mac(key, payload)):
        raise SnapshotError("signature check failed: refusing to unpickle")
    return pickle.loads(payload)  # authenticated by the HMAC above


def _snapshot_mac(key: SecretStr, group: str, version: int, payload: bytes) -> str:
    return _mac(key, group.encode(), str(version).encode(), payload).hex()


def sign_snapshot(
    key: SecretStr,
    group: str,
    version: int,
    model: object,
    examples_seen: int,
    *,
    epoch: int | None = None,
) -> ModelSnapshot:
    """Pickle a fleet model into a signed ``ModelSnapshot`` message."""
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return ModelSnapshot(
        group=group,
        version=version,
        created_at=datetime.now(UTC),
        examples_seen=examples_seen,
        epoch=epoch,
        payload=payload,
        signature=_snapshot_mac(key, group, version, payload),
    )


def open_snapshot(key: SecretStr, snapshot: ModelSnapshot) -> Any:
    """Return the model inside ``snapshot``; ``SnapshotError`` if unsigned or tampered."""
    if not snapshot.signature:
        raise SnapshotError(f"snapshot {snapshot.group}@{snapshot.version} is unsigned")
    expected = _snapshot_mac(key, snapshot.group, snapshot.version, snapshot.payload)
    if not hmac.compare_digest(expected, snapshot.signature):
        raise SnapshotError(f"snapshot {snapshot.group}@{snapshot.version} has a bad signature")
    return pickle.loads(snapshot.payload)  # authenticated by the HMAC above
