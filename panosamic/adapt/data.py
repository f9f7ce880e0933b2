"""The unlabelled target panoramas: files and folders read as ``predict`` reads them.

RGB panoramas come from files or folders (:func:`panosamic.inference.inputs.collect_inputs`); depth and
normals, when the model uses them, from folders searched by name (``x_rgb.png`` -> ``x_depth.png``, ...,
:func:`~panosamic.inference.inputs.match_aux`). Every panorama is resized to the model's native size
(bilinear with antialiasing; normals nearest), so teacher and student see the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from panosamic.inference.inputs import collect_inputs, load_depth, load_image, load_normals, match_aux

__all__ = ["TargetPanoramas", "collate_target"]


class TargetPanoramas(Dataset):
    """``ds[i]`` is ``(inputs, i)``: each modality as a float32 ``3 x H x W`` tensor (0..255) at ``size``."""

    def __init__(
        self,
        inputs: Sequence[str | os.PathLike] | str | os.PathLike,
        modalities: Sequence[str],
        size: tuple[int, int],
        *,
        depth: str | os.PathLike | None = None,
        normals: str | os.PathLike | None = None,
        depth_scale: float | None = None,
        depth_threshold: float | None = None,
    ) -> None:
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        self.files: list[Path] = collect_inputs(inputs)
        if not self.files:
            raise FileNotFoundError(f"no panoramas found in {[str(p) for p in inputs]}")
        self.modalities = tuple(modalities)
        self.size = (int(size[0]), int(size[1]))
        self.depth_scale, self.depth_threshold = depth_scale, depth_threshold
        self.aux: dict[str, list[Path | None]] = {}
        for kind, folder in (("depth", depth), ("normals", normals)):
            if kind not in self.modalities:
                continue
            if folder is None:
                raise ValueError(f"the model uses {list(self.modalities)}: pass the {kind} folder (--{kind})")
            matched = match_aux(self.files, folder, kind)
            missing = [f.name for f, m in zip(self.files, matched) if m is None]
            if missing:
                raise FileNotFoundError(
                    f"no {kind} file in {folder} for {len(missing)} panorama(s), e.g. {missing[0]} "
                    f"(expected names like {Path(missing[0]).stem}_{kind}.png)"
                )
            self.aux[kind] = matched

    def __len__(self) -> int:
        return len(self.files)

    def _resize(self, t: torch.Tensor, nearest: bool) -> torch.Tensor:
        if tuple(t.shape[-2:]) == self.size:
            return t
        if nearest:
            return F.interpolate(t[None], size=self.size, mode="nearest")[0]
        return F.interpolate(t[None], size=self.size, mode="bilinear", align_corners=False, antialias=True)[0]

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        image = load_image(self.files[index])
        # Black (unscanned) pixels stay exactly black after resizing: they are ignored downstream.
        black = (image.sum(0, keepdim=True) == 0).float()
        out = {"image": self._resize(image, False) * (self._resize(black, True) == 0)}
        if "depth" in self.aux:
            d = load_depth(self.aux["depth"][index], depth_scale=self.depth_scale, depth_threshold=self.depth_threshold)
            out["depth"] = self._resize(d, False)
        if "normals" in self.aux:
            out["normals"] = self._resize(load_normals(self.aux["normals"][index]), True)
        shapes = {k: tuple(v.shape) for k, v in out.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"{self.files[index]}: modalities differ in size after loading: {shapes}")
        return out, index


def collate_target(samples: Sequence[tuple[dict[str, torch.Tensor], int]]) -> tuple[list[dict[str, torch.Tensor]], list[int]]:
    """A batch: the list of input dicts and their dataset indices."""
    return [s[0] for s in samples], [int(s[1]) for s in samples]
