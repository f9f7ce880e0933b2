"""The common panorama dataset over the processed layout, and the raw-layout interface.

Processed layout (the reference's, readable by both implementations)::

    <root>/assets/...                              copied from the raw download
    <root>/<area>/<sample>/rgb.webp                 lossless RGB
                          depth.png                 16-bit raw depth
                          depth_mask.webp           validity in the last channel (0 / 255)
                          normals.webp              lossless RGB colour-coded normals (if any)
                          instances.webp | semantics.png   labels (dataset-specific encoding)
    <root>/cache_samples_file_names.json            area -> sample folder names
    <root>/cache_area_depth_statistics.json         area -> [histogram counts, bin edges], or [] (no samples)
    <root>/cache_splits_depth_statistics.json       depth thresholds (fold -> list, or a list)
    <root>/cache_class_weights.json                 per-class pixel counts (see below)
"""

from __future__ import annotations

import abc
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from panosamic.constants import IGNORE_INDEX
from panosamic.data.classes import DatasetInfo
from panosamic.data.depth import (
    DEFAULT_INLIER_RATIO,
    INLIER_RATIOS,
    DepthEncoding,
    parse_area_histogram,
    pseudo_disparity,
    sum_histograms,
    thresholds_from_histogram,
)
from panosamic.data.transforms import PanoramaAugmentation
from panosamic.io import atomic_write_text
from panosamic.specs import canonical_modalities

SAMPLES_CACHE = "cache_samples_file_names.json"
AREA_DEPTH_CACHE = "cache_area_depth_statistics.json"
SPLIT_DEPTH_CACHE = "cache_splits_depth_statistics.json"
CLASS_WEIGHTS_CACHE = "cache_class_weights.json"
ASSETS_DIR = "assets"

RGB_FILE = "rgb.webp"
DEPTH_FILE = "depth.png"
DEPTH_MASK_FILE = "depth_mask.webp"
NORMALS_FILE = "normals.webp"
#: The label file of datasets whose labels are a single-channel id map (see :class:`IdMapDataset`).
SEMANTICS_FILE = "semantics.png"

SPLITS: tuple[str, ...] = ("train", "test")


# --------------------------------------------------------------------------- small helpers
def read_json(path: Path) -> Any:
    """Parse a JSON file; a broken file is a ValueError that names it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it or re-run `panosamic prepare`") from None


def write_json_cache(path: Path, content: Any) -> bool:
    """Write a cache file atomically; a read-only dataset folder only warns. Returns success."""
    try:
        atomic_write_text(path, json.dumps(content))
        return True
    except OSError as e:
        warnings.warn(f"could not write the cache {path}: {e}", stacklevel=3)
        return False


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 of an image file (converted to RGB)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_array(path: Path) -> np.ndarray:
    """The pixel array of an image file as stored (no mode conversion)."""
    with Image.open(path) as im:
        return np.asarray(im)


def read_depth(sample_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A processed sample's raw depth and its validity (the mask's last channel, as bool)."""
    depth = read_array(sample_dir / DEPTH_FILE)
    mask = read_array(sample_dir / DEPTH_MASK_FILE)
    return depth, (mask[..., -1] if mask.ndim == 3 else mask).astype(bool)


def _hwc_to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


# --------------------------------------------------------------------------- raw layouts
@dataclass(frozen=True)
class RawSampleFiles:
    """The raw files of one panorama (``normals`` is None for datasets without normals)."""

    rgb: Path
    depth: Path
    labels: Path
    normals: Path | None = None

    def paths(self) -> dict[str, Path]:
        out = {"rgb": self.rgb, "depth": self.depth, "labels": self.labels}
        if self.normals is not None:
            out["normals"] = self.normals
        return out


