"""Panorama datasets: class metadata, processed-layout loaders, augmentations, preparation.

``build_dataset(name, root, fold, split, modalities, augment=..., mask_black=...)`` returns a
:class:`PanoramaDataset` whose items are ``(inputs, labels)``: ``inputs`` maps each requested
modality to a float32 3xHxW tensor on the 0-255 scale (the model's input format), ``labels``
is an int64 HxW tensor with -1 for ignored pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from panosamic.lazy import lazy_dir, lazy_getattr

if TYPE_CHECKING:
    from panosamic.data.base import PanoramaDataset

#: Module -> the public names it defines; imported on first use, so that ``panosamic.data.classes``
#: and the command line's flag definitions do not import torch.
_LAZY: dict[str, tuple[str, ...]] = {
    ".base": ("PanoramaDataset", "collate_panoramas"),
    ".classes": ("DATASET_NAMES", "DatasetInfo"),
    ".registry": ("get_dataset_info", "get_entry", "dataset_folds"),
    ".depth": ("DEFAULT_INLIER_RATIO", "INLIER_RATIOS"),
    ".matterport3d": ("Matterport3DDataset",),
    ".stanford2d3ds": ("Stanford2D3DSDataset",),
    ".structured3d": ("Structured3DDataset",),
    ".folder": ("FolderDataset", "prepare_folder"),
    ".transforms": ("AugmentationParams", "PanoramaAugmentation"),
}
_lazy_getattr = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)


def __getattr__(name: str) -> Any:
    if name == "DATASETS":  # built on each use from the registry
        return _datasets()
    return _lazy_getattr(name)


def _datasets() -> dict[str, type[PanoramaDataset]]:
    """Dataset name -> its processed-layout loader (from :mod:`panosamic.data.registry`)."""
    from panosamic.data.registry import REGISTRY, load_object

    return {name: load_object(entry.loader) for name, entry in REGISTRY.items()}


def build_dataset(
    name: str,
    root: str | os.PathLike,
    fold: int = 1,
    split: str = "train",
    modalities: Sequence[str] | str = ("image", "depth"),
    **options: Any,
) -> PanoramaDataset:
    """A processed dataset's fold/split; ``options`` are the loader's other keywords (``augment``,
    ``mask_black``, ``depth_inlier_ratio``, ``allow_missing_areas``: see :class:`PanoramaDataset`).

    ``augment=None``: on for ``split="train"``. ``mask_black=None``: the reference's rule
    (Stanford2D3DS: only for RGB-only runs; Matterport3D, Structured3D: always).
    """
    from panosamic.data.registry import get_entry, load_object

    return load_object(get_entry(name).loader)(root, fold=fold, split=split, modalities=modalities, **options)


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_INLIER_RATIO",
    "INLIER_RATIOS",
    "AugmentationParams",
    "DatasetInfo",
    "FolderDataset",
    "Matterport3DDataset",
    "PanoramaAugmentation",
    "PanoramaDataset",
    "Stanford2D3DSDataset",
    "Structured3DDataset",
    "build_dataset",
    "collate_panoramas",
    "dataset_folds",
    "get_dataset_info",
    "get_entry",
    "prepare_folder",
]
