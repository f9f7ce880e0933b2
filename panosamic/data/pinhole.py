"""Pinhole photos as training panoramas: the prepared pinhole dataset, its projection onto the canvas,
and a weighted mix of training sources.

* :class:`PinholeDataset`: a prepared pinhole folder (:mod:`panosamic.data.pinhole_layout`); items are
  ``(inputs, labels)`` at the photo's own size, with :meth:`~PinholeDataset.intrinsics`.
* :class:`ProjectedPinholeDataset`: each photo projected onto an ``H x 2H`` canvas at a random yaw, pitch,
  roll and field-of-view jitter (:class:`ProjectionSettings`), optionally several photos per canvas at
  evenly spaced yaws; uncovered pixels are black in the input and ignored (-1) in the labels. Items have
  the panoramic loaders' format, so training, validation and adaptation take them unchanged.
* :class:`MixedDataset`: sources drawn by weight (``train --source KIND=PATH@WEIGHT``).

Randomness is a function of (seed, epoch, index) once ``set_epoch`` is called, as for the panoramas.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from panosamic.constants import IGNORE_INDEX
from panosamic.data.base import RGB_FILE
from panosamic.data.folder import FolderDataset
from panosamic.data.folder_layout import read_json_file
from panosamic.data.pinhole_layout import CAMERAS_FILE, PINHOLE_SOURCE, is_pinhole_folder, parse_source
from panosamic.data.transforms import PanoramaAugmentation
from panosamic.geometry import PinholeCamera, pinhole_to_erp
from panosamic.specs import DATASET_NAMES, canonical_modalities

__all__ = [
    "MixedDataset",
    "PinholeDataset",
    "ProjectedPinholeDataset",
    "ProjectionSettings",
    "build_training_sources",
    "canvas_height_of",
]


def _generator(seed: int, epoch: int, index: int, stream: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, index, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(lo: float, hi: float, g: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


# --------------------------------------------------------------------------- the prepared photos
class PinholeDataset(FolderDataset):
    """A prepared pinhole folder's fold/split: ``(inputs, labels)`` at each photo's size (image only,
    no augmentation: :class:`ProjectedPinholeDataset` places and augments them)."""

    reads_pinhole = True

    def __init__(
        self,
        root: str | os.PathLike,
        fold: int = 1,
        split: str = "train",
        modalities=("image",),
        **kwargs: Any,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"pinhole dataset {root} does not exist; make it with `panosamic prepare folder "
                                    f"--pinhole --fov DEG --raw DATA --out {root}` (or `prepare stanford2d3ds-pinhole`)")
        if not is_pinhole_folder(root):
            raise ValueError(
                f'{root} is not a prepared pinhole folder (its dataset.json has no "projection": '
                '"pinhole"); make one with `panosamic prepare folder --pinhole --fov DEG` or '
                "`panosamic prepare stanford2d3ds-pinhole`"
            )
        if canonical_modalities(modalities) != ("image",):
            raise ValueError(
                f"pinhole datasets are image-only; got modalities {modalities!r}, expected image"
            )
        kwargs["augment"] = False
        super().__init__(root, fold, split, ("image",), **kwargs)
        cameras = read_json_file(self.root / CAMERAS_FILE)
        missing = [n for n in self.sample_names if n not in cameras]
        if missing:
            raise FileNotFoundError(
                f"{self.root / CAMERAS_FILE} has no camera for {missing[0]} "
                f"({len(missing)} in all); re-run the preparation"
            )
        self._k = [np.asarray(cameras[n]["K"], dtype=np.float64) for n in self.sample_names]

    def intrinsics(self, index: int) -> np.ndarray:
        """The 3x3 intrinsic matrix of a photo at its prepared size (see :mod:`panosamic.geometry.camera`)."""
        return self._k[index]


# --------------------------------------------------------------------------- projection onto the canvas
@dataclass(frozen=True)
class ProjectionSettings:
    """Where photos land on the canvas. Angles in degrees; ``fov_jitter_deg``: the horizontal field of
    view drawn within ± this of the photo's (the focal length follows); ``photos_per_canvas``: photos at
    yaws 360 / n apart; ``placement``: ``random`` (projected) or ``stretch`` (the photo resized onto the
    whole canvas, a baseline)."""

    canvas_height: int = 128
    yaw_deg: tuple[float, float] = (-180.0, 180.0)
    pitch_deg: tuple[float, float] = (-15.0, 15.0)
    roll_deg: tuple[float, float] = (-5.0, 5.0)
    fov_jitter_deg: float = 0.0
    photos_per_canvas: int = 1
    placement: str = "random"

    def __post_init__(self) -> None:
        if not isinstance(self.canvas_height, int) or self.canvas_height < 2:
            raise ValueError(f"canvas_height must be an integer >= 2, got {self.canvas_height!r}")
        for name, bound in (("yaw_deg", 360.0), ("pitch_deg", 90.0), ("roll_deg", 180.0)):
            lo, hi = (float(v) for v in getattr(self, name))
            if not -bound <= lo <= hi <= bound:
                raise ValueError(
                    f"{name} must be (min, max) with -{bound:g} <= min <= max <= {bound:g}, got {(lo, hi)}"
                )
            object.__setattr__(self, name, (lo, hi))
        if not 0 <= self.fov_jitter_deg < 90:
            raise ValueError(f"fov_jitter_deg must be in [0, 90), got {self.fov_jitter_deg}")
        if not isinstance(self.photos_per_canvas, int) or self.photos_per_canvas < 1:
            raise ValueError(f"photos_per_canvas must be an integer >= 1, got {self.photos_per_canvas!r}")
        if self.placement not in ("random", "stretch"):
            raise ValueError(f"placement must be 'random' or 'stretch', got {self.placement!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, **defaults: Any) -> ProjectionSettings:
        names = {f.name for f in fields(cls)}
        values = {**defaults, **{k: v for k, v in (d or {}).items() if k in names and v is not None}}
        for key in ("yaw_deg", "pitch_deg", "roll_deg"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


class ProjectedPinholeDataset(Dataset):
    """Photos of a :class:`PinholeDataset` placed on an ``H x 2H`` canvas: items ``({"image": 3xHx2H
    float32 0-255}, int64 HxW labels)`` with -1 (ignored) and black where no photo reaches.

    ``augment``: a :class:`PanoramaAugmentation` applied to the canvas afterwards (flip, roll, RGB
    permutation), or None.
    """

    def __init__(
        self,
        photos: PinholeDataset,
        settings: ProjectionSettings | None = None,
        *,
        augment: PanoramaAugmentation | None = None,
        seed: int = 0,
    ) -> None:
        self.photos, self.settings = photos, settings or ProjectionSettings()
        self.augmentation, self.seed = augment, int(seed)
        self.info = photos.info
        self.modalities = ("image",)
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.photos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def class_pixel_counts(self, use_cache: bool = True) -> np.ndarray:
        """Labelled pixels per class of the photos (their proportions are what the canvas sees)."""
        return self.photos.class_pixel_counts(use_cache)

    def _place(
        self, photo: int, yaw: float, g: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.settings
        inputs, labels = self.photos[photo]
        image = inputs["image"]
        _h, w = labels.shape
        if s.placement == "stretch":
            size = (s.canvas_height, 2 * s.canvas_height)
            img = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
            lab = F.interpolate(labels[None, None].double(), size=size, mode="nearest")[0, 0].long()
            return img, lab, torch.ones(size, dtype=torch.bool)
        k = torch.as_tensor(self.photos.intrinsics(photo), dtype=torch.float64).clone()
        pitch, roll = _uniform(*s.pitch_deg, g), _uniform(*s.roll_deg, g)
        jitter = _uniform(-s.fov_jitter_deg, s.fov_jitter_deg, g)
        if s.fov_jitter_deg > 0:
            fov = math.degrees(2 * math.atan((w / 2) / float(k[0, 0])))
            new = min(max(fov + jitter, 1.0), 179.0)
            ratio = math.tan(math.radians(fov) / 2) / math.tan(math.radians(new) / 2)
            k[0, 0] *= ratio
            k[1, 1] *= ratio
        camera = PinholeCamera(intrinsics=k, yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
        img, mask = pinhole_to_erp(image, camera, erp_height=s.canvas_height, nearest=False)
        lab, _ = pinhole_to_erp(labels, camera, erp_height=s.canvas_height, nearest=True, fill=IGNORE_INDEX)
        return img, lab, mask

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} photos")
        index = index % len(self)
        s = self.settings
        g = None if self.epoch is None else _generator(self.seed, self.epoch, index, 1)
        n = 1 if s.placement == "stretch" else s.photos_per_canvas
        others = torch.randint(len(self), (n - 1,), generator=g).tolist() if n > 1 else []
        yaw0 = _uniform(*s.yaw_deg, g)
        height = s.canvas_height
        canvas = torch.zeros(3, height, 2 * height)
        labels = torch.full((height, 2 * height), IGNORE_INDEX, dtype=torch.int64)
        for j, photo in enumerate([index, *others]):
            yaw = (yaw0 + j * 360.0 / n + 180.0) % 360.0 - 180.0
            img, lab, mask = self._place(photo, yaw, g)
            canvas = torch.where(mask, img, canvas)
            labels = torch.where(mask, lab, labels)
        inputs = {"image": canvas}
        if self.augmentation is not None:
            inputs, labels = self.augmentation.augment_item(inputs, labels, index, self.epoch)
        return inputs, labels

    def __repr__(self) -> str:
        return f"ProjectedPinholeDataset({self.photos!r}, {self.settings})"


# --------------------------------------------------------------------------- mixing sources
class MixedDataset(Dataset):
    """Training sources drawn by weight: item ``i`` of an epoch picks a source with probability
    proportional to its weight, then one of its samples, both from (seed, epoch, i). Its length is the
    sources' total unless ``length`` is given. All sources must give samples of one size."""

    def __init__(
        self,
        sources: Sequence[Dataset],
        weights: Sequence[float],
        *,
        seed: int = 0,
        length: int | None = None,
    ) -> None:
        if not sources or len(sources) != len(weights) or any(not w > 0 for w in weights):
            raise ValueError("MixedDataset needs one positive weight per source and at least one source")
        if any(len(s) == 0 for s in sources):  # type: ignore[arg-type]
            raise ValueError("MixedDataset: a source has no samples")
        self.sources, self.seed = list(sources), int(seed)
        self.weights = torch.tensor([float(w) for w in weights], dtype=torch.float64)
        total = sum(len(s) for s in sources)  # type: ignore[arg-type]
        self.length = int(length) if length is not None else total
        self.info = getattr(sources[0], "info", None)
        self.modalities = getattr(sources[0], "modalities", None)
        self.epoch: int | None = None

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for s in self.sources:
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)

    def pick(self, index: int) -> tuple[int, int]:
        """(source, sample) of item ``index`` in the current epoch."""
        g = _generator(self.seed, self.epoch or 0, index, 2)
        source = int(torch.multinomial(self.weights, 1, generator=g))
        n = len(self.sources[source])  # type: ignore[arg-type]
        return source, int(torch.randint(n, (), generator=g))

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        source, sample = self.pick(index % len(self))
        return self.sources[source][sample]

    @property
    def depth_threshold(self) -> float:
        for s in self.sources:
            if hasattr(s, "depth_threshold") and not isinstance(s, PinholeDataset):
                return s.depth_threshold
        raise ValueError("no panoramic source with depth in the mix")

    def class_pixel_counts(self, use_cache: bool = True) -> np.ndarray:
        """Per-class pixel counts, each source's share of the total scaled to its weight."""
        total = None
        weights = (self.weights / self.weights.sum()).tolist()
        for s, w in zip(self.sources, weights):
            counts = np.asarray(s.class_pixel_counts(use_cache), dtype=np.float64)
            share = counts / max(counts.sum(), 1.0) * w
            total = share if total is None else total + share
        return np.rint(np.asarray(total) * 1e9).astype(np.int64)


