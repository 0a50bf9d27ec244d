"""Valid messages for tests: every field filled, any of them overridable."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import Alert

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TYPE = "ST4000DM000"


def make_alert(**overrides: object) -> Alert:
    """A valid raise of drive ``Z1`` at ``T0`` explained by SMART 197; fields overridable."""
    fields: dict[str, object] = {
        "alert_id": "a1",
        "action": "raise",
        "device_id": "Z1",
        "device_type": TYPE,
        "group": "fleet",
        "ts": T0,
        "raised_at": T0,
        "severity": "critical",
        "risk": 0.912,
        "failure_probability": 0.9,
        "anomaly_score": 0.1,
        "model_version": 3,
        "reason": "risk above the learned threshold",
        "threshold": 0.3,
        "explanations": [
            {
                "feature": "smart_197_raw.delta",
                "metric": "smart_197_raw",
                "name": "pending sectors (SMART 197)",
                "text": "pending sectors (SMART 197) 64 sectors, +56 in 3 days",
            }
        ],
        "counters_rose": ["smart_197_raw"],
    }
    fields.update(overrides)
    return Alert.model_validate(fields)
