"""Panorama datasets: class metadata, processed-layout loaders, augmentations, preparation.

``build_dataset(name, root, fold, split, modalities, augment, mask_black)`` returns a
:class:`PanoramaDataset` whose items are ``(inputs, labels)``: ``inputs`` maps each requested
modality to a float32 3xHxW tensor on the 0-255 scale (the model's input format), ``labels``
is an int64 HxW tensor with -1 for ignored pixels.
"""

from __future__ import annotations

import os
from typing import Sequence

from panosamic.data.base import PanoramaDataset, collate_panoramas
from panosamic.data.classes import DATASET_NAMES, DatasetInfo, get_dataset_info
from panosamic.data.depth import DEFAULT_INLIER_RATIO, INLIER_RATIOS
from panosamic.data.matterport3d import Matterport3DDataset
from panosamic.data.stanford2d3ds import Stanford2D3DSDataset
from panosamic.data.structured3d import Structured3DDataset
from panosamic.data.transforms import AugmentationParams, PanoramaAugmentation

DATASETS: dict[str, type[PanoramaDataset]] = {
    "stanford2d3ds": Stanford2D3DSDataset,
    "matterport3d": Matterport3DDataset,
    "structured3d": Structured3DDataset,
}


def build_dataset(
    name: str,
    root: str | os.PathLike,
    fold: int = 1,
    split: str = "train",
    modalities: Sequence[str] | str = ("image", "depth"),
    augment: bool | PanoramaAugmentation | None = None,
    mask_black: bool | None = None,
    **kwargs,
) -> PanoramaDataset:
    """A processed dataset's fold/split (see :class:`PanoramaDataset` for every option).

    ``augment=None``: on for ``split="train"``. ``mask_black=None``: the reference's rule
    (Stanford2D3DS: only for RGB-only runs; Matterport3D, Structured3D: always).
    """
    info = get_dataset_info(name)
    return DATASETS[info.name](
        root, fold=fold, split=split, modalities=modalities, augment=augment, mask_black=mask_black, **kwargs
    )


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_INLIER_RATIO",
    "INLIER_RATIOS",
    "AugmentationParams",
    "DatasetInfo",
    "Matterport3DDataset",
    "PanoramaAugmentation",
    "PanoramaDataset",
    "Stanford2D3DSDataset",
    "Structured3DDataset",
    "build_dataset",
    "collate_panoramas",
    "get_dataset_info",
]