# --------------------------------------------------------------------------- from the command line
def canvas_height_of(dataset: Any) -> int:
    """The panorama height of a prepared panoramic dataset (from its first sample's header)."""
    with Image.open(Path(dataset.sample_dirs[0]) / RGB_FILE) as im:
        return int(im.size[1])


def build_training_sources(
    specs: Sequence[str],
    *,
    fold: int,
    modalities: Sequence[str],
    num_classes: int,
    canvas_height: int,
    projection: dict[str, Any] | ProjectionSettings | None = None,
    seed: int = 0,
    augment: bool = True,
) -> Dataset:
    """The training set of ``--source KIND=PATH[@WEIGHT]`` specs (the training split of ``fold`` of
    each): pinhole folders projected onto an ``canvas_height x 2 canvas_height`` canvas, panoramic
    datasets as they are, mixed by weight. Refuses sources whose class count or size differ."""
    from panosamic.data import build_dataset

    if isinstance(projection, ProjectionSettings):
        settings = projection
    else:
        settings = ProjectionSettings.from_dict(projection, canvas_height=int(canvas_height))
    datasets, weights = [], []
    for i, spec in enumerate(specs):
        kind, path, weight = parse_source(spec, DATASET_NAMES)
        aug = PanoramaAugmentation(seed=seed) if augment else None
        if kind == PINHOLE_SOURCE:
            ds: Any = ProjectedPinholeDataset(
                PinholeDataset(path, fold=fold, split="train"),
                settings,
                augment=aug,
                seed=seed + 7919 * (i + 1),
            )
        else:
            ds = build_dataset(
                kind,
                path,
                fold=fold,
                split="train",
                modalities=modalities,
                augment=aug if aug is not None else False,
            )
            height = canvas_height_of(ds)
            if height != settings.canvas_height:
                raise ValueError(
                    f"--source {spec}: its panoramas are {height} rows high, the training canvas "
                    f"{settings.canvas_height}; prepare it at the same size (--scale)"
                )
        if ds.info.num_classes != num_classes:
            raise ValueError(
                f"--source {spec}: {ds.info.num_classes} classes, the model is trained for "
                f"{num_classes}; expected the same classes in every source"
            )
        if kind == PINHOLE_SOURCE and tuple(modalities) != ("image",):
            raise ValueError(f"--source {spec}: pinhole photos are image-only; train with --modalities image")
        datasets.append(ds)
        weights.append(weight)
    if len(datasets) == 1:
        return datasets[0]
    return MixedDataset(datasets, weights, seed=seed)
