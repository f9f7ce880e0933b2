"""What a student learns from: panoramas (unlabelled folders and/or prepared datasets) + cached teacher outputs.

A *source* lists panoramas and can load one (inputs, labels or None) and the digests of its files
(the cache key). :class:`DistillDataset` joins the sources, reads each panorama's teacher outputs
from the :class:`~panosamic.distill.cache.TeacherCache`, applies the training augmentation (flip,
roll, RGB permutation: the same flip and roll for inputs, teacher logits, labels and boundaries)
and resizes everything to the student's native size, so a batch is a plain tensor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from panosamic.constants import IGNORE_INDEX
from panosamic.distill.cache import TeacherCache, file_digest

__all__ = ["DistillDataset", "FolderSource", "PreparedSource", "collate_distill"]


class FolderSource:
    """Unlabelled RGB panoramas: files and folders (jpg/png/webp) of any 2:1 size."""

    modalities = ("image",)

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        from panosamic.inference.inputs import collect_inputs

        self.files = collect_inputs(paths)
        if not self.files:
            raise ValueError(f"no panorama images found in {[str(p) for p in paths]}")

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return str(self.files[index])

    def digests(self, index: int) -> dict[str, str]:
        return {"image": file_digest(self.files[index])}

    def load(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        from panosamic.inference.inputs import load_image

        return {"image": load_image(self.files[index])}, None


class PreparedSource:
    """A split of a prepared dataset; ``use_labels=False`` treats it as unlabelled."""

    _FILES: ClassVar[dict[str, tuple[str, ...]]] = {"image": ("rgb.webp",), "depth": ("depth.png", "depth_mask.webp"), "normals": ("normals.webp",)}

    def __init__(self, dataset: str, root: str | os.PathLike, *, fold: int, split: str,
                 modalities: Sequence[str], use_labels: bool = True) -> None:
        from panosamic.data import build_dataset

        self.ds = build_dataset(dataset, root, fold=fold, split=split, modalities=tuple(modalities), augment=False)
        self.modalities = self.ds.modalities
        self.use_labels = use_labels
        if len(self.ds) == 0:
            raise ValueError(f"{dataset} fold {fold} has no {split} samples under {root}")

    def __len__(self) -> int:
        return len(self.ds)

    def name(self, index: int) -> str:
        return self.ds.sample_names[index]

    def digests(self, index: int) -> dict[str, str]:
        d = self.ds.sample_dirs[index]
        out = {f"{m}/{f}": file_digest(Path(d) / f) for m in self.modalities for f in self._FILES[m]}
        if "depth" in self.modalities:
            out["depth_threshold"] = repr(float(self.ds.depth_threshold))
        return out

    def load(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        inputs, labels = self.ds[index]
        return inputs, (labels if self.use_labels else None)


class DistillDataset(Dataset):
    """Items: (pixels (3M, h, w) 0-255, teacher logits (K, h, w), labels (h, w), boundaries (h, w)) at native size."""

    def __init__(self, sources: Sequence[Any], cache: TeacherCache, *, modalities: Sequence[str],
                 native_size: tuple[int, int], augmentation: Any = None) -> None:
        self.sources = list(sources)
        self.index = [(s, i) for s in self.sources for i in range(len(s))]
        self.cache = cache
        self.modalities = tuple(modalities)
        self.native_size = tuple(native_size)
        self.augmentation = augmentation
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int):
        from panosamic.student.model import stack_inputs

        source, j = self.index[i]
        inputs, labels = source.load(j)
        cached = self.cache.get(source.digests(j))
        if cached is None:
            raise RuntimeError(f"no teacher output cached for {source.name(j)}: label the panoramas first")
        h, w = inputs["image"].shape[-2:]
        if tuple(cached.logits.shape[-2:]) != (h, w):
            raise RuntimeError(f"cached teacher output for {source.name(j)} is {tuple(cached.logits.shape[-2:])}, "
                               f"the panorama {(h, w)}")
        labels = torch.full((h, w), IGNORE_INDEX, dtype=torch.int64) if labels is None else labels
        bounds = torch.zeros((h, w), dtype=torch.bool) if cached.boundaries is None else cached.boundaries
        teacher = cached.logits
        if self.augmentation is not None:
            aug = self.augmentation
            params = aug.sample(int(w), aug.generator_for(i, self.epoch))
            inputs, labels = aug.apply(inputs, labels, params)
            _, teacher = aug.apply({}, teacher, params)
            _, bounds = aug.apply({}, bounds, params)
        pixels, _ = stack_inputs([{m: inputs[m] for m in self.modalities}], self.modalities, self.native_size)
        if (h, w) != self.native_size:
            teacher = F.interpolate(teacher[None], size=self.native_size, mode="bilinear", align_corners=False)[0]
            labels = F.interpolate(labels[None, None].float(), size=self.native_size, mode="nearest")[0, 0].long()
            bounds = F.interpolate(bounds[None, None].float(), size=self.native_size, mode="nearest")[0, 0].bool()
        return pixels[0], teacher, labels, bounds


def collate_distill(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack(parts) for parts in zip(*items))
