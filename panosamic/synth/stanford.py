"""Synthetic panoramas written in the raw Stanford2D3DS layout (``panosamic synth``).

Files (exactly the raw 2D-3D-S encodings of :mod:`panosamic.data.stanford_codec`):

* ``area_<k>/pano/rgb/<name>_rgb.png``: 8-bit RGB, ``(0, 0, 0)`` only in the unscanned caps;
* ``area_<k>/pano/depth/<name>_depth.png``: 16-bit grey, ``round(metres * 512)``, 65535 = missing;
* ``area_<k>/pano/normal/<name>_normals.png``: 8-bit RGB, ``round(n * 127.5 + 127.5)``, missing = 128;
* ``area_<k>/pano/semantic/<name>_semantic.png``: 8-bit RGB instance index ``R << 16 | G << 8 | B`` into
  ``assets/semantic_labels.json``; 0 = ``<UNK>``, 0x0D0D0D = missing;

with ``<name> = camera_<32 hex>_<roomType>_<roomNum>_frame_equirectangular_domain``; and with
``pinhole_views=N``, N perspective photos of every room from its panorama's camera position, as the real
download's ``area_<k>/data/``: ``rgb/<stem>_rgb.png``, ``semantic/<stem>_semantic.png`` (the same instance
labels) and ``pose/<stem>_pose.json`` (``camera_k_matrix``; ``yaw_deg`` / ``pitch_deg`` / ``roll_deg`` in the
conventions of :mod:`panosamic.geometry`), ``<stem> = camera_<id>_<roomType>_<roomNum>_frame_<j>_domain``
(no depth or normals for photos).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from panosamic.data.stanford_codec import (
    AREAS,
    RAW_ASSETS_DIR,
    RAW_KINDS,
    SAMPLE_FILE_RE,
    SEMANTIC_LABELS_FILE,
    UNKNOWN_LABEL,
    area_number,
    encode_depth,
    encode_normals,
    encode_semantic,
    instance_label,
)
from panosamic.io import atomic_write_text
from panosamic.progress import Progress
from panosamic.synth.domains import DEFAULT_DOMAIN, SyntheticDomain, get_domain
from panosamic.synth.files import check_count, check_output_dir, save_png
from panosamic.synth.render import MAX_INSTANCES_PER_ROOM, check_size, render_room, render_views, room_seed

#: The areas of the real dataset, the default of :func:`make_synthetic_stanford`.
DEFAULT_AREAS: tuple[str, ...] = AREAS
#: Global instance indices must stay below this: loaders treat ``R != 0`` (index >= 65536) as ``<UNK>``.
MAX_LABELS: int = 1 << 16
#: A synthetic perspective photo's file (``area_*/data/{rgb,semantic,pose}/``).
PHOTO_FILE_RE = re.compile(r"^camera_[0-9a-f]{32}_.+_frame_\d+_domain_(rgb\.png|semantic\.png|pose\.json)$")
#: raw modality folder -> file suffix (rgb, depth, normal, semantic).
MODALITY_FILES: dict[str, str] = dict(RAW_KINDS.values())


@dataclass(frozen=True)
class SyntheticSample:
    """One written panorama: where its files are and how its local instances map to global labels."""

    area: str
    room_index: int
    room_name: str
    camera_id: str
    name: str  # camera_<id>_<room>_frame_equirectangular_domain
    rgb_path: Path
    depth_path: Path
    normals_path: Path
    semantic_path: Path
    label_indices: tuple[int, ...]  # local instance index -> index in semantic_labels.json


@dataclass(frozen=True)
class SyntheticManifest:
    """Everything :func:`make_synthetic_stanford` wrote."""

    out_dir: Path
    seed: int
    size: tuple[int, int]
    areas: tuple[str, ...]
    rooms_per_area: int
    labels_path: Path
    semantic_labels: tuple[str, ...]
    samples: tuple[SyntheticSample, ...] = field(default_factory=tuple)
    domain: str = DEFAULT_DOMAIN.name
    #: Perspective photos written under ``area_*/data/`` (``pinhole_views`` per room).
    num_photos: int = 0

    def samples_in(self, area: str) -> tuple[SyntheticSample, ...]:
        return tuple(s for s in self.samples if s.area == area)


def sample_paths(out_dir: str | Path, area: str, name: str) -> dict[str, Path]:
    """Raw file paths of a sample, keyed by folder (rgb, depth, normal, semantic)."""
    pano = Path(out_dir) / area / "pano"
    return {folder: pano / folder / f"{name}_{suffix}.png" for folder, suffix in MODALITY_FILES.items()}


def _remove_previous(out_dir: Path) -> int:
    """Delete earlier synthetic panoramas (files matching the raw naming pattern) and labels; return a count."""
    n = 0
    for folder in MODALITY_FILES:
        for f in out_dir.glob(f"area_*/pano/{folder}/*.png"):
            if SAMPLE_FILE_RE.match(f.name):
                f.unlink()
                n += 1
    for f in out_dir.glob("area_*/data/*/camera_*_frame_*_domain_*"):
        if PHOTO_FILE_RE.match(f.name):
            f.unlink()
            n += 1
    (out_dir / RAW_ASSETS_DIR / SEMANTIC_LABELS_FILE).unlink(missing_ok=True)
    return n


def _write_photos(out: Path, area: str, i: int, seed: int, label_indices: list[int], n: int,
                  size: Sequence[int], fov_deg: float, pitch_deg: float, look: SyntheticDomain) -> int:
    """Render and write ``n`` photos of room ``i`` of ``area`` at evenly spaced yaws (random start and pitch)."""
    placement = np.random.default_rng(np.random.SeedSequence([int(seed), area_number(area), i, 0x9E37]))
    start = float(placement.uniform(-180.0, 180.0))
    views = [(((start + j * 360.0 / n) + 180.0) % 360.0 - 180.0, float(placement.uniform(-pitch_deg, pitch_deg)), 0.0)
             for j in range(n)]  # fmt: skip
    photos = render_views(room_seed(seed, area, i), views, size, fov_deg=fov_deg, room_number=i + 1, domain=look)
    lut = np.asarray(label_indices, np.int32)
    data = out / area / "data"
    for j, v in enumerate(photos):
        stem = f"camera_{v.camera_id}_{v.room_name}_frame_{j}_domain"
        save_png(data / "rgb" / f"{stem}_rgb.png", v.rgb)
        save_png(data / "semantic" / f"{stem}_semantic.png", encode_semantic(lut[v.instance_index]))
        pose = {"camera_k_matrix": [list(r) for r in v.intrinsics], "field_of_view_rads": float(np.radians(fov_deg)),
                "yaw_deg": v.yaw_deg, "pitch_deg": v.pitch_deg, "roll_deg": v.roll_deg}
        atomic_write_text(data / "pose" / f"{stem}_pose.json", json.dumps(pose))
    return len(photos)


def make_synthetic_stanford(
    out_dir: str | Path,
    areas: Sequence[str] = DEFAULT_AREAS,
    rooms_per_area: int = 2,
    size: Sequence[int] = (64, 128),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    domain: str | SyntheticDomain | None = None,
    pinhole_views: int = 0,
    pinhole_size: Sequence[int] = (64, 64),
    pinhole_fov_deg: float = 60.0,
    pinhole_pitch_deg: float = 15.0,
) -> SyntheticManifest:
    """Render ``rooms_per_area`` rooms per area and write them in the raw Stanford2D3DS layout.

    Room ``i`` of ``area`` is ``render_room(room_seed(seed, area, i), size, room_number=i + 1)``, so any
    room can be re-rendered alone. The same arguments give byte-identical files. A non-empty ``out_dir``
    is refused unless ``overwrite``, which first deletes earlier synthetic panoramas there (files named
    like raw panoramas under ``area_*/pano/*/``) and ``assets/semantic_labels.json``; nothing else.
    ``domain`` sets the look of every room (see :mod:`panosamic.synth.domains`). ``pinhole_views``: also
    that many perspective photos per room (``pinhole_size`` (height, width), horizontal field of view
    ``pinhole_fov_deg``, yaws 360 / n apart from a random start, pitch within ± ``pinhole_pitch_deg``), as
    the real download's ``area_*/data/`` (``panosamic prepare stanford2d3ds-pinhole`` reads them).
    """
    out = Path(out_dir)
    look = get_domain(domain)
    if isinstance(areas, str):
        areas = [areas]
    areas = tuple(areas)
    if not areas:
        raise ValueError("areas must name at least one area")
    if len(set(areas)) != len(areas):
        raise ValueError(f"duplicate area in {areas!r}")
    for a in areas:
        area_number(a)  # a clear error before any work
    check_count("rooms_per_area", rooms_per_area, 1)
    check_count("seed", seed, 0)
    h, w = check_size(size)
    check_count("pinhole_views", pinhole_views, 0)
    if pinhole_views and (not 0 < pinhole_fov_deg < 180 or not 0 <= pinhole_pitch_deg <= 90
                          or min(int(v) for v in pinhole_size) < 1):
        raise ValueError(f"pinhole photos need a positive size, a field of view in (0, 180) and a pitch in [0, 90], "
                         f"got {tuple(pinhole_size)}, {pinhole_fov_deg}, {pinhole_pitch_deg}")
    if len(areas) * int(rooms_per_area) * MAX_INSTANCES_PER_ROOM >= MAX_LABELS:
        raise ValueError(
            f"{len(areas)} areas x {rooms_per_area} rooms may need more than {MAX_LABELS - 1} instance labels "
            "(the 16-bit index the loaders decode); use fewer rooms per area"
        )
    if check_output_dir(out, overwrite):
        _remove_previous(out)
    out.mkdir(parents=True, exist_ok=True)

    labels: list[str] = [UNKNOWN_LABEL]
    num_photos = 0
    samples: list[SyntheticSample] = []
    jobs = [(a, i) for a in areas for i in range(int(rooms_per_area))]
    counters: dict[str, dict[str, int]] = {a: {} for a in areas}
    bar = Progress(len(jobs), "synth", "pano", bar=progress)  # without a bar: a line every few seconds
    for area, i in jobs:
        room = render_room(room_seed(seed, area, i), (h, w), room_number=i + 1, domain=look)
        label_indices = [0]
        for cls in room.instance_classes[1:]:
            n = counters[area][cls] = counters[area].get(cls, 0) + 1
            label_indices.append(len(labels))
            labels.append(instance_label(cls, n, room.room_name, area))
        if len(labels) > MAX_LABELS:
            raise ValueError(
                f"too many instances ({len(labels)} > {MAX_LABELS}) for the 16-bit index the loaders decode; "
                "use fewer areas or rooms"
            )
        lut = np.asarray(label_indices, np.int32)
        global_index = np.where(room.instance_index >= 0, lut[np.maximum(room.instance_index, 0)], -1)
        paths = sample_paths(out, area, room.sample_name)
        save_png(paths["rgb"], room.rgb)
        save_png(paths["depth"], encode_depth(room.depth_m))
        save_png(paths["normal"], encode_normals(room.normals))
        save_png(paths["semantic"], encode_semantic(global_index))
        if pinhole_views:
            num_photos += _write_photos(out, area, i, int(seed), label_indices, int(pinhole_views), pinhole_size,
                                        float(pinhole_fov_deg), float(pinhole_pitch_deg), look)
        samples.append(
            SyntheticSample(
                area=area,
                room_index=i,
                room_name=room.room_name,
                camera_id=room.camera_id,
                name=room.sample_name,
                rgb_path=paths["rgb"],
                depth_path=paths["depth"],
                normals_path=paths["normal"],
                semantic_path=paths["semantic"],
                label_indices=tuple(label_indices),
            )
        )
        bar.update(1)
    bar.close()
    labels_path = out / RAW_ASSETS_DIR / SEMANTIC_LABELS_FILE
    atomic_write_text(labels_path, json.dumps(labels))
    return SyntheticManifest(
        out_dir=out,
        seed=int(seed),
        size=(h, w),
        areas=areas,
        rooms_per_area=int(rooms_per_area),
        labels_path=labels_path,
        semantic_labels=tuple(labels),
        samples=tuple(samples),
        domain=look.name,
        num_photos=num_photos,
    )
