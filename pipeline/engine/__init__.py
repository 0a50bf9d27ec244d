"""The prediction engine: pure, deterministic, no I/O.

Faust agents drive it in production and ``forewarn backtest`` drives it in-process;
both call the same four verbs: ``Scorer.on_telemetry / on_failure / on_feedback`` per
device message and ``Scorer.install`` per published model, ``Trainer.learn`` per
training example, and the ``Evaluator``'s ``observe_*`` for progressive evaluation.
"""

from __future__ import annotations

from pipeline.engine.config import FLEET_GROUP, EngineConfig
from pipeline.engine.evaluation import Evaluator, StreamingAUC
from pipeline.engine.fleet import FLEET_MODELS, FleetModel, Trainer
from pipeline.engine.policy import alert_id
from pipeline.engine.scorer import Scorer, Step
from pipeline.engine.state import DeviceState

__all__ = [
    "FLEET_GROUP",
    "FLEET_MODELS",
    "DeviceState",
    "EngineConfig",
    "Evaluator",
    "FleetModel",
    "Scorer",
    "Step",
    "StreamingAUC",
    "Trainer",
    "alert_id",
]
