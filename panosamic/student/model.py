"""``PanoStudent``: a compact CNN for panoramas with the teacher's predict interface."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.constants import NEAREST_MODALITIES, PIXEL_MEAN, PIXEL_STD
from panosamic.modeling.inputs import check_sample
from panosamic.modeling.precision import PrecisionOption
from panosamic.student.config import BACKBONE_STRIDE, StudentConfig, StudentFacts
from panosamic.student.decoder import FPNLiteDecoder
from panosamic.student.padding import circular_resize, circular_upsample, make_circular

__all__ = ["FEATURE_STRIDES", "PanoStudent", "resize_outputs", "stack_inputs"]

#: Backbone levels the decoder reads (their output strides); logits come out at the first.
FEATURE_STRIDES: tuple[int, ...] = (4, 8, 16, BACKBONE_STRIDE)


def _backbone(name: str, in_chans: int, pretrained: bool) -> nn.Module:
    import timm

    try:
        net = timm.create_model(name, features_only=True, pretrained=pretrained, in_chans=in_chans)
    except RuntimeError as e:  # timm: "Unknown model (...)"
        raise ValueError(f"backbone {name!r}: {e}") from e
    reductions = list(net.feature_info.reduction())
    if not all(s in reductions for s in FEATURE_STRIDES):
        raise ValueError(f"backbone {name!r} has feature strides {reductions}; the student needs {FEATURE_STRIDES}")
    indices = [reductions.index(s) for s in FEATURE_STRIDES]
    if indices != list(range(indices[0], indices[0] + len(indices))) or indices[-1] != len(reductions) - 1:
        raise ValueError(f"backbone {name!r}: feature strides {reductions} are not usable")
    net.student_feature_indices = indices  # type: ignore[assignment]
    return make_circular(net)


def stack_inputs(batched_input: Sequence[Mapping[str, torch.Tensor]], modalities: Sequence[str],
                 native_size: tuple[int, int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, list]:
    """Samples (dicts modality -> float (3, H, W), 0-255, any 2:1 size) -> ((B, 3M, h, w), [(H, W), ...]).

    Each modality is resized to ``native_size`` (bilinear; nearest for normals) and the modalities
    are stacked as channels in canonical order.
    """
    if isinstance(batched_input, Mapping):
        batched_input = [batched_input]
    if len(batched_input) == 0:
        raise ValueError("batched_input is empty")
    sizes = [check_sample(i, s, modalities) for i, s in enumerate(batched_input)]
    h, w = native_size
    stacked = []
    for sample in batched_input:
        mods = []
        for m in modalities:
            x = sample[m].to(device=device, dtype=torch.float32)[None]
            if x.shape[-2:] != (h, w):
                mode = "nearest" if m in NEAREST_MODALITIES else "bilinear"
                kw = {} if mode == "nearest" else {"align_corners": False, "antialias": x.shape[-1] > w}
                x = F.interpolate(x, size=(h, w), mode=mode, **kw)
            mods.append(x)
        stacked.append(torch.cat(mods, dim=1))
    return torch.cat(stacked), sizes


def resize_outputs(logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """(B, K, h, w) logits -> the teacher's outputs, each resized (wrap-around) to its input's size."""
    logits = logits.float()
    return [{"sem_preds": circular_resize(logits[i : i + 1], tuple(size))[0], "instance_masks": []}
            for i, size in enumerate(sizes)]


class StudentTensorPath(nn.Module):
    """A student's tensor path (:meth:`PanoStudent.forward_tensor`) as a module's forward: what
    DDP wraps in distillation and what the ONNX export traces."""

    def __init__(self, student: PanoStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.student.forward_tensor(pixels)


class PanoStudent(StudentFacts, PrecisionOption, nn.Module):
    """Backbone (timm, ``features_only``, wrap-around padding) + FPN-lite decoder.

    Built from a :class:`StudentConfig` only. ``pretrained=True`` fetches the backbone's ImageNet
    weights from the Hub (timm adapts the stem to ``3 x modalities`` channels); the default is a
    random initialisation (offline, tests).
    """

    semantic_only = True

    def __init__(self, config: StudentConfig | Mapping[str, Any] | str | os.PathLike | None = None, *,
                 pretrained: bool = False) -> None:
        super().__init__()
        cfg = StudentConfig.coerce(config)
        self.config = cfg
        self.backbone = _backbone(cfg.backbone, cfg.in_channels, pretrained)
        channels = [self.backbone.feature_info.channels()[i] for i in self.backbone.student_feature_indices]
        self.decoder = FPNLiteDecoder(channels, cfg.decoder_channels, cfg.num_classes)
        m = len(cfg.modalities)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN * m).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD * m).view(1, -1, 1, 1), persistent=False)
        self._precision = "fp32"


    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ tensor path (ONNX)
    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3M, h, w) modalities stacked in canonical order, 0-255 -> (B, K, h, w) logits.

        Normalisation is part of the network (so an exported graph takes raw pixel values);
        ``h`` and ``w`` must be multiples of 32 (the backbone's stride).
        """
        x = (x - self.pixel_mean) / self.pixel_std
        feats = self.backbone(x)
        logits = self.decoder([feats[i] for i in self.backbone.student_feature_indices])
        return circular_upsample(logits, FEATURE_STRIDES[0])

    # ------------------------------------------------------------------ the teacher's interface
    def stack_inputs(self, batched_input: Sequence[Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, list]:
        """Check the samples, resize to the native size, stack: ((B, 3M, H, W), input sizes)."""
        return stack_inputs(batched_input, self.modalities, self.native_size, self.device)

    def forward(self, batched_input: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
        """List of dicts modality -> float (3, H, W) on 0-255 (any 2:1 size) -> list of
        ``{"sem_preds": (K, H, W) logits, "instance_masks": []}``."""
        x, sizes = self.stack_inputs(batched_input)
        with self._autocast():
            logits = self.forward_tensor(x)
        return resize_outputs(logits, sizes)

    def extra_repr(self) -> str:
        c = self.config
        return (f"backbone={c.backbone!r}, modalities={c.modalities}, num_classes={c.num_classes}, "
                f"native_size={c.native_size}")
