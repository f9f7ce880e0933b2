"""ToF-360 (COLE-Ricoh/ToF-360): real panoramas for evaluating Stanford2D3DS models, 4 scenes, 1 fold.

Raw layout: ``<scene>/RGB/<name>_<scene>_equi_rgb.png``, ``<scene>/depth/<name>_<scene>_equi_depth.png``
(16-bit, 1/512 m, 0 = no reading), ``<scene>/normal/<name>_<scene>_equi_normal.png`` and
``<scene>/semantics/<name>_<scene>_equi_semantic.npy`` (ToF-360's own category ids) for the scenes
:data:`SCENES`. ``prepare`` keeps the ids as they are (``semantics.png``, like the reference's
preparation); the loader maps them onto Stanford2D3DS's 13 classes (:mod:`panosamic.data.tof360_codec`):
the void ids are ignored, ids of no listed class are ``clutter`` (the catch-all).

Evaluation only: 179 panoramas are too few to train on, so fold 1 is every scene, for both splits; a
Stanford2D3DS checkpoint is scored on it zero-shot (``panosamic evaluate --dataset tof360``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.data.base import IdMapDataset, RawLayout, RawSampleFiles
from panosamic.data.classes import TOF360
from panosamic.data.depth import TOF360_DEPTH
from panosamic.data.tof360_codec import RAW_KINDS, SCENES, decode_tof360, id_image

#: The one fold: every scene for training statistics (depth threshold) and for testing.
FOLDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {1: (SCENES, SCENES)}


class ToF360Dataset(IdMapDataset):
    """Processed ToF-360, labelled with Stanford2D3DS's classes (black pixels kept unless asked)."""

    info = TOF360
    areas = SCENES
    folds = FOLDS
    depth_encoding = TOF360_DEPTH
    cross_validation = False
    has_normals = True
    decode_ids = staticmethod(decode_tof360)

    @classmethod
    def default_mask_black(cls, modalities: tuple[str, ...]) -> bool:
        return False


class ToF360Raw(RawLayout):
    """The raw ToF-360 download (``<scene>/{RGB,depth,normal,semantics}/``)."""

    dataset = ToF360Dataset
    default_scale = 1.0

    def find_areas(self, raw: Path) -> list[str]:
        scenes = sorted(p.name for p in raw.iterdir() if p.is_dir() and p.name in SCENES)
        if not scenes:
            raise FileNotFoundError(f"no ToF-360 scene folders in {raw}; expected some of {', '.join(SCENES)}")
        for scene in scenes:
            folder = raw / scene / RAW_KINDS["rgb"][0]
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing: every scene needs RGB/, depth/, normal/, semantics/")
        return scenes

    def find_samples(self, raw: Path, area: str) -> list[str]:
        folder, suffix = RAW_KINDS["rgb"]
        tail = f"_{area}_equi_{suffix}"
        return sorted(p.name[: -len(tail)] for p in (raw / area / folder).iterdir() if p.name.endswith(tail))

    def sample_files(self, raw: Path, area: str, sample: str) -> RawSampleFiles:
        path = {k: raw / area / folder / f"{sample}_{area}_equi_{suffix}" for k, (folder, suffix) in RAW_KINDS.items()}
        return RawSampleFiles(rgb=path["rgb"], depth=path["depth"], labels=path["labels"], normals=path["normals"])

    def open_labels(self, path: Path) -> Image.Image | None:
        if not path.is_file():
            return None  # prepare names the missing file
        return id_image(np.load(path, allow_pickle=False), str(path))
