"""Prediction: :func:`predict` / :func:`predict_batch` on panoramas, :class:`PredictionResult`,
:func:`predict_dataset` for many panoramas (sharded under torchrun, resumable), and the input
readers (:mod:`panosamic.inference.inputs`)."""

from panosamic.inference.inputs import collect_inputs, load_depth, load_image, load_normals, match_aux
from panosamic.inference.pipeline import PRECISIONS
from panosamic.inference.predict import predict, predict_batch
from panosamic.inference.result import PredictionResult, class_info
from panosamic.lazy import lazy_dir, lazy_getattr

#: The scaled path (DataLoader, torch.distributed), imported on first use.
_LAZY = {"panosamic.inference.scale": ("ScaleOptions", "predict_dataset")}

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)

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
