"""Preparing pinhole (perspective) datasets: ``prepare folder --pinhole``, ``prepare stanford2d3ds-pinhole``.

Both check everything they can before writing anything, then write the prepared pinhole layout of
:mod:`panosamic.data.pinhole_layout` (the folder dataset's prepared layout plus ``cameras.json``),
which :class:`panosamic.data.pinhole.PinholeDataset` reads.

Stanford2D3DS's perspective photos: ``area_*/data/rgb/<stem>_rgb.png``, ``data/semantic/<stem>_semantic.png``
(the panoramas' RGB instance encoding) and ``data/pose/<stem>_pose.json`` (``"camera_k_matrix"``), with
``<stem> = camera_<id>_<room>_frame_<n>_domain``, plus ``assets/semantic_labels.json``. Sample names are
``<area>__<stem>``; the folds are the panoramic folds' areas, so a pinhole-trained model is tested on the
panoramas of areas it never saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from panosamic.data.base import RGB_FILE
from panosamic.data.classes import STANFORD2D3DS
from panosamic.data.folder import (
    FolderDataError,
    FolderPreparer,
    FolderPrepareReport,
    _image_label,
    _raw_classes,
    _raw_files,
    _read_split_lists,
    _size,
    make_splits,
    prepare_folder,
    run_folder_prepare,
)
from panosamic.data.folder_layout import (
    CLASSES_FILE,
    DEFAULT_DEPTH_SCALE,
    DEFAULT_IGNORE_INDEX,
    FORMAT,
    LABEL_FILE,
    SAMPLES_DIR,
    STORED_IGNORE,
    classes_json,
    read_json_file,
)
from panosamic.data.pinhole_layout import (
    CAMERAS_FILE,
    PROJECTION,
    STANFORD_PINHOLE_DEFAULT_SCALE,
    camera_matrix,
    check_fov,
    check_matrix,
    scale_matrix,
)
from panosamic.data.prepare_output import save_image
from panosamic.data.stanford_codec import SEMANTIC_LABELS_FILE, decode_semantic_rgb, instance_class_table
from panosamic.io import atomic_write_text

__all__ = ["PinholeSource", "prepare_pinhole_folder", "prepare_stanford_pinhole", "scan_stanford_pinhole"]

STANFORD_NAME = "stanford2d3ds-pinhole"


@dataclass(frozen=True)
class PinholeSource:
    """One raw photo: its files, size and intrinsic matrix (in the raw photo's pixels)."""

    name: str
    image: Path
    label: Path
    size: tuple[int, int]
    k: list[list[float]]


# --------------------------------------------------------------------------- folder --pinhole
def scan_pinhole_folder(raw: Path, fov_deg: float | None):
    """Check a raw pinhole folder completely; (classes, ignore_index, photos, given split lists)."""
    raw = Path(raw)
    content, (info, ignore, _) = _raw_classes(raw)
    default_fov = fov_deg if fov_deg is not None else content.get("fov_deg")
    if default_fov is not None:
        default_fov = check_fov(
            default_fov, "--fov" if fov_deg is not None else f"{raw / CLASSES_FILE} fov_deg"
        )
    cameras: dict[str, Any] = {}
    if (raw / CAMERAS_FILE).is_file():
        cameras = read_json_file(raw / CAMERAS_FILE)
        if not isinstance(cameras, dict):
            raise FolderDataError(f'{raw / CAMERAS_FILE}: expected {{"NAME": {{"fov_deg": 60}}, ...}}')
    images, labels, _ = _raw_files(raw, "photos")
    for name in cameras:
        if name not in images:
            raise FolderDataError(
                f"{raw / CAMERAS_FILE}: entry {name!r} has no image; expected names of images/ files"
            )
    photos = []
    for name, image in images.items():
        size, _ = _size(image)
        label = _image_label(image, labels, size, info, ignore)
        if name in cameras:
            k = camera_matrix(cameras[name], size[0], size[1], f"{raw / CAMERAS_FILE} {name!r}")
        elif default_fov is not None:
            k = camera_matrix({"fov_deg": default_fov}, size[0], size[1], "--fov")
        else:
            raise FolderDataError(
                f'{image}: no field of view; expected --fov DEG, "fov_deg" in classes.json, or '
                f"an entry in {CAMERAS_FILE}"
            )
        photos.append(PinholeSource(name, image, label, size, k))
    return info, ignore, photos, _read_split_lists(raw, set(images))


def _prepared_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))) if scale < 1.0 else size


