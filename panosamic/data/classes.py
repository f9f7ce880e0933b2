"""Class names and colour palettes of the supported datasets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panosamic.specs import DATASET_NAMES


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


#: Stanford2D3DS, 13 classes in alphabetical order (HoHoNet / PanoSAMic). 2D-3D-S publishes no
#: class colours; HoHoNet's ``assets/colors.npy`` is a hue wheel whose neighbours look alike
#: (beam/board, chair/clutter, floor/sofa, wall/window). Display colours here: the mpcat40
#: (Matterport) colours of wall, chair and table, a grey floor, the others chosen so that every
#: pair differs by CIEDE2000 >= 20. Only pictures use them; labels never depend on colours.
STANFORD2D3DS = DatasetInfo(
    name="stanford2d3ds",
    class_names=(
        "beam", "board", "bookcase", "ceiling", "chair", "clutter", "column",
        "door", "floor", "sofa", "table", "wall", "window",
    ),
    palette_rows=(
        (180, 0, 128), (186, 107, 254), (129, 28, 37), (54, 49, 222), (152, 223, 138), (41, 143, 158),
        (194, 178, 131), (14, 132, 237), (100, 100, 100), (81, 147, 22), (255, 127, 14), (174, 199, 232),
        (255, 255, 82),
    ),
)

#: ToF-360, scored with Stanford2D3DS's classes (its own ids are mapped onto them by the loader).
TOF360 = DatasetInfo(name="tof360", class_names=STANFORD2D3DS.class_names, palette_rows=STANFORD2D3DS.palette_rows)

#: 360FV-Matterport (360BEV), 20 classes, all of them mpcat40 categories. Colours: mpcat40's
#: (``mpcat40.tsv``), except ceiling, stairs, toilet, mirror, shower and shelving, moved so that
#: every pair differs by CIEDE2000 >= 16 (mpcat40's mirror/shower and window/toilet look alike).
MATTERPORT3D = DatasetInfo(
    name="matterport3d",
    class_names=(
        "wall", "floor", "chair", "door", "table", "picture", "furniture", "objects", "window",
        "sofa", "bed", "sink", "stairs", "ceiling", "toilet", "mirror", "shower", "bathtub",
        "counter", "shelving",
    ),
    palette_rows=(
        (174, 199, 232), (112, 128, 144), (152, 223, 138), (197, 176, 213), (255, 127, 14),
        (214, 39, 40), (140, 109, 49), (23, 190, 207), (255, 152, 150), (44, 160, 44),
        (227, 119, 194), (132, 60, 57), (168, 220, 206), (178, 131, 249), (172, 123, 135),
        (255, 200, 115), (239, 244, 124), (57, 59, 121), (165, 81, 148), (193, 169, 148),
    ),
)

#: Structured3D, the 40 NYU40 classes (raw label k -> training label k - 1). Colours: NYU40's
#: (ScanNet), 23 of them nudged so that every pair differs by CIEDE2000 >= 12 (NYU40 has pairs
#: as close as 2.7, e.g. bookshelf/nightstand); the structural classes keep theirs.
STRUCTURED3D = DatasetInfo(
    name="structured3d",
    class_names=(
        "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
        "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser",
        "pillow", "mirror", "floor mat", "clothes", "ceiling", "books", "refrigerator",
        "television", "paper", "towel", "shower curtain", "box", "whiteboard", "person",
        "nightstand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
        "otherfurniture", "otherprop",
    ),
    palette_rows=(
        (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
        (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (157, 128, 209),
        (187, 166, 153), (36, 185, 208), (193, 43, 79), (247, 182, 210), (31, 212, 154),
        (219, 219, 141), (157, 53, 199), (237, 188, 30), (38, 151, 194), (200, 54, 131),
        (100, 193, 42), (78, 71, 183), (172, 114, 82), (255, 127, 14), (61, 162, 143),
        (145, 97, 134), (138, 135, 132), (158, 218, 229), (111, 139, 188), (178, 127, 135),
        (118, 175, 119), (118, 113, 139), (36, 148, 57), (90, 129, 123), (99, 208, 197),
        (245, 132, 198), (221, 80, 206), (118, 104, 241), (61, 104, 116), (98, 83, 134),
    ),
)

#: The fixed class tables (the ``folder`` dataset's classes come with its data: see
#: :mod:`panosamic.data.registry`, where every dataset plugs in).
DATASET_INFOS: dict[str, DatasetInfo] = {i.name: i for i in (STANFORD2D3DS, MATTERPORT3D, STRUCTURED3D)}
if not set(DATASET_INFOS) <= set(DATASET_NAMES):  # one list of datasets (specs), one class table each
    raise ImportError(f"class tables {tuple(DATASET_INFOS)} are not all in panosamic.specs.DATASET_NAMES {DATASET_NAMES}")
