"""SAM's automatic instance masks of the target panoramas, computed once and cached.

The masks come from the frozen SAM parts only (encoder neck, prompt encoder, mask decoder), so they do
not change while the fusion and decoder adapt: they are computed once per panorama with the model's
instance branch (:mod:`panosamic.modeling.instance`), bit-packed, and saved beside the run so that a
resumed run reuses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from panosamic.io import atomic_torch_save, safe_torch_load
from panosamic.progress import Progress

__all__ = ["MaskCache", "compute_sam_masks"]

MASKS_NAME = "sam_masks.pt"


def _pack(masks: list[torch.Tensor]) -> dict[str, Any]:
    if not masks:
        return {"shape": (0, 0, 0), "bits": torch.zeros(0, dtype=torch.uint8)}
    stack = torch.stack([m.bool().cpu() for m in masks]).numpy()
    return {"shape": tuple(stack.shape), "bits": torch.from_numpy(np.packbits(stack.reshape(-1)))}


def _unpack(packed: dict[str, Any]) -> list[torch.Tensor]:
    n, h, w = packed["shape"]
    if n == 0:
        return []
    flat = np.unpackbits(packed["bits"].numpy(), count=n * h * w).astype(bool)
    return list(torch.from_numpy(flat.reshape(n, h, w)))


class MaskCache:
    """Per-panorama lists of ``H x W`` bool masks (largest first), stored bit-packed."""

    def __init__(self, packed: list[dict[str, Any]]):
        self.packed = packed

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        return _unpack(self.packed[index])

    def save(self, path: Path) -> None:
        atomic_torch_save({"masks": self.packed}, path)

    @classmethod
    def load(cls, path: Path, expected: int) -> MaskCache:
        obj = safe_torch_load(path)
        packed = obj.get("masks") if isinstance(obj, dict) else None
        if not isinstance(packed, list) or len(packed) != expected:
            raise ValueError(f"{path} holds masks for {len(packed) if isinstance(packed, list) else '?'} panoramas, "
                             f"the target set has {expected}; delete it to recompute")
        return cls(packed)


@torch.no_grad()
def compute_sam_masks(model: torch.nn.Module, dataset: Dataset, progress: bool = True,
                      silent: bool = False) -> MaskCache:
    """Run the model's instance branch on every target panorama (the model needs ``semantic_only=False``).
    ``progress``: a bar on a terminal (else a line every few seconds); ``silent``: no output (other ranks)."""
    if getattr(model, "semantic_only", True):
        raise ValueError("mask refinement needs SAM's instance branch: load the model with semantic_only=False")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    packed = []
    try:
        with Progress(len(dataset), "SAM masks", "pano", bar=progress, silent=silent) as bar:
            for i in range(len(dataset)):
                inputs, _ = dataset[i]
                out = model([{k: v.to(device) for k, v in inputs.items()}])[0]
                records = sorted(out.get("instance_masks", []), key=lambda r: -int(r.get("area", 0)))
                packed.append(_pack([torch.as_tensor(r["segmentation"]) for r in records]))
                bar.update(1)
    finally:
        model.train(was_training)
    return MaskCache(packed)
