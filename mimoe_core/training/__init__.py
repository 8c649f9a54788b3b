"""Training, metrics, target scaling and checkpoints (the only place that touches optimizers)."""

from mimoe_core.trained import TrainedModel
from mimoe_core.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mimoe_core.training.divergence import TrainingDiverged
from mimoe_core.training.ensemble import EnsembleResult, train_ensemble
from mimoe_core.training.experiments import ablation_variants, run_experiments
from mimoe_core.training.metrics import classification_metrics, regression_metrics
from mimoe_core.training.scaling import ScaledMIMoE, TargetScaler, UnscaleTransform
from mimoe_core.training.trainer import (
    TrainingRun,
    TrainResult,
    TrainSettings,
    TrainState,
    masked_loss,
    train,
)

__all__ = [
    "Checkpoint",
    "EnsembleResult",
    "ScaledMIMoE",
    "TargetScaler",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "TrainedModel",
    "TrainingDiverged",
    "TrainingRun",
    "UnscaleTransform",
    "ablation_variants",
    "classification_metrics",
    "load_checkpoint",
    "masked_loss",
    "regression_metrics",
    "run_experiments",
    "save_checkpoint",
    "train",
    "train_ensemble",
]
