"""Prediction: :func:`predict` / :func:`predict_batch` on panoramas, :class:`PredictionResult`,
:func:`predict_dataset` for many panoramas (sharded under torchrun, resumable), and the input
readers (:mod:`panosamic.inference.inputs`)."""

from panosamic.inference.inputs import collect_inputs, load_depth, load_image, load_normals, match_aux
from panosamic.inference.pipeline import PRECISIONS
from panosamic.inference.predict import predict, predict_batch
from panosamic.inference.result import PredictionResult, class_info


def __getattr__(name: str) -> object:  # the scaled path (DataLoader, torch.distributed) on first use
    if name in ("ScaleOptions", "predict_dataset"):
        from panosamic.inference import scale

        return getattr(scale, name)
    raise AttributeError(f"module 'panosamic.inference' has no attribute {name!r}")

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
