"""Every message Forewarn reads or writes, as strict pydantic models."""

from __future__ import annotations

from pydantic import BaseModel

from schemas._base import SCHEMA_VERSION
from schemas.outputs import (
    ALERT_SCHEMA_VERSION,
    Alert,
    AlertAction,
    EpochClosed,
    Explanation,
    Factor,
    LabelSource,
    LaneWatermark,
    ModelSnapshot,
    Prediction,
    Rejected,
    Severity,
    TrainingExample,
)
from schemas.telemetry import (
    MAX_BATCH_BYTES,
    MAX_BATCH_READINGS,
    TELEMETRY_BATCH_SCHEMA_VERSION,
    FailureEvent,
    Feedback,
    MaintenanceEvent,
    MaintenanceKind,
    Telemetry,
    TelemetryBatch,
    Verdict,
)

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_READINGS",
    "SCHEMA_VERSION",
    "TELEMETRY_BATCH_SCHEMA_VERSION",
    "Alert",
    "AlertAction",
    "EpochClosed",
    "Explanation",
    "Factor",
    "FailureEvent",
    "Feedback",
    "LabelSource",
    "LaneWatermark",
    "MaintenanceEvent",
    "MaintenanceKind",
    "ModelSnapshot",
    "Prediction",
    "Rejected",
    "Severity",
    "Telemetry",
    "TelemetryBatch",
    "TrainingExample",
    "Verdict",
    "message_models",
]


def message_models() -> dict[str, type[BaseModel]]:
    """Every message model by the name it is exported under."""
    return {
        model.__name__: model
        for model in (
            Telemetry,
            TelemetryBatch,
            FailureEvent,
            Feedback,
            MaintenanceEvent,
            Prediction,
            Alert,
            TrainingExample,
            LaneWatermark,
            ModelSnapshot,
            EpochClosed,
            Rejected,
        )
    }