def _write_photo(p: PinholeSource, out: Path, scale: float, labels: np.ndarray) -> list[list[float]]:
    """Write one photo and its uint16 stored labels; returns K at the prepared size."""
    sample_dir = out / SAMPLES_DIR / p.name
    with Image.open(p.image) as im:
        rgb = im.convert("RGB")
    label_image = Image.fromarray(labels.astype(np.uint16))
    size = _prepared_size(p.size, scale)
    if size != p.size:
        rgb = rgb.resize(size, resample=Image.Resampling.LANCZOS)
        label_image = label_image.resize(size, resample=Image.Resampling.NEAREST)
    sample_dir.mkdir(parents=True, exist_ok=True)
    save_image(sample_dir / RGB_FILE, rgb, "WEBP")
    save_image(sample_dir / LABEL_FILE, label_image, "PNG")
    return scale_matrix(p.k, size[0] / p.size[0], size[1] / p.size[1])


class _Photos(FolderPreparer[PinholeSource]):
    """What both pinhole kinds share: photos written with their cameras, recorded in ``cameras.json``."""

    unit = "photo"
    derived = (CAMERAS_FILE,)

    def __init__(self, out: Path, scale: float) -> None:
        super().__init__(out, scale)
        self.cameras: dict[str, Any] = {}

    def _store(self, p: PinholeSource, stored: np.ndarray) -> None:
        """Write a photo with its stored labels and keep its camera at the prepared size."""
        self.cameras[p.name] = {
            "K": _write_photo(p, self.out, self.scale, stored),
            "size": list(_prepared_size(p.size, self.scale)),
        }

    def finish(self) -> dict[str, Any]:
        atomic_write_text(self.out / CAMERAS_FILE, json.dumps(self.cameras, indent=1))
        return {
            "format": FORMAT,
            "projection": PROJECTION,
            "modalities": ["image"],
            "scale": self.scale,
            "num_samples": len(self.cameras),
        }


class _PinholeFolder(_Photos):
    """``prepare folder --pinhole``: a raw folder of photos with class-index labels."""

    name = "folder --pinhole"

    def __init__(
        self, raw: Path, out: Path, scale: float, fov_deg: float | None, folds: int | None, seed: int
    ) -> None:
        super().__init__(out, scale)
        info, self.ignore, self.items, lists = scan_pinhole_folder(raw, fov_deg)
        self.splits = make_splits([p.name for p in self.items], lists, folds, seed)
        aux = [raw / k for k in ("depth", "normals") if (raw / k).is_dir()]
        if aux:
            print(f"note: pinhole datasets are image-only; {', '.join(str(a) for a in aux)} not used")
        self.settings = {
            "dataset": "folder",
            "projection": PROJECTION,
            "scale": scale,
            "folds": folds,
            "seed": seed,
            "fov_deg": fov_deg,
        }
        self.classes = classes_json(info, self.ignore, DEFAULT_DEPTH_SCALE)

    def write(self, item: PinholeSource) -> bool:
        labels = np.asarray(Image.open(item.label)).astype(np.int64)
        self._store(item, np.where(labels == self.ignore, STORED_IGNORE, labels))
        return True


def prepare_pinhole_folder(
    raw: str | Path,
    out: str | Path,
    scale: float | None = None,
    *,
    fov_deg: float | None = None,
    **options: Any,
) -> FolderPrepareReport:
    """Check the raw pinhole folder ``raw`` completely, then write the prepared pinhole layout in ``out``.

    ``fov_deg``: the horizontal field of view of the photos ``cameras.json`` does not describe (it
    overrides ``classes.json``'s ``"fov_deg"``); ``options``: those of
    :func:`~panosamic.data.folder.prepare_folder` (``folds``, ``seed``, ``overwrite``, ``progress``).
    """
    return prepare_folder(raw, out, scale, kind=partial(_PinholeFolder, fov_deg=fov_deg), **options)


# --------------------------------------------------------------------------- Stanford2D3DS perspective photos
def _stanford_k(path: Path) -> list[list[float]]:
    try:
        pose = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FolderDataError(
            f'{path}: unreadable pose file ({e}); expected JSON with "camera_k_matrix"'
        ) from None
    if not isinstance(pose, dict) or "camera_k_matrix" not in pose:
        raise FolderDataError(f'{path}: no "camera_k_matrix"; expected a Stanford2D3DS pose file')
    return check_matrix(pose["camera_k_matrix"], str(path))


