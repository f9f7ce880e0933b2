"""Stanford2D3DS (2D-3D-S) panoramas: 13 classes, 7 areas, 3 cross-validation folds.

Raw layout: ``area_*/pano/{rgb,depth,normal,semantic}/<name>_{rgb,depth,normals,semantic}.png``
with ``<name>`` = ``camera_<id>_<room>_frame_equirectangular_domain``, plus
``assets/semantic_labels.json`` (instance names ``class_instance_roomType_roomNum_area``).

Labels: the semantic PNG encodes an instance index in its colour. A pixel with R != 0 is
unknown (this covers the 0x0D0D0D "missing" marker); otherwise the index is G*256 + B, its
instance name gives the class (text before the first ``_``), and ``<UNK>`` (or any name that is
not one of the 13 classes, or an index past the end of the list) is ignored (-1).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.base import ASSETS_DIR, PanoramaDataset, RawLayout, RawSampleFiles, read_json, read_rgb
from panosamic.data.classes import STANFORD2D3DS, DatasetInfo
from panosamic.data.depth import STANFORD_DEPTH

AREAS: tuple[str, ...] = ("area_1", "area_2", "area_3", "area_4", "area_5a", "area_5b", "area_6")
#: Standard 2D-3D-S folds: fold -> (training areas, test areas).
FOLDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (("area_1", "area_2", "area_3", "area_4", "area_6"), ("area_5a", "area_5b")),
    2: (("area_1", "area_3", "area_5a", "area_5b", "area_6"), ("area_2", "area_4")),
    3: (("area_2", "area_4", "area_5a", "area_5b"), ("area_1", "area_3", "area_6")),
}
SEMANTIC_LABELS_FILE = "semantic_labels.json"
INSTANCES_FILE = "instances.webp"
#: Raw sub-folder and file-name suffix of each modality.
RAW_KINDS: dict[str, tuple[str, str]] = {
    "rgb": ("rgb", "rgb"),
    "depth": ("depth", "depth"),
    "normals": ("normal", "normals"),
    "labels": ("semantic", "semantic"),
}
_INDEX_RANGE = 256 * 256


def instance_class_table(instance_names: list[str], info: DatasetInfo = STANFORD2D3DS) -> np.ndarray:
    """int64 table of 65536 entries: instance index (G*256 + B) -> class index, -1 = unknown."""
    if not isinstance(instance_names, list) or not all(isinstance(n, str) for n in instance_names):
        raise ValueError("semantic_labels.json must be a list of instance-name strings")
    if len(instance_names) > _INDEX_RANGE:
        raise ValueError(f"semantic_labels.json has {len(instance_names)} names, more than {_INDEX_RANGE}")
    lookup = {name: i for i, name in enumerate(info.class_names)}
    table = np.full(_INDEX_RANGE, IGNORE_INDEX, dtype=np.int64)
    table[: len(instance_names)] = [lookup.get(n.split("_")[0], IGNORE_INDEX) for n in instance_names]
    return table


@functools.lru_cache(maxsize=8)
def _load_table(path: str, mtime_ns: int) -> np.ndarray:
    return instance_class_table(read_json(Path(path)))


def load_instance_class_table(assets_dir: str | Path) -> np.ndarray:
    """The lookup table of ``assets_dir/semantic_labels.json`` (cached per file version)."""
    path = Path(assets_dir) / SEMANTIC_LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: Stanford2D3DS labels need the download's assets/{SEMANTIC_LABELS_FILE} "
            "(`panosamic prepare` copies the raw assets/ folder)"
        )
    table = _load_table(str(path.resolve()), path.stat().st_mtime_ns)
    table.setflags(write=False)
    return table


def decode_semantic_rgb(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int64 HxW class indices of an RGB-encoded Stanford2D3DS semantic image."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"expected an HxWx3 RGB semantic image, got shape {rgb.shape}")
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    labels = table[g * 256 + b]
    labels[r != 0] = IGNORE_INDEX
    return labels


class Stanford2D3DSDataset(PanoramaDataset):
    """Processed Stanford2D3DS. ``mask_black=None`` applies the reference's rule: black RGB
    pixels are ignored only for RGB-only runs (``modalities == ("image",)``)."""

    info = STANFORD2D3DS
    areas = AREAS
    folds = FOLDS
    depth_encoding = STANFORD_DEPTH
    cross_validation = True
    label_file = INSTANCES_FILE
    has_normals = True

    def __init__(self, root, *args, **kwargs) -> None:
        self._table = load_instance_class_table(Path(root) / ASSETS_DIR) if Path(root).is_dir() else None
        super().__init__(root, *args, **kwargs)

    @classmethod
    def default_mask_black(cls, modalities: tuple[str, ...]) -> bool:
        return tuple(modalities) == ("image",)

    def decode_labels(self, sample_dir: Path) -> np.ndarray:
        assert self._table is not None
        return decode_semantic_rgb(read_rgb(sample_dir / INSTANCES_FILE), self._table)


class Stanford2D3DSRaw(RawLayout):
    """The raw Stanford2D3DS download (``area_*/pano/...`` and ``assets/``)."""

    name = STANFORD2D3DS.name
    depth = STANFORD_DEPTH
    default_scale = 1.0
    label_file = INSTANCES_FILE
    has_normals = True

    def check(self, raw: Path) -> None:
        path = raw / ASSETS_DIR / SEMANTIC_LABELS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: a Stanford2D3DS download has assets/{SEMANTIC_LABELS_FILE}")

    def find_areas(self, raw: Path) -> list[str]:
        areas = sorted(p.name for p in raw.iterdir() if p.is_dir() and p.name.startswith("area_"))
        if not areas:
            raise FileNotFoundError(f"no area_* folders in {raw}; expected the Stanford2D3DS layout area_*/pano/rgb/...")
        for area in areas:
            rgb_dir = raw / area / "pano" / RAW_KINDS["rgb"][0]
            if not rgb_dir.is_dir():
                raise FileNotFoundError(f"{rgb_dir} is missing: every area needs pano/rgb, pano/depth, ...")
        return areas

    def find_samples(self, raw: Path, area: str) -> list[str]:
        suffix = f"_{RAW_KINDS['rgb'][1]}.png"
        rgb_dir = raw / area / "pano" / RAW_KINDS["rgb"][0]
        return sorted(p.name[: -len(suffix)] for p in rgb_dir.iterdir() if p.name.endswith(suffix))

    def sample_files(self, raw: Path, area: str, sample: str) -> RawSampleFiles:
        pano = raw / area / "pano"
        path = {k: pano / folder / f"{sample}_{suffix}.png" for k, (folder, suffix) in RAW_KINDS.items()}
        return RawSampleFiles(rgb=path["rgb"], depth=path["depth"], labels=path["labels"], normals=path["normals"])

    def convert_labels(self, image: Image.Image, path: Path) -> Image.Image:
        return image.convert("RGB")
