"""Structured3D panoramas: 40 NYU40 classes, scenes ``scene_00000`` ... ``scene_03499``.

Raw layout: ``scene_XXXXX/2D_rendering/<room>/panorama/full/{rgb_rawlight.png, depth.png,
normal.png, semantic.png}``; a sample is one room. Depth in millimetres (0 = missing);
``semantic.png`` holds NYU40 ids (palette or grey image), training label = id - 1, id 0 ignored.
Rooms listed in ``assets/broken_files.json`` (entries containing ``panorama/full``) are skipped;
unlike the reference (a plain substring test), a room matches only as a whole path component.

Splits: scenes 0-2999 train; fold 1 tests on 3000-3249, fold 2 on 3250-3499.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.base import ASSETS_DIR, IdMapDataset, RawLayout, RawSampleFiles, read_json
from panosamic.data.classes import STRUCTURED3D
from panosamic.data.depth import STRUCTURED3D_DEPTH
from panosamic.data.id_maps import checked_id_image, checked_ids

NUM_SCENES = 3500
SCENES: tuple[str, ...] = tuple(f"scene_{i:05d}" for i in range(NUM_SCENES))
FOLDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (SCENES[:3000], SCENES[3000:3250]),
    2: (SCENES[:3000], SCENES[3250:3500]),
}
BROKEN_FILES = "broken_files.json"
_PANO_DIR = ("panorama", "full")


def decode_nyu40(raw: np.ndarray, source: str = "labels") -> np.ndarray:
    """int64 class indices of an NYU40 id map: id - 1, id 0 -> -1 (ids above 40 are an error)."""
    ids = checked_ids(raw, STRUCTURED3D.num_classes, source)
    labels = ids - 1
    labels[ids == 0] = IGNORE_INDEX
    return labels


class Structured3DDataset(IdMapDataset):
    """Processed Structured3D (``mask_black`` on unless forced off)."""

    info = STRUCTURED3D
    areas = SCENES
    folds = FOLDS
    depth_encoding = STRUCTURED3D_DEPTH
    cross_validation = False
    has_normals = True
    decode_ids = staticmethod(decode_nyu40)


class Structured3DRaw(RawLayout):
    """The raw Structured3D download (``scene_*/2D_rendering/<room>/panorama/full/``)."""

    dataset = Structured3DDataset
    default_scale = 1.0

    def _broken(self, raw: Path) -> list[str]:
        path = raw / ASSETS_DIR / BROKEN_FILES
        if not path.is_file():
            return []
        entries = read_json(path)
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError(f"{path} must be a list of file paths")
        return [e.replace("\\", "/") for e in entries if "/".join(_PANO_DIR) in e.replace("\\", "/")]

    def find_areas(self, raw: Path) -> list[str]:
        scenes = sorted(p.name for p in raw.iterdir() if p.is_dir() and p.name.startswith("scene_"))
        if not scenes:
            raise FileNotFoundError(f"no scene_* folders in {raw}; expected scene_XXXXX/2D_rendering/<room>/...")
        for scene in scenes:
            if not (raw / scene / "2D_rendering").is_dir():
                raise FileNotFoundError(f"{raw / scene / '2D_rendering'} is missing")
        self._broken_entries = self._broken(raw)
        return scenes

    def find_samples(self, raw: Path, area: str) -> list[str]:
        broken = getattr(self, "_broken_entries", None)
        if broken is None:
            broken = self._broken_entries = self._broken(raw)
        rooms = sorted(p.name for p in (raw / area / "2D_rendering").iterdir() if p.is_dir())
        return [r for r in rooms if not any(f"{area}/2D_rendering/{r}/" in e for e in broken)]

    def sample_files(self, raw: Path, area: str, sample: str) -> RawSampleFiles:
        pano = raw / area / "2D_rendering" / sample / Path(*_PANO_DIR)
        return RawSampleFiles(
            rgb=pano / "rgb_rawlight.png",
            depth=pano / "depth.png",
            labels=pano / "semantic.png",
            normals=pano / "normal.png",
        )

    def convert_labels(self, image: Image.Image, path: Path) -> Image.Image:
        return checked_id_image(image, path, "(palette or grey) NYU40")
