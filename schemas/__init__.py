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
    FailureEvent,
    Feedback,
    MaintenanceEvent,
    MaintenanceKind,
    Telemetry,
    Verdict,
)

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "SCHEMA_VERSION",
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
