"""Stanford2D3DS (2D-3D-S) panoramas: 13 classes, 7 areas, 3 cross-validation folds.

Raw layout and encodings: :mod:`panosamic.data.stanford_codec`. Labels: ``<UNK>`` (or any instance
name that is not one of the 13 classes, or an index past the end of the list) is ignored (-1).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.data.base import ASSETS_DIR, PanoramaDataset, RawLayout, RawSampleFiles, read_json, read_rgb
from panosamic.data.classes import STANFORD2D3DS
from panosamic.data.depth import STANFORD_DEPTH
from panosamic.data.stanford_codec import (
    AREAS,
    RAW_KINDS,
    SEMANTIC_LABELS_FILE,
    decode_semantic_rgb,
    instance_class_table,
)

#: Standard 2D-3D-S folds: fold -> (training areas, test areas).
FOLDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (("area_1", "area_2", "area_3", "area_4", "area_6"), ("area_5a", "area_5b")),
    2: (("area_1", "area_3", "area_5a", "area_5b", "area_6"), ("area_2", "area_4")),
    3: (("area_2", "area_4", "area_5a", "area_5b"), ("area_1", "area_3", "area_6")),
}
INSTANCES_FILE = "instances.webp"


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

    dataset = Stanford2D3DSDataset
    default_scale = 1.0

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