def scan_stanford_pinhole(
    raw: Path, *, skip_bad: bool = False
) -> tuple[list[tuple[str, PinholeSource]], list]:
    """Every perspective photo of a raw Stanford2D3DS download: ([(area, photo)], [(name, why skipped)])."""
    raw = Path(raw)
    if not (raw / "assets" / SEMANTIC_LABELS_FILE).is_file():
        raise FileNotFoundError(
            f"{raw / 'assets' / SEMANTIC_LABELS_FILE} is missing: a Stanford2D3DS download has "
            f"assets/{SEMANTIC_LABELS_FILE}"
        )
    areas = sorted(p.name for p in raw.iterdir() if p.is_dir() and p.name.startswith("area_"))
    if not areas:
        raise FileNotFoundError(
            f"no area_* folders in {raw}; expected the Stanford2D3DS layout area_*/data/rgb/..."
        )
    found: list[tuple[str, PinholeSource]] = []
    bad: list[tuple[str, str]] = []
    for area in areas:
        data = raw / area / "data"
        if not (data / "rgb").is_dir():
            continue  # an area downloaded without its perspective photos
        for image in sorted((data / "rgb").glob("*_rgb.png")):
            stem = image.name[: -len("_rgb.png")]
            name = f"{area}__{stem}"
            label, pose = data / "semantic" / f"{stem}_semantic.png", data / "pose" / f"{stem}_pose.json"
            try:
                for path in (label, pose):
                    if not path.is_file():
                        raise FileNotFoundError(f"{path} is missing; expected one for {image.name}")
                size, _ = _size(image)
                lsize, _ = _size(label)
                if lsize != size:
                    raise FolderDataError(
                        f"{label}: size {lsize[0]}x{lsize[1]}; expected the photo's {size[0]}x{size[1]}"
                    )
                found.append((area, PinholeSource(name, image, label, size, _stanford_k(pose))))
            except (OSError, ValueError) as e:
                if not skip_bad:
                    raise
                bad.append((name, str(e)))
    if not found:
        raise FileNotFoundError(f"no perspective photos under {raw}/area_*/data/rgb/*_rgb.png")
    return found, bad


class _StanfordPhotos(_Photos):
    """``prepare stanford2d3ds-pinhole``: the photos' RGB-encoded labels decoded; a rerun keeps the
    photos an earlier run wrote."""

    name = STANFORD_NAME

    def __init__(self, raw: Path, out: Path, scale: float, skip_bad: bool) -> None:
        from panosamic.data.stanford2d3ds import FOLDS

        super().__init__(out, scale)
        photos, self.skipped = scan_stanford_pinhole(raw, skip_bad=skip_bad)
        self.items = [p for _, p in photos]
        self.table = instance_class_table(read_json_file(raw / "assets" / SEMANTIC_LABELS_FILE))
        by_area: dict[str, list[str]] = {}
        for area, p in photos:
            by_area.setdefault(area, []).append(p.name)
        folds = {}
        for fold, (train, test) in FOLDS.items():
            names = {
                s: sorted(n for a in areas for n in by_area.get(a, ()))
                for s, areas in (("train", train), ("test", test))
            }
            if names["train"]:
                folds[str(fold)] = names
        if not folds:
            raise FileNotFoundError(f"{raw}: no fold has training photos (areas found: {sorted(by_area)})")
        self.splits = {"source": "stanford2d3ds folds", "seed": None, "folds": folds}
        self.settings = {"dataset": STANFORD_NAME, "scale": scale}
        self.classes = classes_json(STANFORD2D3DS, DEFAULT_IGNORE_INDEX, DEFAULT_DEPTH_SCALE)
        self.previous: dict[str, Any] = {}

    def start(self) -> None:
        path = self.out / CAMERAS_FILE  # an earlier run's cameras (after an overwrite it is gone)
        self.previous = read_json_file(path) if path.is_file() else {}

    def write(self, item: PinholeSource) -> bool:
        done = self.out / SAMPLES_DIR / item.name
        if item.name in self.previous and (done / RGB_FILE).is_file() and (done / LABEL_FILE).is_file():
            self.cameras[item.name] = self.previous[item.name]
            return False
        with Image.open(item.label) as im:
            labels = decode_semantic_rgb(np.asarray(im.convert("RGB")), self.table)
        self._store(item, np.where(labels < 0, STORED_IGNORE, labels))
        if len(self.cameras) % 500 == 0:  # resumable: what is written is recorded
            atomic_write_text(self.out / CAMERAS_FILE, json.dumps({**self.previous, **self.cameras}))
        return True

    def finish(self) -> dict[str, Any]:
        return {**super().finish(), "dataset": STANFORD_NAME}


def prepare_stanford_pinhole(
    raw: str | Path,
    out: str | Path,
    scale: float | None = None,
    *,
    overwrite: bool = False,
    skip_bad: bool = False,
    progress: bool = True,
    **_: Any,
) -> FolderPrepareReport:
    """Prepare Stanford2D3DS's perspective photos (13 classes, the panoramic folds' areas) into ``out``."""
    kind = partial(_StanfordPhotos, skip_bad=skip_bad)
    return run_folder_prepare(
        kind,
        raw,
        out,
        scale,
        overwrite=overwrite,
        progress=progress,
        default_scale=STANFORD_PINHOLE_DEFAULT_SCALE,
    )
