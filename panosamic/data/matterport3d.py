"""360FV-Matterport (the Matterport3D panoramas of 360BEV): 20 classes, 86 scenes, 2 folds.

Raw layout: ``<scene>/{rgb/<name>.jpg, depth/<name>.png, semantic/<name>.png}`` for every
scene folder (all sub-folders but ``assets`` and ``processed``). Depth in 0.25 mm units
(0 = missing), no normals. ``semantic`` holds mpcat40 ids (0 void ... 41 unlabeled), mapped to
the 20 classes below; void and unlabeled are ignored.

Splits: the 86 scenes of the 360BEV "360FV-Matterport" split, in the reference's order
(61 training, 7 validation, 18 test scenes). Fold 1 tests on the validation scenes, fold 2 on
the test scenes; both train on the same 61 scenes, so the caches are plain lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.base import IdMapDataset, RawLayout, RawSampleFiles
from panosamic.data.classes import MATTERPORT3D
from panosamic.data.depth import MATTERPORT_DEPTH
from panosamic.data.id_maps import checked_id_image, checked_ids

# fmt: off
TRAIN_SCENES: tuple[str, ...] = (
    "17DRP5sb8fy", "1LXtFkjw3qL", "1pXnuDYAj8r", "29hnd4uzFmX", "5LpN3gDmAk7", "5q7pvUzZiYa",
    "759xd9YjKW5", "7y3sRwLe3Va", "82sE5b5pLXE", "8WUmhLawc2A", "aayBHfsNo7d", "ac26ZMwG7aT",
    "B6ByNegPMKs", "b8cTxDM8gDG", "cV4RVeZvu5T", "D7N2EKCX4Sj", "e9zR4mvMWw7", "EDJbREhghzL",
    "GdvgFV5R1Z5", "gTV8FGcVJC9", "HxpKQynjfin", "i5noydFURQK", "JeFG25nYj2p", "JF19kD82Mey",
    "jh4fc5c5qoQ", "kEZ7cmS4wCh", "mJXqzFtmKg4", "p5wJjkQkbXX", "Pm6F8kyY3z2", "pRbA3pwrgk9",
    "PuKPg4mmafe", "PX4nDJXEHrG", "qoiz87JEwZ2", "rPc6DW4iMge", "s8pcmisQ38h", "S9hNv5qa7GM",
    "sKLMLpTHeUy", "SN83YJsR3w2", "sT4fr6TAbpF", "ULsKaCPVFJR", "uNb9QFRL6hY", "Uxmj2M2itWa",
    "V2XKFyX4ASd", "VFuaQ6m2Qom", "VVfe2KiqLaN", "Vvot9Ly1tCj", "vyrNrziPKCB", "VzqfbhrpDEA",
    "XcA2TqTSSAj", "2n8kARJN3HM", "D7G3Y4RVNrH", "dhjEzFoUFzH", "E9uDoFAP3SH", "gZ6f7yhEvPG",
    "JmbYfDe2QKZ", "r1Q1Z4BcV1o", "r47D5H71a5s", "ur6pFq6Qu1A", "VLzqgDo317F", "YmJkqBEsHnH",
    "ZMojNkEp431",
)
VALIDATION_SCENES: tuple[str, ...] = (
    "2azQ1b91cZZ", "8194nk5LbLH", "EU6Fwq7SyZv", "oLBMNvg9in8", "QUCTc6BB5sX", "TbHJrupSAjP",
    "X7HyMhZNoso",
)
TEST_SCENES: tuple[str, ...] = (
    "2t7WUuJeko7", "5ZKStnWn8Zo", "ARNzJeq3xxb", "fzynW3qQPVF", "jtcxE69GiFV", "pa4otMbVnkk",
    "q9vSo1VnCiC", "rqfALeAoiTq", "UwV83HsGsw3", "wc2JMjhGNzB", "WYY7iVyf5p8", "YFuZgdQ5vWj",
    "yqstnuAEVhm", "YVUC4YcDtcY", "gxdoqLR6rwA", "gYvKGZ5eRqb", "RPmz2sHmrrY", "Vt2qJdWjCF2",
)
# fmt: on
SCENES: tuple[str, ...] = TRAIN_SCENES + VALIDATION_SCENES + TEST_SCENES
FOLDS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (TRAIN_SCENES, VALIDATION_SCENES),
    2: (TRAIN_SCENES, TEST_SCENES),
}

#: mpcat40 id -> class name of the 20-class set; ids not listed (0 void, 41 unlabeled) are ignored.
MPCAT40_TO_CLASS: dict[int, str] = {
    1: "wall", 2: "floor", 3: "chair", 4: "door", 5: "table", 6: "picture", 7: "furniture",  # cabinet
    8: "objects", 9: "window", 10: "sofa", 11: "bed", 12: "objects", 13: "furniture", 14: "objects",
    15: "sink", 16: "stairs", 17: "ceiling", 18: "toilet", 19: "chair", 20: "objects", 21: "mirror",
    22: "objects", 23: "shower", 24: "objects", 25: "bathtub", 26: "counter", 27: "objects",
    28: "objects", 29: "objects", 30: "objects", 31: "shelving", 32: "window", 33: "furniture",
    34: "furniture", 35: "objects", 36: "furniture", 37: "objects", 38: "objects", 39: "objects",
    40: "objects",
}  # fmt: skip
#: Largest raw id (41 = unlabeled).
MAX_RAW_ID = 41


def _raw_to_class_table() -> np.ndarray:
    table = np.full(MAX_RAW_ID + 1, IGNORE_INDEX, dtype=np.int64)
    for raw_id, name in MPCAT40_TO_CLASS.items():
        table[raw_id] = MATTERPORT3D.class_index(name)
    return table


RAW_TO_CLASS: np.ndarray = _raw_to_class_table()


def decode_mpcat40(raw: np.ndarray, source: str = "labels") -> np.ndarray:
    """int64 class indices of an mpcat40 id map (ids above 41 are an error)."""
    return RAW_TO_CLASS[checked_ids(raw, MAX_RAW_ID, source)]


class Matterport3DDataset(IdMapDataset):
    """Processed 360FV-Matterport (RGB and depth only; ``mask_black`` on unless forced off)."""

    info = MATTERPORT3D
    areas = SCENES
    folds = FOLDS
    depth_encoding = MATTERPORT_DEPTH
    cross_validation = False
    has_normals = False
    decode_ids = staticmethod(decode_mpcat40)


class Matterport3DRaw(RawLayout):
    """The raw 360FV-Matterport download (``<scene>/{rgb,depth,semantic}/``)."""

    dataset = Matterport3DDataset
    default_scale = 0.25
    _not_scenes = ("assets", "processed")

    def find_areas(self, raw: Path) -> list[str]:
        scenes = sorted(p.name for p in raw.iterdir() if p.is_dir() and p.name not in self._not_scenes)
        if not scenes:
            raise FileNotFoundError(f"no scene folders in {raw}; expected <scene>/rgb/<name>.jpg, ...")
        for scene in scenes:
            if not (raw / scene / "rgb").is_dir():
                raise FileNotFoundError(f"{raw / scene / 'rgb'} is missing: every scene needs rgb/, depth/, semantic/")
        return scenes

    def find_samples(self, raw: Path, area: str) -> list[str]:
        return sorted(p.stem for p in (raw / area / "rgb").iterdir() if p.suffix == ".jpg")

    def sample_files(self, raw: Path, area: str, sample: str) -> RawSampleFiles:
        scene = raw / area
        return RawSampleFiles(
            rgb=scene / "rgb" / f"{sample}.jpg",
            depth=scene / "depth" / f"{sample}.png",
            labels=scene / "semantic" / f"{sample}.png",
        )

    def convert_labels(self, image: Image.Image, path: Path) -> Image.Image:
        return checked_id_image(image, path, "mpcat40")
