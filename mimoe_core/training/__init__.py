"""Training, metrics, target scaling and checkpoints (the only place that touches optimizers)."""

from mimoe_core.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mimoe_core.training.experiments import ablation_variants, run_experiments
from mimoe_core.training.metrics import classification_metrics, regression_metrics
from mimoe_core.training.scaling import TargetScaler
from mimoe_core.training.trainer import TrainResult, TrainSettings, masked_loss, train

__all__ = [
    "Checkpoint",
    "TargetScaler",
    "TrainResult",
    "TrainSettings",
    "ablation_variants",
    "classification_metrics",
    "load_checkpoint",
    "masked_loss",
    "regression_metrics",
    "run_experiments",
    "save_checkpoint",
    "train",
]
