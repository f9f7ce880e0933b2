"""Prediction for people: segment panoramas given as files, PIL images, arrays or tensors.

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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from panosamic.inference import inputs as _inputs
from panosamic.inference.inputs import (
    _check_range,
    _describe,
    _PathLike,
    _to_chw,
    image_array,
    load_depth,
    load_normals,
    pixel_limit,
)
from panosamic.inference.result import PredictionResult, class_info
from panosamic.modeling.instance_semantic_fusion import refine_labels
from panosamic.modeling.panosamic import _NEAREST_MODALITIES
from panosamic.modeling.upsample import banded_labels, banded_resize

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@dataclass
class _Prepared:
    inputs: dict[str, torch.Tensor]
    rgb: np.ndarray
    name: str | None = None
    size: tuple[int, int] | None = None  # (H, W) of the input when it was resized here (banded path)


def _banded_size(model: Any, h: int, w: int) -> tuple[int, int] | None:
    """The model's native (h, w) when an ``h x w`` input takes the banded path, else None."""
    native = getattr(model, "native_size", None)
    if native is None:
        return None
    return (int(native[0]), int(native[1])) if h * w > _inputs.FULL_LOGITS_MAX_PIXELS else None


def _to_uint8(arr: np.ndarray, source: Any) -> np.ndarray:
    """The (H, W, 3) uint8 RGB kept in the result: a decoded file's array itself (read-only; no
    second copy of a huge image), else a copy (never an alias of the caller's array)."""
    if arr.dtype != np.uint8:
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if isinstance(source, _PathLike):
        return np.ascontiguousarray(arr)
    return np.array(arr, order="C")


def _prepare(
    model: Any,
    image: Any,
    depth: Any,
    normals: Any,
    *,
    depth_scale: float | None,
    depth_threshold: float | None,
    name: str | None = None,
    max_pixels: int | None = None,
) -> _Prepared:
    modalities = tuple(model.modalities)
    arr = image_array(image, max_pixels=max_pixels)
    native = _banded_size(model, int(arr.shape[0]), int(arr.shape[1]))
    if native is None:
        rgb = _to_chw(arr, "image", (3, 4))
        _check_range(rgb, "image", image)
        inputs = {"image": rgb}
    else:  # never a full-size float copy of the image: see the module docstring
        inputs = {"image": banded_resize(arr, native)}
    size = (int(arr.shape[0]), int(arr.shape[1]))
    for key, value, loader in (
        ("depth", depth, lambda s: load_depth(s, depth_scale=depth_scale, depth_threshold=depth_threshold,
                                              max_pixels=max_pixels)),
        ("normals", normals, lambda s: load_normals(s, max_pixels=max_pixels)),
    ):
        if key in modalities:
            if value is None:
                flag = "--depth" if key == "depth" else "--normals"
                raise ValueError(
                    f"this model uses {list(modalities)}: pass {key}=... ({flag}) for {_describe(image)}"
                )
            t = loader(value)
            if tuple(t.shape[-2:]) != size:
                raise ValueError(
                    f"{key} is {t.shape[-1]}x{t.shape[-2]} but the image is {size[1]}x{size[0]} (WxH); "
                    "they must have the same size"
                )
            if native is not None:
                mode = "nearest" if key in _NEAREST_MODALITIES else "bilinear"
                t = banded_resize(t.permute(1, 2, 0).numpy(), native, mode=mode)
            inputs[key] = t
        elif value is not None:
            warnings.warn(f"{key} given but the model uses only {list(modalities)}: ignored", stacklevel=3)
    if native is None:
        rgb_u8 = inputs["image"].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        return _Prepared(inputs, rgb_u8, name)
    return _Prepared(inputs, _to_uint8(arr, image), name, size)


def _resolve_device(model: Any, device: str | torch.device | None) -> torch.device:
    current = next(model.parameters()).device
    if device is None:
        return current
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if dev != current:
        model.to(dev)
    return dev


def _run(
    model: Any,
    prepared: Sequence[_Prepared],
    *,
    refine: bool,
    device: str | torch.device | None,
    precision: str,
) -> list[PredictionResult]:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if refine and getattr(model, "semantic_only", True):
        raise ValueError(
            "refine needs the SAM instance branch, but this model is semantic-only: load it with "
            "semantic_only=False"
        )
    if refine and any(p.size is not None for p in prepared):
        big = next(p for p in prepared if p.size is not None)
        raise ValueError(
            f"refine is not available for inputs of more than {_inputs.FULL_LOGITS_MAX_PIXELS:,} pixels "
            f"({big.name or 'an input'} is {big.size[1]}x{big.size[0]}): resize it or predict without refine"
        )
    dev = _resolve_device(model, device)
    names, palette = class_info(model)
    was_training = model.training
    model.eval()
    try:
        # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32)
        with torch.no_grad(), model.inference_options_applied(precision=precision):
            outs = model([{k: v.to(dev) for k, v in p.inputs.items()} for p in prepared])
    finally:
        model.train(was_training)
    results = []
    for p, out in zip(prepared, outs):
        logits = out["sem_preds"].float().cpu()
        if logits.ndim == 4:
            logits = logits[0]
        masks = [
            dict(m, segmentation=torch.as_tensor(m["segmentation"]).cpu())
            for m in out.get("instance_masks", [])
        ]
        if p.size is not None:
            labels_np = banded_labels(logits, p.size).numpy()
        else:
            labels = logits.argmax(dim=0)
            if refine and masks:
                labels = refine_labels(labels, masks)
            labels_np = labels.numpy().astype(np.int64)
        results.append(
            PredictionResult(
                logits=logits,
                labels=labels_np,
                class_names=names,
                palette=palette,
                image=p.rgb,
                instance_masks=masks,
                refined=bool(refine),
                name=p.name,
            )
        )
    return results


def predict(
    model: Any,
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
    model: Any,
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
    if isinstance(images, (*_PathLike, np.ndarray, torch.Tensor, Image.Image)):
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
        _prepare(model, im, d, nm, depth_scale=depth_scale, depth_threshold=threshold, name=_name_of(im),
                 max_pixels=max_pixels)
        for im, d, nm in zip(images, depths, normals)
    ]
    results: list[PredictionResult] = []
    for start in range(0, n, batch_size):
        results += _run(
            model, prepared[start : start + batch_size], refine=refine, device=device, precision=precision
        )
    return results


def _name_of(source: Any) -> str | None:
    return Path(source).stem if isinstance(source, _PathLike) else None
