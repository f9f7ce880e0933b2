"""Synthetic panoramas written in the raw ToF-360 layout (so ToF-360's preparation and loader run offline).

The rooms are :func:`panosamic.synth.render.render_room`'s; each Stanford2D3DS class is written as one of
the ToF-360 ids that mean it (alternating between instances, so every id of
:data:`panosamic.data.tof360_codec.TOF360_TO_STANFORD` is used), clutter as ids of no listed class (the
catch-all), unknown objects and unscanned pixels as the void ids. Files:

* ``<scene>/RGB/<name>_<scene>_equi_rgb.png``: 8-bit RGB;
* ``<scene>/depth/<name>_<scene>_equi_depth.png``: 16-bit, ``round(metres * 512)``, 0 = no reading;
* ``<scene>/normal/<name>_<scene>_equi_normal.png``: 8-bit RGB, ``round(n * 127.5 + 127.5)``;
* ``<scene>/semantics/<name>_<scene>_equi_semantic.npy``: uint8 ToF-360 ids.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panosamic.data.stanford_codec import CLASS_NAMES, DEPTH_SCALE, encode_normals
from panosamic.data.tof360_codec import CATCH_ALL, RAW_KINDS, SCENES, TOF360_TO_STANFORD, VOID_IDS
from panosamic.io import atomic_write_bytes
from panosamic.synth.domains import SyntheticDomain, get_domain
from panosamic.synth.files import check_count, check_output_dir, save_png
from panosamic.synth.render import RenderedRoom, check_size, render_room, room_seed

#: Ids of no listed class, written for clutter (the loader maps them to the catch-all).
CATCH_ALL_IDS: tuple[int, ...] = (6, 9, 10, 11, 13)
#: Void ids written for unknown objects and for unscanned pixels.
UNKNOWN_ID, MISSING_IDS = VOID_IDS[0], VOID_IDS[1:]


@dataclass(frozen=True)
class ToF360Sample:
    """One written panorama and the Stanford2D3DS classes its ids stand for (``class_map``, -1 = void)."""

    scene: str
    name: str
    paths: dict[str, Path]  # rgb, depth, normals, labels
    class_map: np.ndarray  # int64 H x W


def _ids_of(cls: int, instance: int) -> int:
    name = CLASS_NAMES[cls]
    options = CATCH_ALL_IDS if name == CATCH_ALL else TOF360_TO_STANFORD[name]
    return options[instance % len(options)]


def tof360_ids(room: RenderedRoom) -> np.ndarray:
    """uint8 ToF-360 ids of a rendered room (one id per instance, void for unknown and unscanned)."""
    ids = np.full(room.class_map.shape, MISSING_IDS[0], np.uint8)
    ids[:, ::2] = MISSING_IDS[-1]  # both "unlabeled" variants among the unscanned pixels
    lut = np.array([UNKNOWN_ID] + [_ids_of(CLASS_NAMES.index(c), i) for i, c in enumerate(room.instance_classes[1:], 1)],
                   np.uint8)  # fmt: skip
    scanned = room.instance_index >= 0
    ids[scanned] = lut[room.instance_index[scanned]]
    return ids


def make_synthetic_tof360(
    out_dir: str | Path,
    scenes: Sequence[str] = SCENES,
    rooms_per_scene: int = 2,
    size: Sequence[int] = (64, 128),
    seed: int = 0,
    overwrite: bool = False,
    domain: str | SyntheticDomain | None = None,
) -> list[ToF360Sample]:
    """Render ``rooms_per_scene`` rooms per scene into ``out_dir`` in the raw ToF-360 layout (same
    arguments, same files). A non-empty ``out_dir`` is refused unless ``overwrite`` (files of the same
    names are replaced, nothing is deleted)."""
    out = Path(out_dir)
    look = get_domain(domain)
    scenes = (scenes,) if isinstance(scenes, str) else tuple(scenes)
    unknown = [s for s in scenes if s not in SCENES]
    if not scenes or unknown:
        raise ValueError(f"scenes must be among {SCENES}, got {list(scenes)!r}")
    check_count("rooms_per_scene", rooms_per_scene, 1)
    h, w = check_size(size)
    check_output_dir(out, overwrite)  # overwrite: files of the same names are replaced
    samples = []
    for scene in scenes:
        for i in range(rooms_per_scene):
            room = render_room(room_seed(seed, scene, i), (h, w), room_number=i + 1, domain=look)
            name = f"{i + 1:04d}"
            paths = {k: out / scene / folder / f"{name}_{scene}_equi_{suffix}" for k, (folder, suffix) in RAW_KINDS.items()}
            depth = np.where(np.isfinite(room.depth_m), np.rint(np.nan_to_num(room.depth_m) * DEPTH_SCALE), 0)
            save_png(paths["rgb"], room.rgb)
            save_png(paths["depth"], np.clip(depth, 0, 65535).astype(np.uint16))
            save_png(paths["normals"], encode_normals(room.normals))
            buffer = io.BytesIO()
            np.save(buffer, tof360_ids(room), allow_pickle=False)
            atomic_write_bytes(paths["labels"], buffer.getvalue())
            samples.append(ToF360Sample(scene, name, paths, room.class_map))
    return samples
