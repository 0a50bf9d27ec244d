"""A Faust codec for the device-state changelog: pickles sealed with the signing key."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs
from pydantic import SecretStr

from pipeline.streaming.signing import seal, unseal

STATE_CODEC = "forewarn-sealed-pickle"


class SealedPickle(codecs.Codec):
    """Pickle + HMAC: the changelog is a Kafka topic, so its bytes are checked before loading."""

    def __init__(self, key: SecretStr) -> None:
        super().__init__()
        self._key = key

    def _dumps(self, obj: Any) -> bytes:
        return seal(self._key, obj)

    def _loads(self, s: bytes) -> Any:
        return unseal(self._key, s)


def register_state_codec(key: SecretStr) -> str:
    """Register the codec under :data:`STATE_CODEC` (process-wide, last key wins)."""
    codecs.register(STATE_CODEC, SealedPickle(key))
    return STATE_CODEC