class RawLayout(abc.ABC):
    """Where a dataset's raw download keeps its panoramas (used by ``panosamic prepare``).

    ``prepare`` writes what ``dataset`` reads: its name, depth encoding, label file and whether it
    has normals are the loader's (:class:`PanoramaDataset`).
    """

    #: The loader of the processed layout.
    dataset: ClassVar[type[PanoramaDataset]]
    #: Scale ``prepare`` uses when none is given (the reference's default for this dataset).
    default_scale: ClassVar[float]

    def check(self, raw: Path) -> None:  # noqa: B027 - a hook whose default does nothing
        """Raise if dataset-wide files (assets) are missing. Default: nothing to check."""

    @abc.abstractmethod
    def find_areas(self, raw: Path) -> list[str]:
        """Sorted area / scene folder names; raise if there is none or one is malformed."""

    @abc.abstractmethod
    def find_samples(self, raw: Path, area: str) -> list[str]:
        """Sorted sample names of one area."""

    @abc.abstractmethod
    def sample_files(self, raw: Path, area: str, sample: str) -> RawSampleFiles:
        """Paths of one sample's raw files (they may not exist)."""

    def convert_labels(self, image: Image.Image, path: Path) -> Image.Image:
        """The label image as it is to be stored (before resizing)."""
        return image

    def open_labels(self, path: Path) -> Image.Image | None:
        """The label image of a label file that is no image (e.g. ToF-360's ``.npy``); None: ``prepare``
        opens ``path`` as an image."""
        return None


