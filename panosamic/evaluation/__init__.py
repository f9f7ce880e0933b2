"""Evaluation of PanoSAMic: whole-split metrics, validation loops, reports and figures.

``panosamic evaluate`` (or ``python panosamic/evaluation/evaluate.py``) is the command line;
training lives in :mod:`panosamic.training`.
"""

from panosamic.evaluation.metrics import (
    ConfusionMatrix,
    RowConfusion,
    SegmentationMetrics,
    metrics_from_confusion,
)

__all__ = ["ConfusionMatrix", "RowConfusion", "SegmentationMetrics", "metrics_from_confusion"]
