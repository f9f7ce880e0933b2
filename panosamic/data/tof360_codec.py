"""The raw ToF-360 encodings, stated once for the loader (:mod:`panosamic.data.tof360`) and the synthetic
writer (:mod:`panosamic.synth.tof360`): scenes, file names, and the map of ToF-360's category ids onto
Stanford2D3DS's 13 classes (void ids ignored, ids of no listed class ``clutter``). numpy and PIL only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.classes import TOF360
from panosamic.data.id_maps import checked_ids

SCENES: tuple[str, ...] = ("Hospital", "Office_Room_1", "Office_Room_2", "Parking_Lot")
#: Raw sub-folder and file-name suffix of each modality (``<name>_<scene>_equi_<suffix>``).
RAW_KINDS: dict[str, tuple[str, str]] = {
    "rgb": ("RGB", "rgb.png"),
    "depth": ("depth", "depth.png"),
    "normals": ("normal", "normal.png"),
    "labels": ("semantics", "semantic.npy"),
}
#: ToF-360 ids without a class: unlabeled, its variant, invalid.
VOID_IDS: tuple[int, ...] = (0, 33, 34)
#: Stanford2D3DS class -> the ToF-360 ids that mean it; every other id (light fixtures, pipes, bins,
#: signs, ...) is :data:`CATCH_ALL`.
TOF360_TO_STANFORD: dict[str, tuple[int, ...]] = {
    "wall": (1, 40),  # 40: curtain wall
    "ceiling": (2, 20, 42),
    "floor": (3, 18),
    "sofa": (4,),  # couch
    "chair": (5,),
    "door": (7,),
    "window": (8,),
    "table": (12,),
    "column": (14,),
    "beam": (17,),
    "board": (26,),
    "bookcase": (31,),  # shelf
}
CATCH_ALL = "clutter"
#: Ids the label maps may hold (16-bit).
ID_RANGE = 1 << 16


def _id_table() -> np.ndarray:
    table = np.full(ID_RANGE, TOF360.class_index(CATCH_ALL), dtype=np.int64)
    for name, ids in TOF360_TO_STANFORD.items():
        table[list(ids)] = TOF360.class_index(name)
    table[list(VOID_IDS)] = IGNORE_INDEX
    table.setflags(write=False)
    return table


#: ToF-360 id -> Stanford2D3DS class index (-1 = void).
ID_TO_CLASS: np.ndarray = _id_table()


def decode_tof360(ids: np.ndarray, source: str = "labels") -> np.ndarray:
    """int64 Stanford2D3DS class indices of a ToF-360 id map."""
    return ID_TO_CLASS[checked_ids(ids, ID_RANGE - 1, source, what="ids")]


def id_image(ids: np.ndarray, source: str = "labels") -> Image.Image:
    """An id map as a lossless single-channel image (8-bit when the ids allow, else 16-bit)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{source}: expected a 2-D integer id map, got {ids.dtype} of shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= ID_RANGE):
        raise ValueError(f"{source}: ids must be in 0..{ID_RANGE - 1}, found {ids.min()}..{ids.max()}")
    if not ids.size or ids.max() < 256:
        return Image.fromarray(ids.astype(np.uint8))
    return Image.fromarray(ids.astype(np.uint16))
