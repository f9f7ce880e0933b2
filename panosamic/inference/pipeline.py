"""The one prediction core: decode -> batch -> forward -> post-process -> write.

:func:`panosamic.inference.predict` (one panorama), ``panosamic predict`` of files and folders and
the sharded, resumable path (:mod:`panosamic.inference.scale`, under torchrun) are drivers of these
four steps; they differ only in where the inputs come from and where the rows of the summary go.

* :func:`prepare` decodes one panorama (and its depth / normals) into the model's inputs; huge inputs
  are resized to the model's native size here in row bands, and ``to_native=True`` (the DataLoader
  workers of the scaled path) resizes every input so that the model skips its own resize.
* :func:`forward` runs a batch and post-processes it into :class:`PredictionResult` s at each input's
  size (labels, optionally refined by SAM's masks).
* :func:`forward_each` runs a batch and, when it fails, its panoramas one by one, so one bad
  panorama is skipped alone.
* :func:`PredictionResult.write <panosamic.inference.result.PredictionResult.write>` writes a
  panorama's files all or none.

A model needs only what :class:`panosamic.model.SegmentationModel`-like objects expose: ``modalities``,
``num_classes`` (+ optional ``class_names`` / ``palette`` / ``dataset``), ``native_size`` (optional),
``inference_options_applied(precision=...)`` and ``model(list of {modality: (3, H, W)}) ->
[{"sem_preds": (K, h, w) logits}, ...]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from panosamic.constants import NEAREST_MODALITIES, PRECISIONS
from panosamic.inference import inputs as _inputs
from panosamic.inference.inputs import (
    _check_range,
    _describe,
    _PathLike,
    depth_array,
    image_array,
    normals_array,
)
from panosamic.inference.result import PredictionResult, class_info

if TYPE_CHECKING:
    import torch

    from panosamic.modeling.protocol import SegmentationModel

#: Errors of one panorama that skip it (the other panoramas are still predicted).
PANORAMA_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, RuntimeError, MemoryError)

K = TypeVar("K")


def uses_numpy(model: Any) -> bool:
    """Whether ``model`` takes NumPy arrays (an ONNX student): then nothing on its path imports torch."""
    return bool(getattr(model, "accepts_numpy", False))


@dataclass
class Prepared:
    """One decoded panorama: the model's ``inputs`` (modality -> float32 (3, h, w), 0..255), the RGB
    kept for the overlay (uint8 (H, W, 3), or None), its output ``name`` and, when the inputs were
    resized here, the input's ``size`` (H, W) to which the outputs go back."""

    inputs: dict[str, Any]  # torch tensors, or NumPy arrays for a model that takes them
    rgb: np.ndarray | None
    name: str | None = None
    size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)


def native_size_of(model: Any) -> tuple[int, int] | None:
    native = getattr(model, "native_size", None)
    return None if native is None else (int(native[0]), int(native[1]))


