"""Prediction: :func:`predict` / :func:`predict_batch` on panoramas, :class:`PredictionResult`,
:func:`predict_dataset` for many panoramas (sharded under torchrun, resumable), and the input
readers (:mod:`panosamic.inference.inputs`)."""

from panosamic.inference.inputs import collect_inputs, load_depth, load_image, load_normals, match_aux
from panosamic.inference.predict import PRECISIONS, predict, predict_batch
from panosamic.inference.result import PredictionResult, class_info
from panosamic.inference.scale import ScaleOptions, predict_dataset

__all__ = [
    "PRECISIONS",
    "PredictionResult",
    "ScaleOptions",
    "class_info",
    "collect_inputs",
    "load_depth",
    "load_image",
    "load_normals",
    "match_aux",
    "predict",
    "predict_batch",
    "predict_dataset",
]