# --------------------------------------------------------------------------- the dataset
class PanoramaDataset(Dataset, abc.ABC):
    """A fold/split of a processed panorama dataset.

    ``ds[i]`` is ``(inputs, labels)``: ``inputs`` maps each requested modality (``image``,
    ``depth``, ``normals``) to a float32 3xHxW tensor on the 0-255 scale (depth as
    pseudo-disparity, normals as the dataset's colour coding), ``labels`` is an int64 HxW
    tensor of class indices with :data:`IGNORE_INDEX` (-1) for unknown pixels.

    Parameters: ``fold`` (dataset-specific), ``split`` ("train" or "test"), ``augment``
    (None: on for the training split; True/False; or a :class:`PanoramaAugmentation`),
    ``mask_black`` (None: the reference's rule for the dataset; True/False force it: pixels
    whose RGB is exactly black get label -1), ``depth_inlier_ratio`` (one of
    :data:`INLIER_RATIOS`), ``allow_missing_areas`` (skip, with a warning, areas of the split
    whose folder is absent instead of raising).

    Samples are ordered by area (the dataset's canonical order), then by sorted sample folder
    name within an area (the reference keeps its preparation-time directory order instead).
    An area folder without samples (e.g. a Structured3D scene whose rooms are all listed as
    broken) contributes no samples and no depth statistics, whatever its statistics entry
    (``[]``, absent, or an all-zero histogram).
    """

    info: ClassVar[DatasetInfo]
    #: All areas / scenes, in the dataset's canonical order.
    areas: ClassVar[tuple[str, ...]]
    #: fold -> (training areas, test areas).
    folds: ClassVar[dict[int, tuple[tuple[str, ...], tuple[str, ...]]]]
    depth_encoding: ClassVar[DepthEncoding]
    #: Cross-validated datasets key their caches by fold; the others store plain lists.
    cross_validation: ClassVar[bool]
    #: Name of the processed label file (``instances.webp`` or ``semantics.png``).
    label_file: ClassVar[str]
    has_normals: ClassVar[bool]
    #: Split names a fold has (the folder dataset adds "val").
    splits: ClassVar[tuple[str, ...]] = SPLITS

    def __init__(
        self,
        root: str | os.PathLike,
        fold: int = 1,
        split: str = "train",
        modalities: Sequence[str] | str = ("image", "depth"),
        augment: bool | PanoramaAugmentation | None = None,
        mask_black: bool | None = None,
        depth_inlier_ratio: float = DEFAULT_INLIER_RATIO,
        allow_missing_areas: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.info.name} dataset folder {self.root} does not exist; "
                f"make it with `panosamic prepare {self.info.name} --raw RAW_DIR --out {self.root}`"
            )
        if isinstance(fold, bool) or not isinstance(fold, int) or fold not in self.folds:
            raise ValueError(f"{self.info.name}: fold must be one of {sorted(self.folds)}, got {fold!r}")
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}, got {split!r}")
        if depth_inlier_ratio not in INLIER_RATIOS:
            raise ValueError(f"depth_inlier_ratio must be one of {INLIER_RATIOS}, got {depth_inlier_ratio!r}")
        self.fold = fold
        self.split = split
        self.modalities = canonical_modalities(modalities)
        if "normals" in self.modalities and not self.has_normals:
            raise ValueError(f"{self.info.name} has no normals; choose modalities among ('image', 'depth')")
        self.mask_black = self.default_mask_black(self.modalities) if mask_black is None else bool(mask_black)
        self.depth_inlier_ratio = float(depth_inlier_ratio)
        self.allow_missing_areas = bool(allow_missing_areas)
        if augment is None:
            augment = split == "train"
        if isinstance(augment, PanoramaAugmentation):
            self.augmentation: PanoramaAugmentation | None = augment
        elif isinstance(augment, bool):
            self.augmentation = PanoramaAugmentation() if augment else None
        else:
            raise TypeError(f"augment must be None, a bool or a PanoramaAugmentation, got {type(augment).__name__}")
        self.epoch: int | None = None

        self.split_areas = self.areas_of(fold, split)
        self.sample_dirs = self._list_samples()
        self.sample_names = [f"{p.parent.name}/{p.name}" for p in self.sample_dirs]
        self._depth_threshold: float | None = None
        if "depth" in self.modalities:
            _ = self.depth_threshold  # fail early when the statistics are missing

    # ----------------------------------------------------------------- dataset specifics
    @classmethod
    def default_mask_black(cls, modalities: tuple[str, ...]) -> bool:
        """The reference's rule: Matterport3D and Structured3D always (overridden by Stanford)."""
        return True

    @abc.abstractmethod
    def decode_labels(self, sample_dir: Path) -> np.ndarray:
        """int64 HxW class indices of one processed sample, -1 for unknown."""

    # ----------------------------------------------------------------- splits and samples
    @classmethod
    def areas_of(cls, fold: int, split: str) -> tuple[str, ...]:
        """Areas / scenes of a fold's split."""
        if fold not in cls.folds:
            raise ValueError(f"{cls.info.name}: fold must be one of {sorted(cls.folds)}, got {fold!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        train, test = cls.folds[fold]
        return train if split == "train" else test

    def _present_areas(self, areas: Sequence[str]) -> list[str]:
        present = [a for a in areas if (self.root / a).is_dir()]
        present_set = set(present)
        missing = [a for a in areas if a not in present_set]
        if missing and not self.allow_missing_areas:
            shown = ", ".join(missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8 else "")
            raise FileNotFoundError(
                f"{self.info.name} fold {self.fold} {self.split}: area folder(s) missing under {self.root}: "
                f"{shown}. Prepare them with `panosamic prepare {self.info.name} --raw RAW_DIR --out {self.root}`"
                " (in Python, build_dataset(..., allow_missing_areas=True) uses the areas that are there)"
            )
        if missing:
            warnings.warn(f"{self.info.name}: {len(missing)} area(s) of the split are missing and skipped", stacklevel=3)
        return present

    def _samples_cache(self) -> dict[str, Any] | None:
        """The area -> sample names cache, or None when there is none."""
        cache_path = self.root / SAMPLES_CACHE
        cache = read_json(cache_path) if cache_path.is_file() else None
        if cache is not None and not isinstance(cache, dict):
            raise ValueError(f"{cache_path} must map area names to lists of sample names")
        return cache

    def _area_sample_names(self, area: str, cache: dict[str, Any] | None) -> list[str]:
        """Sample folder names of an area, sorted by name (from the cache when it lists the area)."""
        if cache is not None and area in cache:
            return sorted(set(cache[area]))
        return sorted(p.name for p in (self.root / area).iterdir() if p.is_dir())

    def _list_samples(self) -> list[Path]:
        cache_path = self.root / SAMPLES_CACHE
        cache = self._samples_cache()
        dirs: list[Path] = []
        for area in self._present_areas(self.split_areas):
            dirs.extend(self.root / area / n for n in self._area_sample_names(area, cache))
        if not dirs:
            raise ValueError(
                f"{self.info.name} fold {self.fold} {self.split} has no samples under {self.root} "
                f"(areas {list(self.split_areas)[:8]}); check the path or run `panosamic prepare`"
            )
        absent = [d for d in dirs if not d.is_dir()]
        if absent:
            raise FileNotFoundError(
                f"{len(absent)} sample folder(s) listed in {cache_path.name} do not exist, e.g. {absent[0]}; "
                "re-run `panosamic prepare` or delete the stale cache"
            )
        return dirs

    def __len__(self) -> int:
        return len(self.sample_dirs)

    # ----------------------------------------------------------------- depth thresholds
    @property
    def depth_threshold(self) -> float:
        """Metric depth at the ``depth_inlier_ratio`` of the fold's training split."""
        if self._depth_threshold is None:
            thresholds = self.depth_thresholds()
            self._depth_threshold = thresholds[INLIER_RATIOS.index(self.depth_inlier_ratio)]
        return self._depth_threshold

    def depth_thresholds(self) -> list[float]:
        """Thresholds for all :data:`INLIER_RATIOS` of this fold (computed from the per-area
        histograms when they exist, and cached in ``cache_splits_depth_statistics.json``;
        otherwise read from that cache)."""
        area_path = self.root / AREA_DEPTH_CACHE
        split_path = self.root / SPLIT_DEPTH_CACHE
        split_cache = read_json(split_path) if split_path.is_file() else None
        if area_path.is_file():
            thresholds = self._thresholds_from_area_histograms(read_json(area_path), area_path)
            if self._cached_thresholds(split_cache) != thresholds:
                if self.cross_validation:
                    content = dict(split_cache) if isinstance(split_cache, dict) else {}
                    content[str(self.fold)] = thresholds
                else:
                    content = thresholds
                write_json_cache(split_path, content)
            return thresholds
        cached = self._cached_thresholds(split_cache)
        if cached is not None:
            return cached
        raise FileNotFoundError(
            f"no depth statistics for {self.info.name} fold {self.fold} in {self.root}: "
            f"{AREA_DEPTH_CACHE} is missing. It is written by "
            f"`panosamic prepare {self.info.name} --raw RAW_DIR --out {self.root}` (re-run it; done samples are skipped)"
        )

    def _cached_thresholds(self, cache: Any) -> list[float] | None:
        if self.cross_validation:
            value = cache.get(str(self.fold)) if isinstance(cache, dict) else None
        else:
            value = cache if isinstance(cache, list) else None
        if isinstance(value, list) and len(value) == len(INLIER_RATIOS):
            return [float(v) for v in value]
        return None

    def _thresholds_from_area_histograms(self, stats: Any, path: Path) -> list[float]:
        if not isinstance(stats, dict):
            raise ValueError(f"{path} must map area names to [counts, edges]")
        histograms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        missing: list[str] = []
        cache: dict[str, Any] | None = None
        for area in self.areas_of(self.fold, "train"):
            if not (self.root / area).is_dir():
                missing.append(area)
                continue
            histogram = parse_area_histogram(stats[area], area, path) if area in stats else None
            if histogram is not None:
                histograms[area] = histogram
                continue
            cache = self._samples_cache() if cache is None else cache
            if not self._area_sample_names(area, cache):
                continue  # an area without samples needs no histogram ([] or no entry)
            if area in stats:
                raise ValueError(
                    f"{path}: entry {area!r} is [] but {self.root / area} has samples; "
                    f"re-run `panosamic prepare {self.info.name} ...`"
                )
            missing.append(area)
        if missing and not self.allow_missing_areas:
            raise FileNotFoundError(
                f"{path.name} has no depth histogram for training area(s) {missing[:8]} of fold {self.fold} "
                f"(or their folders are missing); re-run `panosamic prepare {self.info.name} ...`"
            )
        if not histograms:
            raise FileNotFoundError(f"{path.name} has no depth histogram for any training area of fold {self.fold}")
        return thresholds_from_histogram(*sum_histograms(histograms, path))

    # ----------------------------------------------------------------- loading
    def set_epoch(self, epoch: int) -> None:
        """Make augmentations a function of (seed, epoch, index): call once per epoch.

        Until it is called, augmentations draw from torch's global generator (like the reference).
        """
        self.epoch = int(epoch)

    def load_labels(self, index: int, image: np.ndarray | None = None) -> np.ndarray:
        """int64 HxW labels of a sample, ``mask_black`` applied (no augmentation)."""
        sample_dir = self.sample_dirs[index]
        labels = np.asarray(self.decode_labels(sample_dir), dtype=np.int64)
        if self.mask_black:
            if image is None:
                image = read_rgb(sample_dir / RGB_FILE)
            if image.shape[:2] != labels.shape:
                raise RuntimeError(f"{sample_dir}: image {image.shape[:2]} and labels {labels.shape} differ in size")
            labels = labels.copy()
            labels[image.astype(np.int64).sum(-1) == 0] = IGNORE_INDEX
        return labels

    def load_inputs(self, index: int, image: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """The requested modalities of a sample (no augmentation)."""
        sample_dir = self.sample_dirs[index]
        if image is None:
            image = read_rgb(sample_dir / RGB_FILE)
        inputs = {"image": _hwc_to_chw(image)}
        if "depth" in self.modalities:
            raw, valid = read_depth(sample_dir)
            inputs["depth"] = torch.from_numpy(
                pseudo_disparity(raw, valid, self.depth_threshold, self.depth_encoding)
            )
        if "normals" in self.modalities:
            inputs["normals"] = _hwc_to_chw(read_rgb(sample_dir / NORMALS_FILE))
        return inputs

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        image = read_rgb(self.sample_dirs[index] / RGB_FILE)
        inputs = self.load_inputs(index, image)
        labels = torch.from_numpy(self.load_labels(index, image))
        shapes = {k: tuple(v.shape[-2:]) for k, v in inputs.items()}
        if len(set(shapes.values()) | {tuple(labels.shape)}) != 1:
            raise RuntimeError(f"{self.sample_dirs[index]}: sizes differ between files: {shapes}, labels {tuple(labels.shape)}")
        if self.augmentation is not None:
            inputs, labels = self.augmentation.augment_item(inputs, labels, index, self.epoch)
        return inputs, labels

    # ----------------------------------------------------------------- class statistics
    def class_weights_key(self) -> str:
        """Our key in ``cache_class_weights.json`` (the reference keys by fold only)."""
        return f"fold={self.fold}/split={self.split}/mask_black={int(self.mask_black)}"

    def class_pixel_counts(self, use_cache: bool = True) -> np.ndarray:
        """int64 (num_classes,) labelled pixels per class over this split (``mask_black`` applied).

        Cached in ``cache_class_weights.json`` under :meth:`class_weights_key`, with the number
        of samples (a different count invalidates the entry).
        """
        path = self.root / CLASS_WEIGHTS_CACHE
        key = self.class_weights_key()
        cache = read_json(path) if use_cache and path.is_file() else None
        if isinstance(cache, dict) and isinstance(cache.get(key), dict):
            entry = cache[key]
            counts = entry.get("counts")
            if entry.get("num_samples") == len(self) and isinstance(counts, list) and len(counts) == self.info.num_classes:
                return np.asarray(counts, dtype=np.int64)
        counts = np.zeros(self.info.num_classes, dtype=np.int64)
        for i in range(len(self)):
            labels = self.load_labels(i)
            valid = labels[labels != IGNORE_INDEX]
            if valid.size and (valid.min() < 0 or valid.max() >= self.info.num_classes):
                raise RuntimeError(f"{self.sample_dirs[i]}: label outside 0..{self.info.num_classes - 1}")
            counts += np.bincount(valid, minlength=self.info.num_classes)
        if use_cache:
            content = dict(cache) if isinstance(cache, dict) else {}
            content[key] = {"num_samples": len(self), "counts": counts.tolist()}
            write_json_cache(path, content)
        return counts

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, fold={self.fold}, split={self.split!r}, "
            f"modalities={self.modalities}, samples={len(self)}, mask_black={self.mask_black}, "
            f"augment={self.augmentation is not None})"
        )


class IdMapDataset(PanoramaDataset):
    """A dataset whose processed labels are a single-channel id map (``semantics.png``), turned
    into class indices by :meth:`decode_ids`."""

    label_file = SEMANTICS_FILE

    @staticmethod
    @abc.abstractmethod
    def decode_ids(raw: np.ndarray, source: str) -> np.ndarray:
        """int64 class indices (-1 for unknown) of a stored id map; ``source`` names it in errors."""

    def decode_labels(self, sample_dir: Path) -> np.ndarray:
        path = sample_dir / self.label_file
        return self.decode_ids(read_array(path), str(path))


def collate_panoramas(
    samples: Sequence[tuple[dict[str, torch.Tensor], torch.Tensor]],
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Batch ``(inputs, labels)`` pairs: a list of input dicts and a BxHxW label tensor."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    inputs = [s[0] for s in samples]
    labels = [s[1] for s in samples]
    shapes = {tuple(t.shape) for t in labels}
    if len(shapes) != 1:
        raise ValueError(f"labels of one batch must have one size, got {sorted(shapes)}")
    return inputs, torch.stack(labels)