def resize_inputs(inputs: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Resize (3, H, W) inputs to ``size`` exactly as the model does (so it skips its own resize)."""
    import torch.nn.functional as F

    h, w = size
    out = {}
    for m, x in inputs.items():
        if tuple(x.shape[-2:]) != (h, w):
            mode = "nearest" if m in NEAREST_MODALITIES else "bilinear"
            kw = {} if mode == "nearest" else {"align_corners": False, "antialias": x.shape[-1] > w}
            x = F.interpolate(x[None], size=(h, w), mode=mode, **kw)[0]
        out[m] = x.contiguous()
    return out


def _to_uint8(arr: np.ndarray, source: Any) -> np.ndarray:
    """The (H, W, 3) uint8 RGB kept in the result: a decoded file's array itself (read-only; no
    second copy of a huge image), else a copy (never an alias of the caller's array)."""
    if arr.dtype != np.uint8:
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if isinstance(source, _PathLike):
        return np.ascontiguousarray(arr)
    return np.array(arr, order="C")


def prepare(
    model: SegmentationModel,
    image: Any,
    depth: Any = None,
    normals: Any = None,
    *,
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    name: str | None = None,
    max_pixels: int | None = None,
    to_native: bool = False,
    keep_rgb: bool = True,
    notes: list[str] | None = None,
) -> Prepared:
    """Decode one panorama for ``model`` (see :mod:`panosamic.inference.inputs` for the accepted
    sources); inputs above ``FULL_LOGITS_MAX_PIXELS`` are resized to the native size in row bands,
    and every input when ``to_native`` (or when its width is off 2:1 by a pixel). Remarks about the
    input (greyscale converted, ...) go to ``notes`` (default: Python warnings) and ``Prepared.notes``."""
    modalities = tuple(model.modalities)
    own: list[str] = []
    arr = image_array(image, max_pixels=max_pixels, notes=own)
    size = (int(arr.shape[0]), int(arr.shape[1]))
    if size[1] != 2 * size[0]:
        to_native = True
        own.append(f"image {_describe(image)} is {size[1]}x{size[0]}, within {_inputs.SIZE_TOLERANCE_PX} px of 2:1: "
                   "taken as an equirectangular panorama (resized for the model; outputs at its own size)")
    for message in own:
        _inputs.note(message, notes)
    native = native_size_of(model)
    numpy_model = uses_numpy(model)
    banded = not numpy_model and native is not None and size[0] * size[1] > _inputs.FULL_LOGITS_MAX_PIXELS
    if banded:  # never a full-size float copy of the image
        from panosamic.modeling.upsample import banded_resize

        inputs: dict[str, Any] = {"image": banded_resize(arr, native)}
    else:
        rgb = np.ascontiguousarray(np.asarray(arr, dtype=np.float32).transpose(2, 0, 1))
        _check_range(rgb, "image", image)
        inputs = {"image": rgb}
    for key, value in (("depth", depth), ("normals", normals)):
        if key not in modalities:
            if value is not None:
                warnings.warn(f"{key} given but the model uses only {list(modalities)}: ignored", stacklevel=3)
            continue
        if value is None:
            flag = "--depth" if key == "depth" else "--normals"
            raise ValueError(f"this model uses {list(modalities)}: pass {key}=... ({flag}) for {_describe(image)}")
        if key == "depth":
            t = depth_array(value, depth_scale=depth_scale, depth_threshold=depth_threshold, max_pixels=max_pixels)
        else:
            t = normals_array(value, max_pixels=max_pixels)
        if tuple(t.shape[-2:]) != size:
            raise ValueError(
                f"{key} {_describe(value)} is {t.shape[-1]}x{t.shape[-2]} but the image is {size[1]}x{size[0]} "
                "(WxH); they must have the same size"
            )
        if banded:
            mode = "nearest" if key in NEAREST_MODALITIES else "bilinear"
            t = banded_resize(np.ascontiguousarray(t.transpose(1, 2, 0)), native, mode=mode)
        inputs[key] = t
    rgb_u8 = None
    if keep_rgb:
        rgb_u8 = _to_uint8(arr, image) if banded else np.clip(np.round(inputs["image"]), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        rgb_u8 = np.ascontiguousarray(rgb_u8)
    if numpy_model:  # the model resizes to its size itself; only an input 1 px off 2:1 is resized here
        if size[1] == 2 * size[0]:
            return Prepared(inputs, rgb_u8, name, None, own)
        from panosamic.student.numpy_resize import resize

        target = (size[0], 2 * size[0])
        inputs = {m: resize(x, target, "nearest" if m in NEAREST_MODALITIES else "bilinear") for m, x in inputs.items()}
        return Prepared(inputs, rgb_u8, name, size, own)
    import torch

    inputs = {m: x if isinstance(x, torch.Tensor) else torch.from_numpy(x) for m, x in inputs.items()}
    if to_native and not banded:
        target = native or (size[0], 2 * size[0])
        inputs = resize_inputs(inputs, target)
        return Prepared(inputs, rgb_u8, name, size if size != target else None, own)
    return Prepared(inputs, rgb_u8, name, size if banded else None, own)


def place_model(model: Any, device: str | torch.device | None) -> torch.device:
    """Where ``model`` runs: ``device`` resolved (:func:`panosamic.distributed.resolve_device`) and the
    model moved there, or (``None``) where its parameters already are."""
    if uses_numpy(model):  # onnxruntime: its providers, not a torch device
        if device is not None and str(device).split(":")[0] not in ("cpu", "auto"):
            raise ValueError(f"--device {device}: an ONNX student runs on the CPU through onnxruntime")
        return "cpu"  # type: ignore[return-value]
    from panosamic.distributed import resolve_device

    current = next(model.parameters()).device
    if device is None:
        return current
    dev = resolve_device(device)
    if dev != current:
        model.to(dev)
    return dev


def _check_run(model: Any, prepared: Sequence[Prepared], refine: bool, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if refine and getattr(model, "semantic_only", True):
        raise ValueError(
            "refine needs the SAM instance branch, but this model is semantic-only: load it with semantic_only=False"
        )
    resized = next((p for p in prepared if p.size is not None), None)
    if refine and resized is not None:
        big = resized.size[0] * resized.size[1] > _inputs.FULL_LOGITS_MAX_PIXELS
        why = f"of more than {_inputs.FULL_LOGITS_MAX_PIXELS:,} pixels" if big else "that are not exactly 2:1"
        raise ValueError(
            f"refine is not available for inputs {why} ({resized.name or 'an input'} is "
            f"{resized.size[1]}x{resized.size[0]}): resize it or predict without refine"
        )


def forward(
    model: SegmentationModel,
    prepared: Sequence[Prepared],
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    refine: bool = False,
) -> list[PredictionResult]:
    """One batched forward pass, post-processed into one :class:`PredictionResult` per input:
    logits and labels at the input's size (logits at the native size above ``FULL_LOGITS_MAX_PIXELS``)."""
    _check_run(model, prepared, refine, precision)
    dev = place_model(model, device)
    names, palette = class_info(model)
    if uses_numpy(model):
        return [_numpy_result(p, out, names, palette) for p, out in zip(prepared, model([p.inputs for p in prepared]))]
    import torch
    import torch.nn.functional as F

    from panosamic.modeling.refinement import refine_labels
    from panosamic.modeling.upsample import banded_labels

    was_training = model.training
    model.eval()
    try:
        # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32)
        with torch.no_grad(), model.inference_options_applied(precision=precision):
            outs = model([{k: v.to(dev, non_blocking=True) for k, v in p.inputs.items()} for p in prepared])
    finally:
        model.train(was_training)
    results = []
    for p, out in zip(prepared, outs):
        logits = out["sem_preds"].float()
        logits = logits[0] if logits.ndim == 4 else logits
        masks = [dict(m, segmentation=torch.as_tensor(m["segmentation"]).cpu()) for m in out.get("instance_masks", [])]
        if p.size is not None and p.size[0] * p.size[1] > _inputs.FULL_LOGITS_MAX_PIXELS:
            logits = logits.cpu()
            labels_np = banded_labels(logits, p.size).numpy()
        else:
            if p.size is not None and tuple(logits.shape[-2:]) != p.size:  # back to the input's size, as the model does
                logits = F.interpolate(logits[None], size=p.size, mode="bilinear", align_corners=False)[0]
            labels = logits.argmax(dim=0).cpu()
            logits = logits.cpu()
            if refine and masks:
                labels = refine_labels(labels, masks)
            labels_np = labels.numpy().astype(np.int64)
        image = p.rgb if p.rgb is not None else np.zeros((0, 0, 3), np.uint8)
        results.append(PredictionResult(logits=logits, labels=labels_np, class_names=names, palette=palette,
                                        image=image, instance_masks=masks, refined=bool(refine), name=p.name))  # fmt: skip
    return results


def _numpy_result(p: Prepared, out: dict[str, Any], names: tuple[str, ...], palette: np.ndarray) -> PredictionResult:
    """Post-processing of a NumPy model's output (the same steps as the torch path's, in NumPy)."""
    logits = np.asarray(out["sem_preds"], dtype=np.float32)
    logits = logits[0] if logits.ndim == 4 else logits
    if p.size is not None and tuple(logits.shape[-2:]) != p.size:
        from panosamic.student.numpy_resize import resize

        logits = resize(logits, p.size)
    image = p.rgb if p.rgb is not None else np.zeros((0, 0, 3), np.uint8)
    return PredictionResult(logits=logits, labels=logits.argmax(axis=0).astype(np.int64), class_names=names,
                            palette=palette, image=image, name=p.name)  # fmt: skip


def forward_each(
    model: SegmentationModel,
    batch: Sequence[tuple[K, Prepared]],
    fail: Callable[[K, BaseException], None],
    *,
    run: Callable[..., list[PredictionResult]] = forward,
    **options: Any,
) -> list[tuple[K, Prepared, PredictionResult]]:
    """:func:`forward` of a batch of ``(key, prepared)``; when it fails, its panoramas one by one, so
    that a failing panorama is reported (``fail(key, error)``) and skipped alone."""
    if not batch:
        return []
    try:
        return [(k, p, r) for (k, p), r in zip(batch, run(model, [p for _, p in batch], **options))]
    except PANORAMA_ERRORS as e:
        if len(batch) == 1:
            fail(batch[0][0], e)
            return []
    done = []
    for key, prep in batch:
        try:
            done.append((key, prep, run(model, [prep], **options)[0]))
        except PANORAMA_ERRORS as e:
            fail(key, e)
    return done


__all__ = [
    "PANORAMA_ERRORS",
    "PRECISIONS",
    "Prepared",
    "forward",
    "forward_each",
    "place_model",
    "prepare",
    "resize_inputs",
    "uses_numpy",
]
