"""Class names and colour palettes of the supported datasets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset's label space.

    ``class_names[k]`` is the name of training label ``k`` (``0 .. num_classes - 1``);
    ``palette[k]`` its display colour (uint8 RGB). Ignored pixels (label -1) have no colour.
    """

    name: str
    class_names: tuple[str, ...]
    palette_rows: tuple[tuple[int, int, int], ...] = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.palette_rows) != len(self.class_names):
            raise ValueError(
                f"{self.name}: {len(self.palette_rows)} palette colours for {len(self.class_names)} classes"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"{self.name}: duplicate class names")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB colours, one row per class."""
        return np.asarray(self.palette_rows, dtype=np.uint8).reshape(-1, 3)

    def class_index(self, name: str) -> int:
        """Training label of a class name (ValueError for an unknown name)."""
        try:
            return self.class_names.index(name)
        except ValueError:
            raise ValueError(f"{self.name} has no class {name!r}; classes: {self.class_names}") from None


#: Stanford2D3DS, 13 classes in alphabetical order (HoHoNet / PanoSAMic). The palette is
#: HoHoNet's ``assets/colors.npy`` rows 1..13 (row 0 is the colour of ``<UNK>``).
STANFORD2D3DS = DatasetInfo(
    name="stanford2d3ds",
    class_names=(
        "beam", "board", "bookcase", "ceiling", "chair", "clutter", "column",
        "door", "floor", "sofa", "table", "wall", "window",
    ),  # fmt: skip
    palette_rows=(
        (255, 0, 40), (255, 72, 0), (255, 185, 0), (205, 255, 0), (91, 255, 0), (0, 255, 21),
        (0, 255, 139), (0, 255, 252), (0, 143, 255), (0, 23, 255), (90, 0, 255), (204, 0, 255),
        (255, 0, 191),
    ),
)

#: 360FV-Matterport (360BEV), 20 classes. Colours follow the NYU40 colour of the closest NYU40
#: class (furniture = otherfurniture, objects = otherprop, shelving = shelves, ...).
MATTERPORT3D = DatasetInfo(
    name="matterport3d",
    class_names=(
        "wall", "floor", "chair", "door", "table", "picture", "furniture", "objects", "window",
        "sofa", "bed", "sink", "stairs", "ceiling", "toilet", "mirror", "shower", "bathtub",
        "counter", "shelving",
    ),  # fmt: skip
    palette_rows=(
        (174, 199, 232), (152, 223, 138), (188, 189, 34), (214, 39, 40), (255, 152, 150),
        (196, 156, 148), (82, 84, 163), (100, 85, 144), (197, 176, 213), (140, 86, 75),
        (255, 187, 120), (112, 128, 144), (255, 127, 14), (78, 71, 183), (44, 160, 44),
        (51, 176, 203), (158, 218, 229), (227, 119, 194), (23, 190, 207), (66, 188, 102),
    ),
)

#: Structured3D, the 40 NYU40 classes (raw label k -> training label k - 1), NYU40 colours.
STRUCTURED3D = DatasetInfo(
    name="structured3d",
    class_names=(
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
        "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser",
        "pillow", "mirror", "floor mat", "clothes", "ceiling", "books", "refrigerator",
        "television", "paper", "towel", "shower curtain", "box", "whiteboard", "person",
        "nightstand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
        "otherfurniture", "otherprop",
    ),  # fmt: skip
    palette_rows=(
        (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
        (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189),
        (196, 156, 148), (23, 190, 207), (178, 76, 76), (247, 182, 210), (66, 188, 102),
        (219, 219, 141), (140, 57, 197), (202, 185, 52), (51, 176, 203), (200, 54, 131),
        (92, 193, 61), (78, 71, 183), (172, 114, 82), (255, 127, 14), (91, 163, 138),
        (153, 98, 156), (140, 153, 101), (158, 218, 229), (100, 125, 154), (178, 127, 135),
        (120, 185, 128), (146, 111, 194), (44, 160, 44), (112, 128, 144), (96, 207, 209),
        (227, 119, 194), (213, 92, 176), (94, 106, 211), (82, 84, 163), (100, 85, 144),
    ),
)

DATASET_INFOS: dict[str, DatasetInfo] = {i.name: i for i in (STANFORD2D3DS, MATTERPORT3D, STRUCTURED3D)}
#: Names accepted by :func:`get_dataset_info` and ``build_dataset``.
DATASET_NAMES: tuple[str, ...] = tuple(DATASET_INFOS)


def get_dataset_info(name: str) -> DatasetInfo:
    """Class names and palette of a dataset (``stanford2d3ds``, ``matterport3d``, ``structured3d``)."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in DATASET_INFOS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    return DATASET_INFOS[key]
