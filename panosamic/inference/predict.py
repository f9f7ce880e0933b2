"""Prediction for people: segment panoramas given as files, PIL images, arrays or tensors (drivers of
the one core, :mod:`panosamic.inference.pipeline`).

Python::

    from panosamic.inference import predict
    result = predict(model, "pano.jpg", depth="pano_depth.png")
    result.labels            # (H, W) int64 class indices, the input's size
    result.logits            # (K, H, W) float32 logits; result.probabilities() -> softmax
    result.colorize(); result.overlay(0.5); result.legend()         # PIL images
    result.save("out/")      # label PNG, colour PNG, overlay JPG, legend PNG

The model resizes any 2:1 input to its native size and returns logits at the input's size; see
:mod:`panosamic.inference.inputs` for the depth and normals formats.

Memory: inputs above ``max_pixels`` (default :data:`panosamic.inference.inputs.MAX_PIXELS`,
2**27 = 8192 x 16384) are refused before decoding. Inputs of more than
:data:`panosamic.inference.inputs.FULL_LOGITS_MAX_PIXELS` pixels (2**23 = 2048 x 4096) take the
*banded* path: the image is decoded as uint8 and resized to the native size in row bands (same values as the network's own
resize), the logits stay at the native size (``result.logits_size``; ``result.probabilities()``
at that size too) and the labels are the argmax of the bilinear upsampling computed band by band
(:func:`panosamic.modeling.upsample.banded_labels`: equal to the full-size argmax), stored in the
smallest integer dtype (uint8 for up to 256 classes). Memory then stays near the size of the
image and label map instead of growing ~50 bytes per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from panosamic.inference.inputs import _is_tensor, _PathLike, pixel_limit
from panosamic.inference.pipeline import forward, prepare
from panosamic.inference.result import PredictionResult

if TYPE_CHECKING:
    import torch

    from panosamic.modeling.protocol import SegmentationModel

Precision = Literal["fp32", "bf16"]


def predict(
    model: SegmentationModel,
    image: Any,
    depth: Any = None,
    normals: Any = None,
    *,
    refine: bool = False,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    max_pixels: int | None = None,
) -> PredictionResult:
    """Segment one panorama; see the module docstring for the accepted inputs.

    ``refine``: majority-vote the labels inside SAM's automatic masks (needs a model built
    with ``semantic_only=False``). ``device``: run there (the model is moved); default: where
    the model is. ``precision``: ``"fp32"`` or ``"bf16"`` (autocast). ``depth_threshold``
    overrides ``model.depth_threshold`` for metric depth. ``max_pixels``: refuse larger inputs
    (default :data:`panosamic.inference.inputs.MAX_PIXELS`); huge inputs take the banded path
    (module docstring).
    """
    return predict_batch(
        model,
        [image],
        None if depth is None else [depth],
        None if normals is None else [normals],
        refine=refine,
        device=device,
        precision=precision,
        depth_scale=depth_scale,
        depth_threshold=depth_threshold,
        max_pixels=max_pixels,
    )[0]


def predict_batch(
    model: SegmentationModel,
    images: Sequence[Any],
    depths: Sequence[Any] | None = None,
    normals: Sequence[Any] | None = None,
    *,
    refine: bool = False,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    batch_size: int = 1,
    max_pixels: int | None = None,
) -> list[PredictionResult]:
    """Segment several panoramas (sizes may differ), ``batch_size`` per forward pass.

    ``depths`` / ``normals``: sequences parallel to ``images`` (or None). Same options as
    :func:`predict`.
    """
    if isinstance(images, (*_PathLike, np.ndarray, Image.Image)) or _is_tensor(images):
        raise TypeError("predict_batch takes a sequence of images; use predict() for one image")
    images = list(images)
    n = len(images)
    depths = [None] * n if depths is None else list(depths)
    normals = [None] * n if normals is None else list(normals)
    if len(depths) != n or len(normals) != n:
        raise ValueError(
            f"got {n} images, {len(depths)} depths and {len(normals)} normals; expected equal counts"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    pixel_limit(max_pixels)  # a bad limit is refused before any input is read
    threshold = depth_threshold if depth_threshold is not None else getattr(model, "depth_threshold", None)
    prepared = [
        prepare(model, im, d, nm, depth_scale=depth_scale, depth_threshold=threshold, name=_name_of(im),
                max_pixels=max_pixels)
        for im, d, nm in zip(images, depths, normals)
    ]  # fmt: skip
    results: list[PredictionResult] = []
    for start in range(0, n, batch_size):
        results += forward(
            model, prepared[start : start + batch_size], refine=refine, device=device, precision=precision
        )
    return results


def _name_of(source: Any) -> str | None:
    return Path(source).stem if isinstance(source, _PathLike) else None
