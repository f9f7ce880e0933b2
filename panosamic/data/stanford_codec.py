"""The raw Stanford2D3DS (2D-3D-S) encodings, stated once for the loader and the synthetic renderer.

Raw layout: ``area_*/pano/{rgb,depth,normal,semantic}/<name>_{rgb,depth,normals,semantic}.png`` with
``<name> = camera_<32 hex>_<roomType>_<roomNum>_frame_equirectangular_domain``, plus
``assets/semantic_labels.json`` (instance names ``class_instance_roomType_roomNum_areaNum``, entry 0
``<UNK>_0_<UNK>_0_0``).

* semantic PNG: 8-bit RGB instance index ``R << 16 | G << 8 | B``; 0x0D0D0D marks missing pixels. A pixel
  with ``R != 0`` (an index >= 65536, the missing marker included) is unknown; otherwise ``G * 256 + B``
  indexes ``semantic_labels.json``, whose names give the class (text before the first ``_``).
* depth PNG: 16-bit, ``round(metres * 512)``, 65535 = missing (the loaders read metres as
  ``raw * 128 / 65535``, the reference's arithmetic, see :data:`panosamic.data.depth.STANFORD_DEPTH`).
* normals PNG: 8-bit RGB ``round(n * 127.5 + 127.5)``, missing = (128, 128, 128).
"""

from __future__ import annotations

import re

import numpy as np

from panosamic.constants import IGNORE_INDEX
from panosamic.data.classes import STANFORD2D3DS, DatasetInfo
from panosamic.data.depth import STANFORD_DEPTH

#: The 13 classes, in training-index order (0..12).
CLASS_NAMES: tuple[str, ...] = STANFORD2D3DS.class_names
#: The areas of the real dataset.
AREAS: tuple[str, ...] = ("area_1", "area_2", "area_3", "area_4", "area_5a", "area_5b", "area_6")
#: Raw sub-folder and file-name suffix of each modality (loader's modality name -> (folder, suffix)).
RAW_KINDS: dict[str, tuple[str, str]] = {
    "rgb": ("rgb", "rgb"),
    "depth": ("depth", "depth"),
    "normals": ("normal", "normals"),
    "labels": ("semantic", "semantic"),
}
#: The raw download's folder of ``semantic_labels.json`` (copied as is by ``prepare``).
RAW_ASSETS_DIR = "assets"
SEMANTIC_LABELS_FILE = "semantic_labels.json"
#: Suffix of every panorama name (before the modality suffix).
SAMPLE_SUFFIX = "_frame_equirectangular_domain"
#: A raw panorama file name.
SAMPLE_FILE_RE = re.compile(r"^camera_[0-9a-f]{32}_.+_frame_equirectangular_domain_(rgb|depth|normals|semantic)\.png$")
#: An area folder name (``area_<number>[letter]``).
AREA_RE = re.compile(r"^area_(\d+)[a-z]?$")
#: Class name of the unknown instance (entry 0 of ``semantic_labels.json``, ignored in training).
UNKNOWN_CLASS: str = "<UNK>"
#: Entry 0 of ``semantic_labels.json``.
UNKNOWN_LABEL: str = "<UNK>_0_<UNK>_0_0"
#: Metres -> depth PNG units (as written; the reference reads them back as 65535 / 128 per metre).
DEPTH_SCALE: float = 512.0
#: Depth PNG value marking missing data.
DEPTH_MISSING: int = STANFORD_DEPTH.invalid_value
#: Semantic and normal colours marking missing data.
SEMANTIC_MISSING_RGB: tuple[int, int, int] = (13, 13, 13)
NORMALS_MISSING_RGB: tuple[int, int, int] = (128, 128, 128)
#: Instance indices the loaders decode (``R == 0``): ``G * 256 + B``.
INDEX_RANGE: int = 256 * 256


def sample_name(camera_id: str, room_name: str) -> str:
    """The raw panorama name ``camera_<id>_<room>_frame_equirectangular_domain``."""
    return f"camera_{camera_id}_{room_name}{SAMPLE_SUFFIX}"


def area_number(area: str) -> int:
    """``area_5a`` -> 5 (the number in ``semantic_labels.json``'s names)."""
    m = AREA_RE.match(area) if isinstance(area, str) else None
    if m is None:
        raise ValueError(f"area names must look like 'area_<number>[letter]' (e.g. area_1, area_5a), got {area!r}")
    return int(m.group(1))


def instance_label(cls: str, number: int, room_name: str, area: str) -> str:
    """A ``semantic_labels.json`` name, ``class_instance_roomType_roomNum_areaNum``."""
    return f"{cls}_{number}_{room_name}_{area_number(area)}"


def instance_class_table(instance_names: list[str], info: DatasetInfo = STANFORD2D3DS) -> np.ndarray:
    """int64 table of 65536 entries: instance index (G*256 + B) -> class index, -1 = unknown."""
    if not isinstance(instance_names, list) or not all(isinstance(n, str) for n in instance_names):
        raise ValueError("semantic_labels.json must be a list of instance-name strings")
    if len(instance_names) > INDEX_RANGE:
        raise ValueError(f"semantic_labels.json has {len(instance_names)} names, more than {INDEX_RANGE}")
    lookup = {name: i for i, name in enumerate(info.class_names)}
    table = np.full(INDEX_RANGE, IGNORE_INDEX, dtype=np.int64)
    table[: len(instance_names)] = [lookup.get(n.split("_")[0], IGNORE_INDEX) for n in instance_names]
    return table


def decode_semantic_rgb(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int64 HxW class indices of an RGB-encoded semantic image (``table``: :func:`instance_class_table`)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"expected an HxWx3 RGB semantic image, got shape {rgb.shape}")
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    labels = table[g * 256 + b]
    labels[r != 0] = IGNORE_INDEX
    return labels


def encode_semantic(global_index: np.ndarray) -> np.ndarray:
    """Global instance index (-1 = missing) -> uint8 RGB ``(i >> 16, (i >> 8) & 255, i & 255)``, missing = 0x0D0D0D."""
    idx = np.asarray(global_index)
    if idx.size and int(idx.max()) >= 1 << 24:
        raise ValueError(f"instance index {int(idx.max())} does not fit in 24 bits")
    out = np.empty(idx.shape + (3,), np.uint8)
    for c, shift in enumerate((16, 8, 0)):
        out[..., c] = (idx >> shift) & 255
    out[idx < 0] = SEMANTIC_MISSING_RGB
    return out


def decode_semantic(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB semantic PNG -> int64 index ``R * 65536 + G * 256 + B`` (0x0D0D0D = 855309 = missing)."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Metres (nan = missing) -> uint16 depth PNG values (1/512 m, 65535 = missing)."""
    finite = np.isfinite(depth_m)
    if np.any(depth_m[finite] < 0) or np.any(depth_m[finite] * DEPTH_SCALE >= DEPTH_MISSING - 0.5):
        raise ValueError(f"depth must be in [0, {(DEPTH_MISSING - 1) / DEPTH_SCALE:.3f}] m")
    out = np.full(depth_m.shape, DEPTH_MISSING, np.uint16)
    out[finite] = np.rint(depth_m[finite] * DEPTH_SCALE).astype(np.uint16)
    return out


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals (nan = missing) -> uint8 RGB ``round(n * 127.5 + 127.5)``, missing = (128, 128, 128)."""
    missing = ~np.isfinite(normals).all(-1)
    out = np.rint(np.nan_to_num(normals) * 127.5 + 127.5).clip(0, 255).astype(np.uint8)
    out[missing] = NORMALS_MISSING_RGB
    return out
