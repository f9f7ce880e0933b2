"""Training and evaluation of PanoSAMic: metrics, losses, optimiser schedule, loops and CLIs.

``panosamic train`` / ``panosamic evaluate`` (or ``python panosamic/evaluation/{train,evaluate}.py``)
are the command lines; the pieces below are importable for custom loops.
"""

from panosamic.training.losses import (
    LossSchedule,
    MultilabelJaccardLoss,
    PanoSAMicLoss,
    class_weights_from_counts,
)
from panosamic.evaluation.metrics import ConfusionMatrix, SegmentationMetrics, metrics_from_confusion
from panosamic.training.optim import build_optimizer, lr_plan, scaled_max_lr

__all__ = [
    "ConfusionMatrix",
    "LossSchedule",
    "MultilabelJaccardLoss",
    "PanoSAMicLoss",
    "SegmentationMetrics",
    "build_optimizer",
    "class_weights_from_counts",
    "lr_plan",
    "metrics_from_confusion",
    "scaled_max_lr",
]
